"""One registry of named architectures: published genotypes and hand-designed baselines.

`Arch` is what a REF resolves to; `Arch.build` is the single entry point that turns any
architecture, at either layout, into an `nn.Module`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from search_spaces.baseline_specs import BASELINES, baseline_defaults
from search_spaces.errors import InputError
from search_spaces.genotype import Genotype
from search_spaces.published import PUBLISHED

if TYPE_CHECKING:
    from torch import nn

Kind = Literal["genotype", "baseline"]

# Cell networks built with no size given: NASNet-A 6@768 on CIFAR, Mobile 4@1056 at 224px.
DEFAULT_NETWORKS: dict[str, dict[str, int]] = {
    "cifar": {"cells": 6, "filters": 768, "image_size": 32, "num_classes": 10},
    "imagenet": {"cells": 4, "filters": 1056, "image_size": 224, "num_classes": 1000},
}


class UnknownModelError(InputError, KeyError):
    """A name that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Arch:
    """A buildable architecture: a genotype (cell network) or a registered baseline."""

    name: str
    kind: Kind
    genotype: Genotype | None = None
    # The CIFAR N@F (and stem stride) a searched trial was trained at (STUDY:N); the default
    # size of the cifar layout, under explicit cells/filters. The imagenet layout sizes its own.
    cells: int | None = None
    filters: int | None = None
    stem_stride: int | None = None

    def resolve(
        self,
        layout: str = "cifar",
        cells: int | None = None,
        filters: int | None = None,
        image_size: int | None = None,
        num_classes: int | None = None,
        width: float | None = None,
        **network: Any,
    ) -> dict[str, Any]:
        """The complete build settings, defaults filled in; raises ConfigError on nonsense."""
        from search_spaces.network import LAYOUTS, ConfigError, NetworkConfig

        if layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {layout!r}; use cifar or imagenet")
        if self.kind == "baseline":
            if cells is not None or filters is not None:
                raise ConfigError(
                    f"{self.name} is a baseline: --cells/--filters apply to cell networks only"
                )
            defaults = baseline_defaults(self.name, layout)
            settings = {
                "layout": layout,
                "image_size": image_size or defaults["image_size"],
                "num_classes": num_classes or defaults["num_classes"],
                "width": 1.0 if width is None else width,
            }
            if settings["image_size"] < 32 or settings["num_classes"] < 1:
                raise ConfigError("baselines need --image-size >= 32 and --classes >= 1")
            return settings
        if width is not None and width != 1.0:
            raise ConfigError("--width applies to baselines; size a cell network with --filters")
        searched = ({"cells": self.cells, "filters": self.filters, "stem_stride": self.stem_stride}
                    if layout == "cifar" else {})
        config = NetworkConfig(layout, **DEFAULT_NETWORKS[layout]).with_(**searched).with_(
            cells=cells, filters=filters, image_size=image_size, num_classes=num_classes,
            **network,
        )
        return config.validate().to_dict()

    def build(self, **settings: Any) -> nn.Module:
        """Build at the given settings (see `resolve`)."""
        from search_spaces.baselines import build_baseline
        from search_spaces.network import NetworkConfig, build_network

        full = self.resolve(**settings)
        if self.kind == "baseline":
            return build_baseline(self.name, **full)
        assert self.genotype is not None
        return build_network(self.genotype, NetworkConfig(**full))


_REGISTRY: dict[str, Arch] = {}


def register_model(arch: Arch) -> Arch:
    """Add a named architecture; a name can be registered once."""
    if arch.name in _REGISTRY:
        raise ValueError(f"model {arch.name!r} is already registered")
    _REGISTRY[arch.name] = arch
    return arch


def get_arch(name: str) -> Arch:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown architecture {name!r}; `nas list` shows the registered names"
        ) from None


def get_model(name: str, **settings: Any) -> nn.Module:
    """Build a registered architecture, e.g. get_model('resnet18', layout='cifar')."""
    return get_arch(name).build(**settings)


def list_models() -> list[Arch]:
    return list(_REGISTRY.values())


for _name, _genotype in PUBLISHED.items():
    register_model(Arch(_name, "genotype", _genotype))
for _name in BASELINES:
    register_model(Arch(_name, "baseline"))
