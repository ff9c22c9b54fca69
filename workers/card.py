"""The model card: one typed, versioned record of what a trained model is, what it expects as
input, how it was trained, how well it did and what it costs.

Why one record: every checkpoint (safetensors metadata, plus a .json beside it) and every
`models` row carries the same card, so `nas compare` and `nas export` read facts instead of
guessing which key a command happened to write. Frozen dataclasses rather than pydantic:
`workers/` must import on a GPU machine that has no pydantic.

`from_dict` validates every field and refuses a card of a newer version; `from_description`
is the one converter for checkpoints written before the card existed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from search_spaces.errors import InputError

CARD_VERSION = 1


class CardError(InputError):
    """A model card that is missing, malformed, or newer than this code; one-line message."""


@dataclass(frozen=True)
class Architecture:
    """What was built: `arch.build(**settings)` rebuilds exactly this network."""

    ref: str  # the REF or registered name it was built from
    kind: str  # "genotype" (a cell network) or "baseline"
    genotype: dict[str, Any] | None  # Genotype.to_dict() of a cell network
    key: str | None  # the genotype's canonical key
    layout: str  # "cifar" or "imagenet"
    cells: int | None  # N: normal cells per stack (cell networks)
    filters: int | None  # F: channels of the penultimate layer (cell networks)
    width: float | None  # width multiplier (baselines)
    settings: dict[str, Any]  # every build setting, as Arch.resolve returns them


@dataclass(frozen=True)
class InputSpec:
    """What the network expects: normalize uint8 images as (x - mean) / std, per channel."""

    image_size: int  # pixels, height = width, as trained and scored
    channels: int  # 3: RGB
    mean: tuple[float, ...]  # per channel, on the 0..255 scale
    std: tuple[float, ...]  # per channel, on the 0..255 scale
    num_classes: int
    classes: tuple[str, ...] | None  # class names in label order, where known


@dataclass(frozen=True)
class Recipe:
    """How it was trained."""

    preset: str | None  # the named recipe the settings started from
    lr: float  # peak learning rate
    seed: int
    epochs: int  # the epoch budget (a cap when a time budget decides)
    batch_size: int
    changed: dict[str, Any]  # every training setting that differs from the preset's
    settings: dict[str, Any]  # every training setting
    # How `lr` was chosen (workers.recipe.LrPick.to_dict: grid, each lr's validation
    # accuracy, the pick, seconds); None when the lr was given, not picked.
    lr_pick: dict[str, Any] | None = None


@dataclass(frozen=True)
class Metrics:
    """How well it did, measured once when training ended."""

    accuracy: float  # top-1 on `split`
    split: str  # "test" (CIFAR-10 test split) or "val" (an ImageFolder's val/)
    top5: float | None
    train_seconds: float | None  # seconds of training steps (None: converted, not recorded)
    images_per_s: float | None  # training throughput
    epochs: int | None  # epochs run
    extra: dict[str, Any] = field(default_factory=dict)  # per-epoch reports, runtime, ...


@dataclass(frozen=True)
class Cost:
    params: int  # parameters, auxiliary head excluded
    mult_adds: int  # multiply-accumulates for one image at `image_size`


@dataclass(frozen=True)
class Provenance:
    command: str  # the command that trained it: train, baseline, transfer
    nas_version: str
    torch_version: str
    data_fingerprint: str | None  # equal data <=> equal fingerprint
    created: str  # ISO 8601, UTC
    data: dict[str, Any] = field(default_factory=dict)  # data root, image counts, ...


@dataclass(frozen=True)
class ModelCard:
    architecture: Architecture
    input: InputSpec
    recipe: Recipe
    metrics: Metrics
    cost: Cost
    provenance: Provenance
    version: int = CARD_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: tuples become lists, nothing but dicts, lists, str, numbers, None."""
        return json.loads(self.to_json())

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(_plain(dataclasses.asdict(self)), sort_keys=True, indent=indent,
                          allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> ModelCard:
        """Validate and build; CardError names the first bad field."""
        if not isinstance(data, dict):
            raise CardError(f"a model card is a JSON object, not {type(data).__name__}")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise CardError(f"model card has no valid version (got {version!r})")
        if version > CARD_VERSION:
            raise CardError(
                f"model card version {version} is newer than this nas reads (version "
                f"{CARD_VERSION}); upgrade nas to read it"
            )
        card = _decode(cls, data, "card")
        channels = card.input.channels
        if len(card.input.mean) != channels or len(card.input.std) != channels:
            raise CardError("model card: input.mean and input.std need one value per channel")
        if not all(0 <= m <= 255 for m in card.input.mean) or not all(
                0 < s <= 255 for s in card.input.std):
            raise CardError("model card: input.mean / input.std must be on the 0..255 scale")
        if card.input.classes is not None and len(card.input.classes) != card.input.num_classes:
            raise CardError("model card: input.classes must name num_classes classes")
        return card

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CardError(f"model card is not JSON: {exc}") from None
        return cls.from_dict(data)

    @property
    def size(self) -> str:
        """N@F for a cell network, `width W` for a baseline."""
        a = self.architecture
        return f"{a.cells}@{a.filters}" if a.kind == "genotype" else f"width {a.width:g}"


def _decode(cls: type, data: Any, where: str) -> Any:
    """One dataclass from a dict: every field present, of its declared type."""
    if not isinstance(data, dict):
        raise CardError(f"model card: {where} must be an object")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}"
        if f.name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise CardError(f"model card has no {path}")
        values[f.name] = _value(hints[f.name], data[f.name], path)
    return cls(**values)


def _value(hint: Any, value: Any, path: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _decode(hint, value, path)
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(inner, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise CardError(f"model card: {path} must be a list")
        return tuple(_value(args[0], v, f"{path}[]") for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise CardError(f"model card: {path} must be an object")
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise CardError(f"model card: {path} must be {hint.__name__}, not {value!r}")


# -- writing a card -----------------------------------------------------------------------


def layout_normalization(layout: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) on the 0..255 scale that the project's trainer applies at `layout`."""
    from workers.augment import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD

    if layout == "cifar":
        return CIFAR10_MEAN, CIFAR10_STD
    return IMAGENET_MEAN, IMAGENET_STD


def _plain(value: Any) -> Any:
    """JSON-safe data: tuples as lists, other objects as str, NaN and infinities as None
    (PostgreSQL's JSON refuses them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _versions() -> tuple[str, str]:
    import torch

    from search_spaces.errors import package_version

    return package_version(), torch.__version__


def make_card(
    *,
    ref: str,
    kind: str,
    genotype: dict[str, Any] | None,
    key: str | None,
    settings: dict[str, Any],
    classes: tuple[str, ...] | list[str] | None,
    preset: str | None,
    train: dict[str, Any],
    preset_train: dict[str, Any] | None,
    accuracy: float,
    split: str,
    top5: float | None,
    train_seconds: float,
    images_per_s: float | None,
    epochs: int,
    params: int,
    mult_adds: int,
    command: str,
    data_fingerprint: str | None,
    extra_metrics: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    lr_pick: dict[str, Any] | None = None,
) -> ModelCard:
    """The card every writer (`nas train`, `nas baselines`, `nas transfer`) builds; the
    normalization and the versions are filled in here, so no writer can get them wrong."""
    mean, std = layout_normalization(settings["layout"])
    nas_version, torch_version = _versions()
    train = _plain(train)
    base = _plain(preset_train or {})
    card = ModelCard(
        architecture=Architecture(
            ref=ref, kind=kind, genotype=genotype, key=key, layout=settings["layout"],
            cells=settings.get("cells"), filters=settings.get("filters"),
            width=settings.get("width"), settings=_plain(settings),
        ),
        input=InputSpec(
            image_size=int(settings["image_size"]), channels=3, mean=mean, std=std,
            num_classes=int(settings["num_classes"]),
            classes=tuple(classes) if classes is not None else None,
        ),
        recipe=Recipe(
            preset=preset, lr=float(train["lr"]), seed=int(train["seed"]),
            epochs=int(train["epochs"]), batch_size=int(train["batch_size"]),
            changed={k: v for k, v in train.items() if k not in base or base[k] != v},
            settings=train, lr_pick=None if lr_pick is None else _plain(lr_pick),
        ),
        metrics=Metrics(
            accuracy=float(accuracy), split=split,
            top5=None if top5 is None else float(top5), train_seconds=float(train_seconds),
            images_per_s=None if images_per_s is None else float(images_per_s),
            epochs=int(epochs), extra=_plain(extra_metrics or {}),
        ),
        cost=Cost(params=int(params), mult_adds=int(mult_adds)),
        provenance=Provenance(
            command=command, nas_version=nas_version, torch_version=torch_version,
            data_fingerprint=data_fingerprint,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            data=_plain(data or {}),
        ),
    )
    return ModelCard.from_dict(card.to_dict())  # what is written is what a reader accepts


# -- checkpoints written before the card --------------------------------------------------


def from_description(description: Any) -> ModelCard:
    """The one converter for old checkpoints: their free-form description (metadata key
    "nas", written by `nas train` / `nas transfer` before the card) as a card, or CardError
    naming what it lacks. Unknown facts stay None (torch version, train seconds, ...)."""
    if not isinstance(description, dict):
        raise CardError("the checkpoint's old description is not a JSON object")
    d = description
    network = d.get("network")
    if not isinstance(network, dict) or not {"layout", "image_size", "num_classes"} <= set(
            network):
        raise CardError("the checkpoint's old description has no network settings; "
                        "retrain it with this nas")
    metrics = d.get("metrics") if isinstance(d.get("metrics"), dict) else {}
    train = d.get("train") if isinstance(d.get("train"), dict) else {}
    data = d.get("data") if isinstance(d.get("data"), dict) else {}
    accuracy = metrics.get("test_accuracy", metrics.get("top1"))
    missing = [name for name, value in (
        ("arch", d.get("arch")), ("kind", d.get("kind")), ("accuracy", accuracy),
        ("params", d.get("params")), ("mult_adds", d.get("mult_adds")),
        ("train.lr", train.get("lr")), ("train.epochs", train.get("epochs")),
        ("train.batch_size", train.get("batch_size")),
    ) if value is None]
    if missing:
        raise CardError(f"the checkpoint predates model cards and its description lacks "
                        f"{', '.join(missing)}; retrain it with this nas")
    epochs = metrics.get("epochs")
    layout = network["layout"]
    mean, std = layout_normalization(layout)
    genotype = d.get("genotype")
    key = None
    if genotype is not None:
        from search_spaces import Genotype, GenotypeError

        try:
            key = Genotype.from_dict(genotype).key()
        except GenotypeError as exc:
            raise CardError(f"the checkpoint's old description has a bad genotype: {exc}") \
                from None
    classes = data.get("classes")
    if classes is None and layout == "cifar" and network["num_classes"] == 10:
        from workers.data import CLASSES as classes
    card = {
        "version": CARD_VERSION,
        "architecture": {
            "ref": d["arch"], "kind": d["kind"], "genotype": genotype, "key": key,
            "layout": layout, "cells": network.get("cells"), "filters": network.get("filters"),
            "width": network.get("width"), "settings": network,
        },
        "input": {"image_size": network["image_size"], "channels": 3, "mean": mean,
                  "std": std, "num_classes": network["num_classes"], "classes": classes},
        "recipe": {
            "preset": d.get("preset") or train.get("preset"), "lr": train["lr"],
            "seed": train.get("seed", 0), "epochs": train["epochs"],
            "batch_size": train["batch_size"], "changed": {}, "settings": train,
        },
        "metrics": {
            "accuracy": accuracy, "split": "test" if "test_accuracy" in metrics else "val",
            "top5": metrics.get("top5"), "train_seconds": metrics.get("train_seconds"),
            "images_per_s": metrics.get("images_per_s"),
            "epochs": len(epochs) if isinstance(epochs, list) else train["epochs"],
            "extra": {},
        },
        "cost": {"params": d["params"], "mult_adds": d["mult_adds"]},
        "provenance": {
            "command": "converted", "nas_version": str(d.get("nas_version", "unknown")),
            "torch_version": "unknown",
            "data_fingerprint": metrics.get("data_fingerprint") or data.get("fingerprint"),
            "created": str(d.get("created", "unknown")), "data": data,
        },
    }
    return ModelCard.from_dict(card)


__all__ = [
    "CARD_VERSION",
    "Architecture",
    "CardError",
    "Cost",
    "InputSpec",
    "Metrics",
    "ModelCard",
    "Provenance",
    "Recipe",
    "from_description",
    "layout_normalization",
    "make_card",
]
