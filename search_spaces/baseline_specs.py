"""The hand-designed baselines as data: which library builds each, and at what size.

Torch-free, so `nas list` and the registry can name every baseline without loading torch;
`search_spaces.baselines` turns a spec into a network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BaselineSpec:
    """How to build one baseline at the ImageNet layout (the CIFAR rule adapts it)."""

    source: str  # "torchvision", "timm" or "nas" (written in search_spaces.baselines)
    model: str  # the constructor's name in that library
    image_size: int  # ImageNet-layout input side
    num_classes: int  # ImageNet-layout classes
    options: tuple[tuple[str, Any], ...] = ()  # further constructor keywords


BASELINES: dict[str, BaselineSpec] = {
    "lenet5": BaselineSpec("nas", "LeNet5", 32, 10),
    "alexnet": BaselineSpec("torchvision", "alexnet", 224, 1000),
    "vgg16": BaselineSpec("torchvision", "vgg16", 224, 1000),
    "vgg19": BaselineSpec("torchvision", "vgg19", 224, 1000),
    "googlenet": BaselineSpec("torchvision", "googlenet", 224, 1000,
                              (("aux_logits", False), ("init_weights", True))),
    "resnet18": BaselineSpec("torchvision", "resnet18", 224, 1000),
    "resnet34": BaselineSpec("torchvision", "resnet34", 224, 1000),
    "resnet50": BaselineSpec("torchvision", "resnet50", 224, 1000),
    "inception-resnet-v2": BaselineSpec("timm", "inception_resnet_v2", 299, 1000),
    "mobilenet-v1": BaselineSpec("timm", "mobilenetv1_100", 224, 1000),
    "mobilenet-v2": BaselineSpec("torchvision", "mobilenet_v2", 224, 1000),
}


def baseline_defaults(name: str, layout: str) -> dict[str, Any]:
    """The image size and class count a baseline is built at when none is given."""
    spec = BASELINES[name]
    return {"image_size": 32, "num_classes": 10} if layout == "cifar" else {
        "image_size": spec.image_size, "num_classes": spec.num_classes
    }
