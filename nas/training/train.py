"""`nas train` and `nas bench train`: functions the CLI wraps and tests call directly.

Everything that can be wrong with the input (REF, sizes and cost, preset, epochs, the
database, the checkpoint directory, data, batch size against the subset) is checked before
the first step (nas.preflight), and the checkpoint is written through a temporary name, so
bad input never wastes a run or leaves half a file behind.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from nas.errors import BadInput
from nas.inspect import meta_cost
from nas.preflight import check_memory, check_out_dir, check_storage
from nas.refs import resolve_ref
from search_spaces import Arch, ConfigError, GenotypeError
from workers.data import DataError, load_cifar10
from workers.presets import UnknownPresetError, default_preset, get_preset, require_hardware
from workers.train import TrainConfig, TrainError

TRAIN_COPIES = 3  # weights, gradients, momentum: the least training holds (activations extra)


def network_settings(arch: Arch, preset_network: dict[str, Any], layout: str = "cifar",
                     cells: int | None = None, filters: int | None = None,
                     stem_stride: int | None = None) -> dict[str, Any]:
    """The full build settings: the preset's N/F (cell networks only), a searched trial's
    N@F and stem stride over it, the flags over both."""
    if layout != "cifar":
        raise BadInput(f"nas train trains at the cifar layout (got --layout {layout}); "
                       "use `nas transfer` for the imagenet layout")
    size: dict[str, Any] = {"layout": layout}
    if arch.kind == "genotype":
        size.update(preset_network)
        size.update({k: v for k, v in (("cells", arch.cells), ("filters", arch.filters),
                                       ("stem_stride", arch.stem_stride)) if v is not None})
        if cells is not None:
            size["cells"] = cells
        if filters is not None:
            size["filters"] = filters
        if stem_stride is not None:
            size["stem_stride"] = stem_stride
    else:
        if cells is not None or filters is not None or stem_stride is not None:
            raise BadInput(f"{arch.name} is a baseline: --cells/--filters/--stem-stride apply "
                           "to cell networks only")
    try:
        return arch.resolve(**size)
    except (ConfigError, GenotypeError) as exc:
        raise BadInput(str(exc)) from None


def build_settings(arch: Arch, preset_network: dict[str, Any], layout: str = "cifar",
                   cells: int | None = None, filters: int | None = None,
                   width: float | None = None, stem_stride: int | None = None) -> dict[str, Any]:
    """`network_settings` with a baseline's width multiplier on top."""
    settings = network_settings(arch, preset_network, layout, cells, filters, stem_stride)
    if width is None:
        return settings
    try:
        return arch.resolve(**{**settings, "width": width})
    except (ConfigError, GenotypeError) as exc:
        raise BadInput(f"{arch.name} at width {width:g}: {exc}") from None


def cost_of(arch: Arch, settings: dict[str, Any]) -> tuple[int, int]:
    """(params, mult-adds) on the meta device: no memory, no compute, aux head excluded.
    Refuses what is beyond the caps or what this machine cannot train (TRAIN_COPIES)."""
    params, mult_adds, size = meta_cost(arch, settings)
    check_memory(TRAIN_COPIES * size, f"training {arch.name}")
    return params, mult_adds


def train_config(preset_train: TrainConfig, **flags: Any) -> TrainConfig:
    """The preset's TrainConfig with the given (non-None) flags on top, validated."""
    changes = {k: v for k, v in flags.items() if v is not None}
    try:
        return dataclasses.replace(preset_train, **changes).validate()
    except TrainError as exc:
        raise BadInput(str(exc)) from None


def _preset(name: str | None, command: str) -> Any:
    """The named preset, or `command`'s default (workers.presets.DEFAULT_PRESETS)."""
    try:
        return get_preset(name or default_preset(command))
    except UnknownPresetError as exc:
        raise BadInput(str(exc)) from None


def check_hardware(preset: str, config: TrainConfig) -> None:
    """A gpu- preset or a CUDA device on this machine without a GPU: exit 2, before data."""
    try:
        require_hardware(preset, config, torch.cuda.device_count())
    except TrainError as exc:
        raise BadInput(str(exc)) from None


def lr_grid_of(flag: str | Sequence[float] | None, preset: Any) -> tuple[float, ...]:
    """The lr grid a run picks from: `--lr-grid` (text or numbers), else the preset's
    (empty: the preset's lr). Bad values are exit 2 naming the flag, before anything runs."""
    from workers.recipe import RecipeError, check_lr_grid, parse_lr_grid

    if flag is None:
        return tuple(preset.lr_grid)
    try:
        return parse_lr_grid(flag) if isinstance(flag, str) else check_lr_grid(flag)
    except RecipeError as exc:
        raise BadInput(str(exc)) from None


def _load(data: str | Path | None) -> Any:
    try:
        return load_cifar10(data)
    except DataError as exc:
        raise BadInput(str(exc)) from None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


def run_train(
    ref: str,
    preset: str | None = None,
    layout: str = "cifar",
    cells: int | None = None,
    filters: int | None = None,
    epochs: int | None = None,
    subset: int | None = None,
    max_steps: int | None = None,
    time_budget: float | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    out: str | Path | None = None,
    data: str | Path | None = None,
    storage: str | None = None,
    on_epoch: Callable[[Any], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    width: float | None = None,
    record_kind: str = "train",
    cifar: Any = None,
    lr_grid: str | Sequence[float] | None = None,
    stem_stride: int | None = None,
) -> dict[str, Any]:
    """Train REF on CIFAR-10's 50,000 training images, score on the 10,000 test images,
    write a checkpoint with its model card and, with `storage`, a row in the models table;
    returns the `nas train --json` document. `nas baselines` comes through here too (with a
    `width` and record_kind "baseline"), so every model of a comparison trains one way.

    With an lr grid of two or more values (`lr_grid`, else the preset's) the peak lr is
    first picked by short runs on the 45,000 training images scored on the 5,000
    validation images (workers.recipe.pick_lr); one value is that lr, without runs."""
    from workers.card import make_card
    from workers.checkpoint import save_checkpoint
    from workers.recipe import pick_lr
    from workers.train import train

    arch = resolve_ref(ref, storage)
    chosen = _preset(preset, "train")
    grid = lr_grid_of(lr_grid, chosen)
    settings = build_settings(arch, chosen.network, layout, cells, filters, width, stem_stride)
    config = train_config(chosen.train, epochs=epochs, subset=subset, max_steps=max_steps,
                          time_budget=time_budget, seed=seed, batch_size=batch_size,
                          lr=grid[0] if len(grid) == 1 else None)
    check_hardware(chosen.name, config)
    # What the end of the run needs is tried before the first step: the network fits, the
    # database opens, the checkpoint directory takes a file, the data loads.
    params, mult_adds = cost_of(arch, settings)
    check_storage(storage)
    out_dir = Path(out) if out is not None else Path("checkpoints")
    check_out_dir(out_dir)
    cifar = cifar if cifar is not None else _load(data)
    train_split = cifar.train_full
    available = min(config.subset or len(train_split), len(train_split))
    if config.batch_size > available:
        raise BadInput(f"batch size {config.batch_size} is larger than the {available} "
                       "training images; use a larger --subset or a smaller --batch-size")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    tag = "" if width is None else f"-w{width:g}"
    path = out_dir / f"{_safe_name(arch.name)}{tag}-{stamp}-seed{config.seed}.safetensors"

    started = time.perf_counter()
    pick = None
    try:
        if len(grid) > 1:  # reads cifar.train and cifar.val only: nothing that chooses sees test
            pick = pick_lr(lambda: arch.build(**settings), cifar, config, grid,
                           chosen.pick_share)
            config = dataclasses.replace(config, lr=pick.lr)
        torch.manual_seed(config.seed)
        model = arch.build(**settings)
        result = train(model, train_split, cifar.test, config, on_epoch, on_step=on_step)
    except TrainError as exc:
        raise BadInput(str(exc)) from None
    wall = time.perf_counter() - started
    metrics = {
        "test_accuracy": result.accuracy,
        "train_seconds": round(result.train_seconds, 2),
        "wall_seconds": round(wall, 2),
        "images_per_s": round(result.images_per_s, 1),
        "steps": result.steps,
        "stopped": result.stopped,
        "epochs": [dataclasses.asdict(e) for e in result.epochs],
        "data_fingerprint": cifar.fingerprint,
        "train_images": result.settings.get("train_images"),
        "runtime": result.settings,
        "lr_pick": None if pick is None else pick.to_dict(),
    }
    genotype = arch.genotype.to_dict() if arch.genotype is not None else None
    key = arch.genotype.key() if arch.genotype is not None else None
    card = make_card(
        ref=arch.name, kind=arch.kind, genotype=genotype, key=key, settings=settings,
        classes=cifar.classes, preset=chosen.name, train=config.to_dict(),
        preset_train=chosen.train.to_dict(), accuracy=result.accuracy, split="test", top5=None,
        train_seconds=metrics["train_seconds"], images_per_s=metrics["images_per_s"],
        epochs=len(result.epochs), params=params, mult_adds=mult_adds, command=record_kind,
        data_fingerprint=cifar.fingerprint, lr_pick=metrics["lr_pick"],
        extra_metrics={k: metrics[k] for k in ("wall_seconds", "steps", "stopped", "epochs",
                                                "train_images", "runtime")},
    )
    save_checkpoint(path, model, card)
    row = {
        "arch": arch.name,
        "kind": arch.kind,
        "test_accuracy": result.accuracy,
        "params": params,
        "mult_adds": mult_adds,
        "epochs": len(result.epochs),
        "steps": result.steps,
        "stopped": result.stopped,
        "train_seconds": round(result.train_seconds, 2),
        "images_per_s": round(result.images_per_s, 1),
        "checkpoint": str(path),
        "preset": chosen.name,
        "network": settings,
        "width": 1.0 if width is None else width,
        "lr": config.lr,
        "lr_pick": metrics["lr_pick"],
        "formats": {k: result.settings.get(k) for k in ("channels_last", "bf16")},
        "model_id": None,
    }
    if storage is not None:
        from nas.db import DatabaseError, record_model

        try:
            record = record_model(
                storage, kind=record_kind, arch=arch.name, layout="cifar",
                config={"network": settings, "train": {**config.to_dict(),
                                                       "preset": chosen.name},
                        "preset": chosen.name},
                metrics=metrics, genotype=genotype, key=key,
                test_accuracy=result.accuracy, params=params, mult_adds=mult_adds,
                checkpoint=str(path), card=card.to_dict())
        except DatabaseError as exc:
            raise BadInput(f"checkpoint written to {path}, but {exc}") from None
        row["model_id"] = record.model_id
    return row


def run_bench(
    ref: str,
    preset: str | None = None,
    layout: str = "cifar",
    cells: int | None = None,
    filters: int | None = None,
    batch_size: int | None = None,
    steps: int = 5,
    repeats: int = 5,
    data: str | Path | None = None,
    storage: str | None = None,
) -> dict[str, Any]:
    """Training throughput of REF on this machine: the whole step vs the model alone."""
    from workers.train import benchmark

    if steps < 1 or repeats < 1:
        raise BadInput("--steps and --repeats must be at least 1")
    arch = resolve_ref(ref, storage)
    chosen = _preset(preset, "bench")
    settings = network_settings(arch, chosen.network, layout, cells, filters)
    config = train_config(chosen.train, batch_size=batch_size)
    check_hardware(chosen.name, config)
    params, mult_adds = cost_of(arch, settings)
    cifar = _load(data)
    torch.manual_seed(config.seed)
    model = arch.build(**settings)
    try:
        result = benchmark(model, cifar.train, config, steps=steps, repeats=repeats)
    except TrainError as exc:
        raise BadInput(str(exc)) from None
    return {"arch": arch.name, "preset": chosen.name, "network": settings, "params": params,
            "mult_adds": mult_adds, **result}


def run_with_progress(ref: str, storage: str | None, console: Any, show: bool = True,
                      **options: Any) -> dict[str, Any]:
    """`run_train` with a rich progress bar (steps) and one line per epoch on a terminal."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    options = {k: v for k, v in options.items() if v is not None}
    if not (show and console.is_terminal):
        return run_train(ref, storage=storage, **options)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} steps"), TimeElapsedColumn(),
                  TextColumn("{task.fields[note]}"), console=console, transient=True) as bar:
        task = bar.add_task(f"training {ref}", total=None, note="")

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def epoch(report: Any) -> bool:
            acc = "" if report.val_accuracy != report.val_accuracy else (
                f", test {100 * report.val_accuracy:.2f}%")
            bar.console.print(f"epoch {report.epoch}: loss {report.train_loss:.3f}{acc}, "
                              f"{report.images_per_s:.0f} img/s, {report.seconds:.0f}s")
            return False

        return run_train(ref, storage=storage, on_epoch=epoch, on_step=step, **options)


def print_train_result(row: dict[str, Any], console: Any) -> None:
    console.print(
        f"{row['arch']} ({row['preset']}): test accuracy {100 * row['test_accuracy']:.2f}%, "
        f"{row['params']:,} params, {row['mult_adds']:,} mult-adds, "
        f"{row['train_seconds']:.0f}s training at {row['images_per_s']:.0f} img/s"
        + (f" (stopped: {row['stopped']})" if row["stopped"] else "")
        + f"; checkpoint {row['checkpoint']}")
