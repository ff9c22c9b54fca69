"""`nas baselines`: train the hand-designed baselines under exactly the budget a chosen model
gets, and record each in the models table.

Why a separate command: a comparison is only fair when every network sees the same data,
split, augmentation, optimizer, epochs and seed. So a baseline here is just another `Arch`
through the same trainer as `nas train` (CIFAR layout) or `nas transfer` (ImageNet layout),
under the same preset. When a budget cannot afford full width, ONE width rule applies to
every baseline and is printed with the results:

- `preset` (the default): the width the preset names for baselines;
- `full`: every baseline at width 1;
- `W` (a number, e.g. `0.25`): every baseline at width W;
- `max-mult-adds=M`: each baseline at the widest of 1, 1/2, 1/4, 1/8, 1/16 whose mult-adds
  (at the preset's image size) are at most M;
- `match=REF`: as `max-mult-adds`, with M = the mult-adds of REF built the way the preset
  builds a cell network (the chosen model's own budget).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.errors import BadInput
from search_spaces import BASELINES, Arch, ConfigError, count_mult_adds, get_arch

# The baselines the comparison names; `--arch all` adds vgg19, resnet34, resnet50.
DEFAULT_BASELINES = ("lenet5", "alexnet", "vgg16", "googlenet", "resnet18",
                     "inception-resnet-v2", "mobilenet-v1", "mobilenet-v2")
WIDTHS = (1.0, 0.5, 0.25, 0.125, 0.0625)  # powers of two: every residual sum still adds up


@dataclass(frozen=True)
class WidthRule:
    """One rule that sets every baseline's width multiplier."""

    kind: str  # preset, full, fixed, max-mult-adds, match
    value: float | None = None  # the width (fixed) or the mult-adds cap (max-mult-adds)
    ref: str | None = None  # match=REF


def parse_width_rule(text: str | None) -> WidthRule:
    """None (the preset's rule), `full`, `0.5`, `max-mult-adds=50M`, `match=REF`."""
    if text is None or text.strip() == "preset":
        return WidthRule("preset")
    text = text.strip()
    if text == "full":
        return WidthRule("full", 1.0)
    if text.startswith("match="):
        ref = text.split("=", 1)[1]
        if not ref:
            raise BadInput("--width-rule match=REF needs a REF, e.g. match=nasnet-a")
        return WidthRule("match", None, ref)
    if text.startswith("max-mult-adds="):
        return WidthRule("max-mult-adds", float(_count(text.split("=", 1)[1])))
    try:
        width = float(text)
    except ValueError:
        raise BadInput(
            f"unknown --width-rule {text!r}; use preset, full, a width such as 0.25, "
            "max-mult-adds=M or match=REF"
        ) from None
    if not 0 < width <= 4:
        raise BadInput(f"--width-rule width must lie in (0, 4] (got {width:g})")
    return WidthRule("fixed", width)


def _count(text: str) -> int:
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:].upper(), 1.0)
    number = text[:-1] if scale != 1.0 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise BadInput(f"--width-rule max-mult-adds={text}: not a count (e.g. 50M)") from None
    if not value > 0 or not math.isfinite(value):
        raise BadInput(f"--width-rule max-mult-adds must be positive (got {text})")
    return int(value)


def meta_mult_adds(arch: Arch, **settings: Any) -> int:
    """Mult-adds without allocating memory: the network is built on the meta device."""
    with torch.device("meta"):
        model = arch.build(**settings)
        return count_mult_adds(model, settings.get("image_size") or 32)


def resolve_widths(
    rule: WidthRule, names: Sequence[str], layout: str, image_size: int, num_classes: int,
    preset_width: float, reference: dict[str, Any] | None = None, storage: str | None = None,
) -> tuple[dict[str, float], str]:
    """Every baseline's width under `rule`, and the rule as printed with the results.

    `reference` is how the preset builds a cell network (N, F, image size), used for
    `match=REF`; `preset_width` is the preset's own rule.
    """
    if rule.kind == "preset":
        widths = {n: preset_width for n in names}
        text = f"every baseline at width {preset_width:g} (the preset's rule)"
    elif rule.kind in ("full", "fixed"):
        widths = {n: float(rule.value or 1.0) for n in names}
        text = f"every baseline at width {rule.value:g}"
    else:
        cap = int(rule.value or 0)
        origin = ""
        if rule.kind == "match":
            from nas.refs import resolve_ref

            ref = resolve_ref(rule.ref or "", storage)
            size = dict(reference or {}) if ref.kind == "genotype" else {}
            if layout == "cifar":  # a searched cell at its own N@F, as `nas train` builds it
                size.update({k: v for k, v in (("cells", ref.cells), ("filters", ref.filters))
                             if v is not None})
            size.update(layout=layout, image_size=image_size, num_classes=num_classes)
            try:
                cap = meta_mult_adds(ref, **ref.resolve(**size))
            except ConfigError as exc:
                raise BadInput(f"--width-rule match={rule.ref}: {exc}") from None
            origin = f", those of {ref.name}"
        widths = {}
        for name in names:
            widths[name] = WIDTHS[-1]
            for width in WIDTHS:
                try:
                    cost = meta_mult_adds(get_arch(name), layout=layout, image_size=image_size,
                                          num_classes=num_classes, width=width)
                except ConfigError:
                    continue
                if cost <= cap:
                    widths[name] = width
                    break
        text = (f"each baseline at the widest of {', '.join(f'{w:g}' for w in WIDTHS)} "
                f"within {cap:,} mult-adds{origin} (the narrowest when none fits)")
    listing = ", ".join(f"{n} {w:g}" for n, w in widths.items())
    return widths, f"width rule: {text}: {listing}"


def parse_archs(text: str | None) -> list[str]:
    if text is None:
        return list(DEFAULT_BASELINES)
    if text.strip() == "all":
        return list(BASELINES)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BASELINES]
    if unknown or not names:
        raise BadInput(
            f"--arch takes baselines: {', '.join(BASELINES)} (or all); "
            f"not {', '.join(unknown) or 'an empty list'}"
        )
    return list(dict.fromkeys(names))


# -- ImageNet layout: the `nas transfer` trainer --------------------------------------------


def run_imagenet_baselines(
    names: Sequence[str], rule: WidthRule, data: Path | str | None, storage: str | None,
    preset: str | None = None, out: Path | str = Path("runs"), ray_address: str | None = None,
    on_model: Callable[[dict[str, Any]], None] | None = None, on_epoch: Any = None,
    **options: Any,
) -> tuple[list[dict[str, Any]], str]:
    """Each baseline through `nas transfer`'s Ray Train loop under one transfer preset."""
    from nas.training.transfer import plan_transfer, run_transfer
    from workers.presets import get_transfer_preset

    first = plan_transfer(get_arch(names[0]), data, preset=preset, **options)
    chosen = get_transfer_preset(first.preset)
    widths, text = resolve_widths(
        rule, names, "imagenet", first.settings["image_size"], first.settings["num_classes"],
        preset_width=chosen.baseline_width,
        reference={k: v for k, v in chosen.network.items() if k != "image_size"},
        storage=storage)
    plans = [plan_transfer(get_arch(n), data, preset=preset, **{**options, "width": widths[n]})
             for n in names]  # every plan checked before the first one trains
    rows = []
    for plan in plans:
        row = run_transfer(plan, storage, out=out, ray_address=ray_address, on_epoch=on_epoch,
                           record_kind="baseline")
        row["width_rule"] = text
        rows.append(row)
        if on_model is not None:
            on_model(row)
    return rows, text


# -- CIFAR layout: `nas train`'s trainer -----------------------------------------------------


def default_cifar_rule(preset: str) -> str:
    """CPU budgets cannot afford full-width baselines: match NASNet-A under the same preset."""
    return "match=nasnet-a" if preset.startswith("cpu-") else "full"


def run_cifar_baselines(
    names: Sequence[str], rule: WidthRule, storage: str | None, preset: str | None = None,
    data: Path | str | None = None, out: Path | str = Path("runs"),
    on_model: Callable[[dict[str, Any]], None] | None = None, on_epoch: Any = None,
    **overrides: Any,
) -> tuple[list[dict[str, Any]], str]:
    """Each baseline through `workers.train` exactly as `nas train` runs a chosen model."""
    from workers.presets import UnknownPresetError, default_preset, get_preset

    name = preset or default_preset("baselines")
    try:
        chosen = get_preset(name)
    except UnknownPresetError as exc:
        raise BadInput(str(exc)) from None
    from nas.training.train import lr_grid_of

    # refused before any work; a preset without a grid trains at its own lr (None)
    lr_grid = lr_grid_of(overrides.pop("lr_grid", None), chosen) or None
    if rule.kind == "preset":
        rule = parse_width_rule(default_cifar_rule(chosen.name))
    reference = {k: v for k, v in chosen.network.items() if k in ("cells", "filters")}
    widths, text = resolve_widths(rule, names, "cifar", 32, 10, preset_width=1.0,
                                  reference=reference, storage=storage)
    from nas.preflight import check_out_dir, check_storage
    from nas.training.train import build_settings, check_hardware, cost_of, train_config
    from workers.data import DataError, load_cifar10

    # bad flags and a gpu- preset without a GPU fail before the data loads
    check_hardware(chosen.name, train_config(chosen.train, **overrides))
    for arch_name in names:  # every baseline sized before the first one trains
        arch = get_arch(arch_name)
        cost_of(arch, build_settings(arch, chosen.network, width=widths[arch_name]))
    check_storage(storage)  # the rows and checkpoints are written after each training
    check_out_dir(Path(out))
    try:
        cifar = load_cifar10(data)
    except DataError as exc:
        raise BadInput(str(exc)) from None
    def report(epoch: Any) -> bool:
        on_epoch(epoch.as_progress())  # the same progress lines as `nas transfer`
        return False

    rows = []
    for arch_name in names:
        row = train_cifar(arch_name, widths[arch_name], chosen, storage, out=out,
                          on_epoch=report if on_epoch is not None else None, cifar=cifar,
                          lr_grid=lr_grid, **overrides)
        row["width_rule"] = text
        rows.append(row)
        if on_model is not None:
            on_model(row)
    return rows, text


def train_cifar(
    arch_name: str, width: float, preset: Any, storage: str | None,
    data: Path | str | None = None, out: Path | str = Path("runs"), on_epoch: Any = None,
    cifar: Any = None, **overrides: Any,
) -> dict[str, Any]:
    """One baseline exactly as `nas train` runs a chosen model — the preset's TrainConfig and
    lr pick, CIFAR-10's 50,000 training images, the 10,000 test images — at width `width`."""
    from nas.training.train import run_train

    return run_train(arch_name, preset=preset.name, data=data, out=out, storage=storage,
                     on_epoch=on_epoch, width=width, record_kind="baseline", cifar=cifar,
                     **overrides)


def run_baselines(
    layout: str, archs: str | None, width_rule: str | None, storage: str | None,
    out: Path | str = Path("runs"), on_model: Callable[[dict[str, Any]], None] | None = None,
    on_epoch: Any = None, **options: Any,
) -> tuple[list[dict[str, Any]], str]:
    """`nas baselines`: parse, check everything, then train each baseline in turn."""
    names = parse_archs(archs)
    rule = parse_width_rule(width_rule)
    if layout == "imagenet":
        extra = sorted(set(options) & {"subset", "max_steps", "time_budget", "lr_grid"})
        if extra:
            raise BadInput(f"--{extra[0].replace('_', '-')} applies to --layout cifar; "
                           "use --epochs for the ImageNet layout")
        data = options.pop("data", None)
        return run_imagenet_baselines(names, rule, data, storage, out=out, on_model=on_model,
                                      on_epoch=on_epoch, **options)
    extra = sorted(set(options) & {"workers", "gpus_per_worker"})
    if extra:
        raise BadInput(f"--{extra[0].replace('_', '-')} applies to --layout imagenet")
    return run_cifar_baselines(names, rule, storage, out=out, on_model=on_model,
                               on_epoch=on_epoch, **options)


__all__ = [
    "DEFAULT_BASELINES",
    "WIDTHS",
    "WidthRule",
    "meta_mult_adds",
    "parse_archs",
    "parse_width_rule",
    "resolve_widths",
    "run_baselines",
    "run_cifar_baselines",
    "run_imagenet_baselines",
]
