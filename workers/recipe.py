"""The one tuning step of a comparison: every model's peak learning rate is picked from one
small grid by a short run per lr, trained on the training split and scored on the
validation split only.

Why: one fixed lr is a tuned recipe for some networks and a broken one for others, so a
comparison under it ranks the recipe rather than the networks. Giving every model —
searched, published, baseline — the same grid and the same seconds per lr is equal tuning
effort. The pick reads `data.train` and `data.val` and nothing else: the test split is not
part of what it is given, so nothing that chooses can see it (docs/DESIGN.md section 5).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import torch
from torch import nn

from search_spaces.errors import InputError
from workers.source import Split
from workers.train import TrainConfig, train

MAX_GRID = 16  # values; each costs one short run


class RecipeError(InputError):
    """An lr grid or pick length that cannot run; the message names the flag."""


class TrainVal(Protocol):
    """What the pick reads: the training split and the validation split, never the test."""

    @property
    def train(self) -> Split: ...

    @property
    def val(self) -> Split: ...


@dataclass(frozen=True)
class LrPick:
    """The outcome of a pick, as recorded in the model card and the models row."""

    grid: tuple[float, ...]  # the peak learning rates tried, in order
    val_accuracy: tuple[float | None, ...]  # each lr's validation top-1; None: diverged
    lr: float  # the chosen peak lr: the best validation accuracy (the smaller lr on a tie)
    seconds: float  # wall time of all short runs together (training and scoring)
    run_seconds: float  # training seconds of the longest short run
    share: float  # each short run's slice of the final run's budget (seconds or steps)
    train_images: int  # images the short runs trained on (the training split)
    val_images: int  # images they were scored on (the validation split)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the split the scores come from."""
        return {**asdict(self), "grid": list(self.grid),
                "val_accuracy": list(self.val_accuracy), "split": "val"}


def check_lr_grid(values: Iterable[Any], flag: str = "--lr-grid") -> tuple[float, ...]:
    """The grid as sorted, distinct floats; RecipeError (one line naming `flag`) for an
    empty grid or a value that is not a positive finite number."""
    grid = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecipeError(f"{flag} takes numbers (got {value!r}); e.g. {flag} 0.05,0.1,0.2")
        if not (value > 0 and math.isfinite(value) and value <= 100):
            raise RecipeError(f"{flag} values must be positive learning rates in (0, 100] "
                              f"(got {value!r})")
        grid.append(float(value))
    if not grid:
        raise RecipeError(f"{flag} is empty; give one or more learning rates, e.g. "
                          f"{flag} 0.05,0.1,0.2,0.4")
    if len(set(grid)) > MAX_GRID:
        raise RecipeError(f"{flag} has {len(set(grid))} values; at most {MAX_GRID} (each "
                          "costs one short run)")
    return tuple(sorted(set(grid)))


def parse_lr_grid(text: str, flag: str = "--lr-grid") -> tuple[float, ...]:
    """`0.05,0.1,0.2,0.4` -> (0.05, 0.1, 0.2, 0.4), checked by `check_lr_grid`."""
    values: list[Any] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise RecipeError(f"{flag} takes comma-separated numbers (got {part!r}); e.g. "
                              f"{flag} 0.05,0.1,0.2,0.4") from None
    return check_lr_grid(values, flag)


def check_pick_share(share: Any) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise RecipeError(f"pick_share must lie in (0, 1] (got {share!r})")
    return float(share)


def short_run(config: TrainConfig, share: float, train_images: int) -> TrainConfig:
    """`config` shrunk to `share` of its budget: seconds on the clock when it has a time
    budget (the warm-up share and the cosine follow the clock), else steps (the warm-up
    shrinks alike); the same data, augmentation and formats; scored once, at the end."""
    changes: dict[str, Any] = {"eval_every": 0}
    if config.time_budget is not None:
        changes["time_budget"] = config.time_budget * share
    if config.time_budget is None or config.max_steps is not None:
        per_epoch = max(1, min(config.subset or train_images, train_images) // config.batch_size)
        steps = min(config.epochs * per_epoch, config.max_steps or math.inf)
        changes["max_steps"] = max(1, round(share * steps))
        if config.time_budget is None:
            changes["warmup_epochs"] = config.warmup_epochs * share
    return replace(config, **changes)


def pick_lr(build: Callable[[], nn.Module], data: TrainVal, config: TrainConfig,
            grid: Iterable[float], share: float) -> LrPick:
    """Train a fresh `build()` (same seed, same init) at each lr of `grid` for `share` of
    `config`'s budget (`short_run`) on `data.train`, score each on `data.val`, keep the
    best. A run whose loss diverged scores None and is never picked; when all diverge the
    smallest lr is kept."""
    grid = check_lr_grid(grid, "lr grid")
    share = check_pick_share(share)
    train_split, val_split = data.train, data.val
    short = short_run(config, share, len(train_split))
    scores: list[float | None] = []
    seconds = 0.0
    started = time.perf_counter()
    for lr in grid:
        torch.manual_seed(config.seed)
        result = train(build(), train_split, val_split, replace(short, lr=lr))
        seconds = max(seconds, result.train_seconds)
        finite = math.isfinite(result.accuracy) and result.stopped != "non-finite loss"
        scores.append(result.accuracy if finite else None)
    best = max(range(len(grid)), key=lambda i: (
        -1.0 if scores[i] is None else scores[i], -i))  # ties: the smaller lr
    return LrPick(grid=grid, val_accuracy=tuple(scores), lr=grid[best],
                  seconds=round(time.perf_counter() - started, 2),
                  run_seconds=round(seconds, 2), share=share,
                  train_images=min(config.subset or len(train_split), len(train_split)),
                  val_images=len(val_split))


__all__ = ["LrPick", "RecipeError", "TrainVal", "check_lr_grid", "check_pick_share",
           "parse_lr_grid", "pick_lr", "short_run"]
