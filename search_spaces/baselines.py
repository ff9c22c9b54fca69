"""Hand-designed baselines, at the ImageNet layout (the standard network, from torchvision or
timm so its counts are exactly the published ones) and at the CIFAR layout.

The CIFAR rule, written once and applied to every baseline designed for images larger than
32x32 (all but LeNet-5, which is a 32x32 network already): the first convolution becomes
3x3 stride 1, the first max-pool is removed, the adaptive pool in front of the classifier
pools to 1x1, and the classifier has 10 outputs. A 32x32 image keeps enough resolution
through the network that way.

The width rule, for budgets that cannot afford full width: every convolution and hidden
linear layer gets round(width x channels) outputs (at least 1); inputs follow. A multiplier
that breaks a residual sum or concatenation is refused; powers of two (0.5, 0.25, 0.125)
always work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import timm
import torch
import torchvision.models as tvm
from torch import nn

from search_spaces.network import ConfigError


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998) with ReLU and max-pool; RGB input, 32x32 by design."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(5),  # identity at 32x32; lets other sizes through
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


Constructor = Callable[[int], nn.Module]

# name -> (constructor(num_classes), ImageNet-layout image size, ImageNet-layout classes)
BASELINES: dict[str, tuple[Constructor, int, int]] = {
    "lenet5": (lambda k: LeNet5(k), 32, 10),
    "alexnet": (lambda k: tvm.alexnet(num_classes=k), 224, 1000),
    "vgg16": (lambda k: tvm.vgg16(num_classes=k), 224, 1000),
    "vgg19": (lambda k: tvm.vgg19(num_classes=k), 224, 1000),
    "googlenet": (
        lambda k: tvm.googlenet(num_classes=k, aux_logits=False, init_weights=True), 224, 1000
    ),
    "resnet18": (lambda k: tvm.resnet18(num_classes=k), 224, 1000),
    "resnet34": (lambda k: tvm.resnet34(num_classes=k), 224, 1000),
    "resnet50": (lambda k: tvm.resnet50(num_classes=k), 224, 1000),
    "inception-resnet-v2": (
        lambda k: timm.create_model("inception_resnet_v2", num_classes=k), 299, 1000
    ),
    "mobilenet-v1": (lambda k: timm.create_model("mobilenetv1_100", num_classes=k), 224, 1000),
    "mobilenet-v2": (lambda k: tvm.mobilenet_v2(num_classes=k), 224, 1000),
}


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def adapt_to_cifar(model: nn.Module) -> nn.Module:
    """Apply the CIFAR rule (module docstring) in place and return the model."""
    modules = list(model.named_modules())
    first_conv = next((n, m) for n, m in modules if isinstance(m, nn.Conv2d))
    name, conv = first_conv
    _set(
        model,
        name,
        nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None),
    )
    pool = next((n for n, m in modules if isinstance(m, nn.MaxPool2d)), None)
    if pool is not None:
        _set(model, pool, nn.Identity())
    factor = 1
    for name, module in modules:
        if isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size not in (1, (1, 1)):
            size = module.output_size
            h, w = (size, size) if isinstance(size, int) else size
            factor = h * w
            _set(model, name, nn.AdaptiveAvgPool2d(1))
        elif isinstance(module, nn.Linear) and factor > 1:
            bias = module.bias is not None
            _set(model, name, nn.Linear(module.in_features // factor, module.out_features, bias))
            break
    return model


def _resize_norm(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Forward pre-hook: give a BatchNorm the channel count that now reaches it."""
    c = inputs[0].shape[1]
    if module.num_features == c:
        return
    device = inputs[0].device
    module.num_features = c
    if module.affine:
        module.weight = nn.Parameter(torch.ones(c, device=device))
        module.bias = nn.Parameter(torch.zeros(c, device=device))
    if module.track_running_stats:
        module.running_mean = torch.zeros(c, device=device)
        module.running_var = torch.ones(c, device=device)


def scale_width(model: nn.Module, width: float, image_size: int, num_classes: int) -> nn.Module:
    """Apply the width rule (module docstring) in place and return the model."""
    if width == 1.0:
        return model
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    classifier = linears[-1] if linears else None
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.Conv2d):
            out = max(1, round(m.out_channels * width))
            depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            if m.groups > 1 and not depthwise:
                raise ConfigError(f"width {width} cannot scale the grouped convolution {name}")
            _set(
                model,
                name,
                nn.LazyConv2d(
                    out, m.kernel_size, m.stride, m.padding, m.dilation,
                    groups=out if depthwise else 1, bias=m.bias is not None,
                ),
            )
        elif isinstance(m, nn.Linear):
            out = num_classes if name == classifier else max(1, round(m.out_features * width))
            _set(model, name, nn.LazyLinear(out, bias=m.bias is not None))
    hooks = [
        m.register_forward_pre_hook(_resize_norm)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    except RuntimeError as exc:
        raise ConfigError(
            f"width {width} breaks a residual sum or concatenation ({str(exc).splitlines()[0]}); "
            "use 0.5, 0.25 or 0.125"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return model


def build_baseline(
    name: str,
    layout: str = "imagenet",
    num_classes: int | None = None,
    width: float = 1.0,
    image_size: int | None = None,
) -> nn.Module:
    """A baseline at either layout; at the ImageNet layout with width 1 it is the standard net."""
    constructor, default_size, default_classes = BASELINES[name]
    if layout == "cifar":
        num_classes = num_classes or 10
        model = constructor(num_classes)
        if default_size > 32:  # LeNet-5 is a 32x32 network already
            model = adapt_to_cifar(model)
        image_size = image_size or 32
    else:
        num_classes = num_classes or default_classes
        model = constructor(num_classes)
        image_size = image_size or default_size
    if not 0 < width <= 4:
        raise ConfigError(f"width multiplier must lie in (0, 4] (got {width})")
    return scale_width(model, width, image_size, num_classes)


def baseline_defaults(name: str, layout: str) -> dict[str, Any]:
    """The image size and class count a baseline is built at when none is given."""
    _, size, classes = BASELINES[name]
    return {"image_size": 32, "num_classes": 10} if layout == "cifar" else {
        "image_size": size, "num_classes": classes
    }
