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

The initialization rule, for the layers the two rules create: each is initialized as
torchvision initializes VGG, ResNet and MobileNetV2 (and timm its MobileNets' convolutions):
convolutions He-normal over fan-out (`kaiming_normal_(mode="fan_out", nonlinearity="relu")`),
linear layers N(0, 0.01), biases zero. A created layer would otherwise get PyTorch's
default init (a third of the variance He init keeps per ReLU layer): deep networks without
BatchNorm (VGG, AlexNet) then pass almost no signal at width 1/16 and stay near chance.
"""

from __future__ import annotations

import timm
import torch
import torchvision.models as tvm
from torch import nn

from search_spaces.baseline_specs import BASELINES, baseline_defaults
from search_spaces.network import ConfigError

__all__ = ["BASELINES", "LeNet5", "adapt_to_cifar", "baseline_defaults", "build_baseline",
           "init_created", "scale_width"]


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


def _construct(name: str, num_classes: int) -> nn.Module:
    """The standard network of baseline `name`, from the library its spec names."""
    spec = BASELINES[name]
    options = dict(spec.options)
    if spec.source == "nas":
        return LeNet5(num_classes, **options)
    if spec.source == "timm":
        return timm.create_model(spec.model, num_classes=num_classes, **options)
    return getattr(tvm, spec.model)(num_classes=num_classes, **options)


def init_created(module: nn.Module) -> None:
    """The initialization rule (module docstring) for one layer the CIFAR or width rule made."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def adapt_to_cifar(model: nn.Module) -> nn.Module:
    """Apply the CIFAR rule (module docstring) in place and return the model."""
    modules = list(model.named_modules())
    first_conv = next((n, m) for n, m in modules if isinstance(m, nn.Conv2d))
    name, conv = first_conv
    stem = nn.Conv2d(conv.in_channels, conv.out_channels, 3, 1, 1, bias=conv.bias is not None)
    init_created(stem)
    _set(model, name, stem)
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
            linear = nn.Linear(module.in_features // factor, module.out_features, bias)
            init_created(linear)
            _set(model, name, linear)
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
    created = []
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
            created.append(name)
        elif isinstance(m, nn.Linear):
            out = num_classes if name == classifier else max(1, round(m.out_features * width))
            _set(model, name, nn.LazyLinear(out, bias=m.bias is not None))
            created.append(name)
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
    for name in created:  # materialized by the forward pass above
        init_created(model.get_submodule(name))
    return model


def build_baseline(
    name: str,
    layout: str = "imagenet",
    num_classes: int | None = None,
    width: float = 1.0,
    image_size: int | None = None,
) -> nn.Module:
    """A baseline at either layout; at the ImageNet layout with width 1 it is the standard net."""
    spec = BASELINES[name]
    if layout == "cifar":
        num_classes = num_classes or 10
        model = _construct(name, num_classes)
        if spec.image_size > 32:  # LeNet-5 is a 32x32 network already
            model = adapt_to_cifar(model)
        image_size = image_size or 32
    else:
        num_classes = num_classes or spec.num_classes
        model = _construct(name, num_classes)
        image_size = image_size or spec.image_size
    if not 0 < width <= 4:
        raise ConfigError(f"width multiplier must lie in (0, 4] (got {width})")
    return scale_width(model, width, image_size, num_classes)
