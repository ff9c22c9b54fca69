"""Named training presets: network size (N, F) and training length for one purpose each.

`cpu-search` (the default search on CPUs) ranks candidates by what `cpu-compare` measures:
validation accuracy after 180 s of training, with successive halving on the clock;
`cpu-quick` ranks search candidates on 2 CPU cores (one trial in about 90 s); `cpu-compare`
gives every model of a comparison the same tuning (its peak lr picked from one grid on the
validation split, `workers.recipe`) and the same 180 s of training (`nas baselines`); `cpu-final`
trains one model on 2 CPU cores in at most 20 minutes; `gpu-nasnet` is the paper's child
setting (N=2, 20 epochs, all 45,000 images, cosine); `gpu-final` the paper's final recipe
(N=6 F=768 i.e. C=32, 600 epochs, batch 128, drop path, auxiliary head, cutout). Flags
and config keys override any field. Costs measured on this repository's 2-core machine are
in docs/results/training.md.

Transfer presets (`TRANSFER_PRESETS`, for `nas transfer` and `nas baselines --layout
imagenet`) set the ImageNet-layout network, the same `TrainConfig` and the Ray Train
resources; `cpu-transfer` and `gpu-mobile` are documented in the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from search_spaces.errors import InputError
from workers.train import TrainConfig, TrainError


class UnknownPresetError(InputError, KeyError):
    """A preset name that does not exist; the message lists the ones that do."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    network: dict[str, Any] = field(default_factory=dict)  # cells, filters, auxiliary, drop_path
    train: TrainConfig = field(default_factory=TrainConfig)
    trials: int = 8  # default trial count for `nas search`
    lr_grid: tuple[float, ...] = ()  # peak lrs `nas train`/`nas baselines` pick from; () = lr
    pick_share: float = 0.1  # each lr's short run: this slice of the budget (workers.recipe)
    timeout: float | None = None  # `nas search` stops after this many seconds (--timeout)
    # A search on the clock (train.time_budget): the first rung in seconds of training
    # (Optuna's min_resource) and the reduction factor; rungs r, r*eta, ... up to the budget.
    rung_seconds: int | None = None
    reduction_factor: int = 3
    # Searched macro decisions beside the cell: {"cells": (1, 2), "filters": (24, 32, ...)};
    # a name left out keeps the network's value (config keys cells_choices / filters_choices).
    macro: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # The throughput pre-filter (a search on the clock): a candidate estimated to train fewer
    # images than this in its first rung (`rung_seconds`) is pruned before any worker.
    min_rung_images: int | None = None
    # The hard cap a search puts on candidates unless --max-mult-adds is given (mult-adds per
    # image at the candidate's own N@F): the searched network must not cost more than the
    # published cell it is compared with.
    max_mult_adds: int | None = None


# NASNet-A at cpu-compare's size (1@96): the cost every model of the comparison is held to
# (baselines by `match=nasnet-a`, the search by cpu-search's cap); a test recounts it.
NASNET_A_COMPARE_MULT_ADDS = 4_170_688

# The comparison's recipe (cpu-compare), which cpu-search ranks candidates by: 180 s on the
# clock, the schedule following it; formats measured per model.
_COMPARE_TRAIN = TrainConfig(
    epochs=30, time_budget=180.0, batch_size=64, lr=0.1, weight_decay=5e-4,
    label_smoothing=0.1, warmup_epochs=1.5, grad_clip=5.0, channels_last=None, bf16=None,
    eval_every=0, eval_batch_size=1000,
)

PRESETS: dict[str, Preset] = {
    "cpu-quick": Preset(
        name="cpu-quick",
        description="search trial on 2 CPU cores: N=1 F=96, 2 epochs of 8,000 images, "
                    "scored on the 5,000 validation images (about 90 s)",
        network={"cells": 1, "filters": 96, "auxiliary": False, "drop_path": 0.0},
        train=TrainConfig(
            epochs=2, batch_size=64, lr=0.1, weight_decay=5e-4, label_smoothing=0.0,
            warmup_epochs=0.2, grad_clip=5.0, subset=8000, channels_last=True, bf16=False,
            eval_batch_size=1000,
        ),
        trials=7,
    ),
    "cpu-compare": Preset(
        name="cpu-compare",
        description="one model of a comparison on 2 CPU cores: N=1 F=96; peak lr picked from "
                    "0.01/0.03/0.1/0.3 by 18 s runs on the 45,000 training images scored on the "
                    "5,000 validation images, then 180 s of training on all 50,000 (at most "
                    "30 epochs), scored on the 10,000 test images; formats measured per "
                    "model; baselines at NASNet-A's mult-adds (about 5 min a model)",
        network={"cells": 1, "filters": 96, "auxiliary": False, "drop_path": 0.0},
        train=_COMPARE_TRAIN,
        trials=1,
        # half-decade steps: BatchNorm networks train best near 0.1-0.3, the 1/16-width
        # networks without it (VGG-16, AlexNet) only at 0.01-0.03 (docs/results/training.md)
        lr_grid=(0.01, 0.03, 0.1, 0.3),
        pick_share=0.1,
    ),
    "cpu-search": Preset(
        name="cpu-search",
        description="search for the cpu-compare budget on 2 CPU cores: its network and "
                    "recipe, 180 s on the clock per candidate on the 45,000 training images, "
                    "successive halving at 10/30/90/180 s (1,000 validation images below the "
                    "top rung, all 5,000 at it); N in {0, 1, 2}, F in {24, 32, 48, 64, 96, "
                    "128, 192, 256, 384}, the stem stride in {1, 2} and B (blocks per cell) "
                    "in {1, ..., 5} searched beside the cell; 15 minutes, --timeout 2700 "
                    "for the full search",
        network={"cells": 1, "filters": 96, "auxiliary": False, "drop_path": 0.0},
        # cpu-compare's recipe, formats included (measured: the search times them once per
        # study, nas.search.driver.measure_search_formats), and 1,000 validation images
        # scored at each rung below the top
        train=replace(_COMPARE_TRAIN, report_images=1000),
        trials=100_000, timeout=900.0, rung_seconds=10, reduction_factor=3,
        # stride 2 runs the cells at 16x16: on 2 CPU cores about 4x the images per second at
        # a quarter of the mult-adds, which leaves room for wider F under the cost cap; N = 0
        # (the reduction cells only) about doubles the rate again, F up to 384 keeps such a
        # network near the cap (docs/results/comparison.md)
        # B (blocks per cell) from 1 to the paper's 5: a one- or two-block cell of dense 3x3
        # convolutions trains at about twice ResNet-18/16's rate on this kind of host
        macro={"cells": (0, 1, 2), "filters": (24, 32, 48, 64, 96, 128, 192, 256, 384),
               "stem_stride": (1, 2), "blocks": (1, 2, 3, 4, 5)},
        max_mult_adds=NASNET_A_COMPARE_MULT_ADDS,
    ),
    "cpu-final": Preset(
        name="cpu-final",
        description="final training on 2 CPU cores in at most 20 minutes: N=1 F=192, "
                    "5 epochs on all 50,000 training images, test-time flip",
        network={"cells": 1, "filters": 192, "auxiliary": False, "drop_path": 0.0},
        train=TrainConfig(
            epochs=5, batch_size=128, lr=0.2, weight_decay=5e-4, label_smoothing=0.1,
            warmup_epochs=0.3, grad_clip=5.0, channels_last=None, bf16=None,
            eval_every=0, eval_batch_size=1000, tta=True,
        ),
        trials=1,
    ),
    "gpu-nasnet": Preset(
        name="gpu-nasnet",
        description="the paper's child setting: N=2 F=768 (C=32), 20 epochs on all 45,000 "
                    "training images, cosine schedule, bf16 on the GPU",
        network={"cells": 2, "filters": 768, "auxiliary": False, "drop_path": 0.0},
        train=TrainConfig(
            epochs=20, batch_size=128, lr=0.1, weight_decay=5e-4, label_smoothing=0.0,
            warmup_epochs=0.0, grad_clip=5.0, eval_batch_size=1000,
        ),
        trials=100,
    ),
    "gpu-final": Preset(
        name="gpu-final",
        description="the paper's final recipe: NASNet 6@768, 600 epochs, batch 128, cosine, "
                    "ScheduledDropPath 0.4, auxiliary head (0.4), cutout 16",
        network={"cells": 6, "filters": 768, "auxiliary": True, "drop_path": 0.4},
        train=TrainConfig(
            epochs=600, batch_size=128, lr=0.025, weight_decay=5e-4, label_smoothing=0.0,
            warmup_epochs=0.0, grad_clip=5.0, cutout=16, eval_every=10, eval_batch_size=1000,
        ),
        trials=1,
    ),
}


def get_preset(name: str) -> Preset:
    return _lookup(PRESETS, name, "preset")


def _lookup(table: dict[str, Any], name: str, what: str) -> Any:
    if name not in table:
        raise UnknownPresetError(f"unknown {what} {name!r}; choose one of {', '.join(table)}")
    return table[name]


def require_hardware(preset: str, train: TrainConfig, gpus: float,
                     where: str = "this machine") -> None:
    """Refuse, before anything starts, a `gpu-` preset or a CUDA `train.device` where there
    is no GPU (`gpus` is what `where` has): gpu-nasnet on 2 CPU cores would run for days,
    and a CUDA device would die on its first tensor. An explicit `train.device: cpu` runs a
    gpu- preset on the CPU on purpose."""
    if gpus > 0:
        return
    device = train.device or "auto"
    if device.startswith("cuda"):
        raise TrainError(f"train.device {device!r} asks for a GPU, but {where} has none; "
                         "set train.device to cpu or auto")
    if preset.startswith("gpu-") and device == "auto":
        cpu = ", ".join(name for name in PRESETS if name.startswith("cpu-"))
        raise TrainError(f"--preset {preset} is for GPUs, but {where} has none; use a CPU "
                         f"preset ({cpu})")


# -- ImageNet layout (`nas transfer`) -------------------------------------------------------


@dataclass(frozen=True)
class TransferPreset:
    """A named budget: network size, training recipe and default resources."""

    name: str
    description: str
    network: dict[str, Any]  # cells / filters (cell networks), image_size, width (baselines)
    train: TrainConfig  # the one loop's recipe; batch_size is global, split over the workers
    min_scale: float = 0.25  # RandomResizedCrop: smallest area fraction of a crop
    resize_ratio: float = 1.15  # stored side = round(image_size x ratio); val = centre crop
    workers: int = 1
    gpus_per_worker: float = 0.0
    baseline_width: float = 1.0  # the one width rule for baselines under this budget


TRANSFER_PRESETS: dict[str, TransferPreset] = {
    "cpu-transfer": TransferPreset(
        name="cpu-transfer",
        description=(
            "one ImageNet-layout model in at most 20 minutes on 2 CPU cores: 64x64 input "
            "(stored at 74 px), cell networks 2@264 (N=2, F=264), baselines at width 0.5, "
            "batch 64, 6 epochs, one Ray Train worker with both cores"
        ),
        network={"cells": 2, "filters": 264, "image_size": 64},
        train=TrainConfig(epochs=6, batch_size=64, lr=0.1, warmup_epochs=0.5,
                          weight_decay=4e-5, eval_every=0, channels_last=False, bf16=False),
        min_scale=0.25,
        workers=1,
        baseline_width=0.5,
    ),
    "gpu-mobile": TransferPreset(
        name="gpu-mobile",
        description=(
            "the paper's mobile setting: N=4, F=1056 at 224x224 with the auxiliary head "
            "(weight 0.4) and label smoothing 0.1; SGD-Nesterov with a cosine schedule (the "
            "paper used RMSProp), 250 epochs, global batch 1024 over the GPUs given by "
            "--workers, min crop area 0.08"
        ),
        network={"cells": 4, "filters": 1056, "image_size": 224, "auxiliary": True},
        train=TrainConfig(epochs=250, batch_size=1024, lr=0.4, warmup_epochs=5,
                          weight_decay=4e-5, eval_every=10, eval_batch_size=256),
        min_scale=0.08,
        workers=1,
        gpus_per_worker=1.0,
    ),
}


# The one rule for the preset a command uses when none is given: (without a GPU, with GPUs).
DEFAULT_PRESETS: dict[str, tuple[str, str]] = {
    "search": ("cpu-search", "gpu-nasnet"),  # nas search: rank candidates
    "train": ("cpu-final", "gpu-final"),  # nas train: one final model
    "bench": ("cpu-quick", "gpu-nasnet"),  # nas bench train: a search trial's speed
    "baselines": ("cpu-compare", "gpu-final"),  # nas baselines --layout cifar
    "transfer": ("cpu-transfer", "gpu-mobile"),  # nas transfer, nas baselines --layout imagenet
}


def default_preset(command: str, has_gpu: bool | None = None) -> str:
    """The preset `command` uses without --preset; `has_gpu` None asks this machine (a search
    passes what its Ray cluster has)."""
    if has_gpu is None:
        import torch

        has_gpu = torch.cuda.is_available()
    return DEFAULT_PRESETS[command][bool(has_gpu)]


def preset_rows() -> list[dict[str, Any]]:
    """Every preset of both layouts, for `nas list --presets`: what it sizes, how long it
    trains, what it costs, and which commands use it by default."""
    defaults: dict[str, list[str]] = {}
    for command, pair in DEFAULT_PRESETS.items():
        for hardware, name in zip(("cpu", "gpu"), pair, strict=True):
            defaults.setdefault(name, []).append(f"{command} ({hardware})")
    rows = []
    for layout, table in (("cifar", PRESETS), ("imagenet", TRANSFER_PRESETS)):
        for name, preset in table.items():
            net, train = preset.network, preset.train
            rows.append({
                "name": name, "layout": layout, "cells": net.get("cells"),
                "filters": net.get("filters"), "image_size": net.get("image_size", 32),
                "epochs": train.epochs, "time_budget": train.time_budget,
                "batch_size": train.batch_size, "lr": train.lr,
                "lr_grid": list(getattr(preset, "lr_grid", ())),
                "default_for": defaults.get(name, []), "description": preset.description,
            })
    return rows


def get_transfer_preset(name: str) -> TransferPreset:
    return _lookup(TRANSFER_PRESETS, name, "transfer preset")
