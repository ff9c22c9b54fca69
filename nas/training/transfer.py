"""`nas transfer`: stack a cell (or build a baseline) at the ImageNet layout and train it on an
ImageFolder with Ray Train's `TorchTrainer` (DistributedDataParallel over K workers; gloo on
CPU, NCCL on GPU), score top-1 / top-5 on `val/`, write a checkpoint and a models row.

Why Ray Train rather than a local loop: the same command then scales from 2 CPU cores to a
GPU cluster by changing `--workers` and `--gpus-per-worker`. What is specific to transfer
lives here: the plan (preset + flags -> ImageNet-layout network, checked before any compute)
and the Ray cluster checks. The training itself is the one loop (`workers.train`, run as
DDP ranks by `workers.distributed`) on the ImageFolder data source (`workers.imagefolder`);
the presets are `workers.presets.TRANSFER_PRESETS`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import BadInput
from search_spaces import Arch, ConfigError, GenotypeError, count_cost
from workers.card import ModelCard
from workers.presets import UnknownPresetError, default_preset, get_transfer_preset
from workers.source import balanced_subset
from workers.train import TrainConfig, TrainError, with_overrides


@dataclass(frozen=True)
class TransferPlan:
    """Everything a transfer run needs, checked before any compute starts."""

    arch: Arch
    settings: dict[str, Any]  # Arch.resolve(...) at the ImageNet layout
    train: TrainConfig
    preset: str
    data: Path
    classes: tuple[str, ...]
    workers: int
    gpus_per_worker: float
    min_scale: float
    resize_ratio: float
    max_train_images: int | None  # a class-balanced subset of train/ (None: all)
    index: Any = field(repr=False)  # workers.imagefolder.FolderIndex

    @property
    def stored_size(self) -> int:
        return max(self.settings["image_size"],
                   round(self.settings["image_size"] * self.resize_ratio))


def plan_transfer(
    arch: Arch, data: Path | str | None, preset: str | None = None, cells: int | None = None,
    filters: int | None = None, image_size: int | None = None, width: float | None = None,
    epochs: int | None = None, batch_size: int | None = None, workers: int | None = None,
    gpus_per_worker: float | None = None, seed: int | None = None,
    max_train_images: int | None = None, network: dict[str, Any] | None = None,
) -> TransferPlan:
    """Resolve preset + flags into a plan; every user mistake is BadInput, before training."""
    from workers.imagefolder import ImageFolderError, scan_imagefolder

    try:
        chosen = get_transfer_preset(preset or default_preset("transfer"))
    except UnknownPresetError as exc:
        raise BadInput(str(exc)) from None
    if workers is not None and workers < 1:
        raise BadInput(f"--workers must be at least 1 (got {workers})")
    if gpus_per_worker is not None and gpus_per_worker < 0:
        raise BadInput(f"--gpus-per-worker must be 0 or more (got {gpus_per_worker})")
    if data is None:
        raise BadInput("nas transfer needs --data DIR (an ImageFolder with train/ and val/)")
    try:
        index = scan_imagefolder(Path(data))
    except ImageFolderError as exc:
        raise BadInput(str(exc)) from None
    if max_train_images is not None and max_train_images < 1:
        raise BadInput(f"--max-train-images must be at least 1 (got {max_train_images})")
    try:
        train = with_overrides(chosen.train, epochs=epochs, batch_size=batch_size,
                               seed=seed).validate()
    except TrainError as exc:
        raise BadInput(str(exc)) from None
    size = dict(chosen.network)
    if arch.kind == "baseline":
        size = {"image_size": size.get("image_size"), "width": chosen.baseline_width}
    size.update(network or {})
    size.update({k: v for k, v in {"cells": cells, "filters": filters, "image_size": image_size,
                                   "width": width}.items() if v is not None})
    try:
        settings = arch.resolve(layout="imagenet", num_classes=len(index.classes), **size)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    plan = TransferPlan(
        arch=arch, settings=settings, train=train, preset=chosen.name, data=Path(data),
        classes=index.classes, workers=chosen.workers if workers is None else workers,
        gpus_per_worker=chosen.gpus_per_worker if gpus_per_worker is None else gpus_per_worker,
        min_scale=chosen.min_scale, resize_ratio=chosen.resize_ratio,
        max_train_images=max_train_images, index=index,
    )
    if plan.train.batch_size % plan.workers:
        raise BadInput(f"batch size {plan.train.batch_size} does not split evenly over "
                       f"{plan.workers} workers; pick --workers that divides it")
    if _train_count(plan) < plan.train.batch_size:
        raise BadInput(f"{plan.data / 'train'} has {_train_count(plan)} images, fewer than one "
                       f"batch of {plan.train.batch_size}; add images or use a smaller batch")
    return plan


def _train_count(plan: TransferPlan) -> int:
    n = len(plan.index.files["train"])
    return n if plan.max_train_images is None else min(n, plan.max_train_images)


# -- Ray ------------------------------------------------------------------------------------


def ensure_ray(address: str | None = None) -> None:
    """Join `address` or start a local cluster; a process already connected keeps its own."""
    import logging

    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, logging_level=logging.WARNING,
                 log_to_driver=bool(os.environ.get("NAS_RAY_LOGS")), configure_logging=True)
    except (ConnectionError, RuntimeError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot connect to Ray at {address or 'a local cluster'}: {text}") from None


def check_resources(workers: int, gpus_per_worker: float) -> int:
    """CPUs each worker gets; BadInput when the cluster cannot hold K workers at all."""
    import ray

    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0.0))
    if gpus_per_worker > 0 and workers * gpus_per_worker > gpus:
        raise BadInput(f"--workers {workers} x --gpus-per-worker {gpus_per_worker:g} needs "
                       f"{workers * gpus_per_worker:g} GPUs; the Ray cluster has {gpus:g}"
                       + ("; use --gpus-per-worker 0 to train on CPUs" if gpus == 0 else ""))
    cpus = int(total.get("CPU", 0))
    node_cpus = max((int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n["Alive"]),
                    default=0)
    if workers > cpus:
        raise BadInput(f"--workers {workers} needs {workers} CPUs; the Ray cluster has {cpus}")
    return max(1, min(node_cpus, cpus // workers))


def _local_gpu_precheck(address: str | None, gpus_per_worker: float) -> None:
    """Refuse GPUs on a GPU-less machine before paying for a Ray start."""
    import ray

    if gpus_per_worker > 0 and address is None and not ray.is_initialized() \
            and torch.cuda.device_count() == 0:
        raise BadInput(f"--gpus-per-worker {gpus_per_worker:g} asks for GPUs, but this machine "
                       "has none (and no --ray-address was given); use --gpus-per-worker 0")


# -- the driver side ------------------------------------------------------------------------


def _load_data(plan: TransferPlan, cache_dir: Path | None) -> tuple[dict[str, np.ndarray], str]:
    """The decoded images as numpy arrays for the object store, and their fingerprint."""
    from workers.imagefolder import ImageFolderError, load_imagefolder

    try:
        data = load_imagefolder(plan.data, plan.stored_size, cache_dir=cache_dir,
                                index=plan.index)
    except ImageFolderError as exc:
        raise BadInput(str(exc)) from None
    train_x, train_y = data.train.x, data.train.y
    if plan.max_train_images is not None and plan.max_train_images < len(train_y):
        keep = balanced_subset(train_y, plan.max_train_images, plan.train.seed)
        train_x, train_y = train_x[keep], train_y[keep]
    return {"train_x": train_x.numpy(), "train_y": train_y.numpy(), "val_x": data.val.x.numpy(),
            "val_y": data.val.y.numpy()}, data.fingerprint


def run_transfer(
    plan: TransferPlan, storage: str | None, out: Path | str = Path("runs"),
    ray_address: str | None = None, cache_dir: Path | None = None, on_epoch: Any = None,
    record_kind: str = "transfer",
) -> dict[str, Any]:
    """Train `plan` with Ray Train; save the checkpoint; record it; return the `--json` row."""
    from nas.preflight import check_out_dir, check_storage
    from nas.training.train import cost_of
    from workers.checkpoint import save_checkpoint
    from workers.distributed import fit

    # What the end needs is tried first: a bad --storage or --out, or a network this machine
    # cannot hold, is named before the data is decoded and the workers train.
    check_storage(storage)
    check_out_dir(Path(out))
    cost_of(plan.arch, plan.settings)
    _local_gpu_precheck(ray_address, plan.gpus_per_worker)
    arrays, fingerprint = _load_data(plan, cache_dir)
    ensure_ray(ray_address)
    threads = check_resources(plan.workers, plan.gpus_per_worker)
    config = {
        "arch": plan.arch.name, "kind": plan.arch.kind,
        "genotype": plan.arch.genotype.to_dict() if plan.arch.genotype else None,
        "settings": plan.settings, "train": asdict(plan.train), "threads": threads,
        "min_scale": plan.min_scale,
    }
    out = Path(out)
    state, metrics, wall = fit(config, arrays, plan.workers, plan.gpus_per_worker, threads, out,
                               on_epoch)
    model = plan.arch.build(**plan.settings)
    model.load_state_dict(state, strict=True)
    cost = count_cost(model, plan.settings["image_size"])
    name = plan.arch.name.replace(":", "-").replace("/", "-")
    path = out / f"{name}-imagenet-{datetime.now(UTC):%Y%m%d-%H%M%S}.safetensors"
    card = transfer_card(plan, metrics, cost, fingerprint, threads, record_kind)
    save_checkpoint(path, model, card)
    row = {
        "arch": plan.arch.name, "kind": plan.arch.kind, "layout": "imagenet",
        "preset": plan.preset, "cells": plan.settings.get("cells"),
        "filters": plan.settings.get("filters"), "width": plan.settings.get("width"),
        "image_size": plan.settings["image_size"], "top1": float(metrics["top1"]),
        "top5": float(metrics["top5"]), "params": cost.params, "mult_adds": cost.mult_adds,
        "epochs": plan.train.epochs, "train_seconds": round(float(metrics["train_seconds"]), 2),
        "wall_seconds": round(wall, 2),
        "images_per_s": round(float(metrics.get("images_per_s", 0.0)), 1),
        "workers": metrics.get("workers"), "checkpoint": str(path), "model_id": None,
    }
    if storage is not None:
        row["model_id"] = _record(storage, plan, row, card, record_kind)
    return row


def transfer_card(plan: TransferPlan, metrics: dict[str, Any], cost: Any, fingerprint: str,
                  threads: int, command: str = "transfer") -> ModelCard:
    """The model card of a finished transfer run (rank 0's reported metrics)."""
    from workers.card import make_card

    genotype = plan.arch.genotype
    return make_card(
        ref=plan.arch.name, kind=plan.arch.kind,
        genotype=genotype.to_dict() if genotype else None,
        key=genotype.key() if genotype else None, settings=plan.settings,
        classes=plan.classes, preset=plan.preset,
        train={**asdict(plan.train), "workers": plan.workers,
               "gpus_per_worker": plan.gpus_per_worker, "threads_per_worker": threads,
               "stored_size": plan.stored_size, "min_scale": plan.min_scale,
               "max_train_images": plan.max_train_images},
        preset_train=asdict(get_transfer_preset(plan.preset).train),
        accuracy=float(metrics["top1"]), split="val", top5=float(metrics["top5"]),
        train_seconds=round(float(metrics["train_seconds"]), 2),
        images_per_s=round(float(metrics.get("images_per_s", 0.0)), 1),
        epochs=plan.train.epochs, params=cost.params, mult_adds=cost.mult_adds,
        command=command, data_fingerprint=fingerprint,
        extra_metrics={"train_loss": metrics.get("train_loss"),
                       "workers": metrics.get("workers")},
        data={"root": str(plan.data.resolve()), "train_images": _train_count(plan),
              "val_images": int(metrics.get("val_images", 0))},
    )


def _record(storage: str, plan: TransferPlan, row: dict[str, Any],
            card: ModelCard, record_kind: str) -> int:
    from nas.db import DatabaseError, record_model

    genotype = plan.arch.genotype
    try:
        record = record_model(
            storage, kind=record_kind, arch=plan.arch.name, layout="imagenet",
            config={"network": plan.settings, "train": {**card.recipe.settings,
                                                        "preset": plan.preset},
                    "data": card.provenance.data, "arch_kind": plan.arch.kind},
            metrics={k: row[k] for k in ("top1", "top5", "train_seconds", "wall_seconds",
                                         "images_per_s", "epochs", "workers")},
            genotype=genotype.to_dict() if genotype else None,
            key=genotype.key() if genotype else None, test_accuracy=row["top1"],
            params=row["params"], mult_adds=row["mult_adds"], checkpoint=row["checkpoint"],
            card=card.to_dict(),
        )
    except DatabaseError as exc:
        raise BadInput(f"checkpoint written to {row['checkpoint']}, but {exc}") from None
    return record.model_id


def transfer(
    ref: str, data: Path | str | None, storage: str | None, out: Path | str = Path("runs"),
    ray_address: str | None = None, on_epoch: Any = None, **options: Any,
) -> dict[str, Any]:
    """The whole of `nas transfer REF`: resolve, plan, train, save, record."""
    from nas.refs import resolve_ref

    gpus = options.get("gpus_per_worker")
    if gpus is not None:
        _local_gpu_precheck(ray_address, gpus)
    try:
        arch = resolve_ref(ref, storage)
        plan = plan_transfer(arch, data, **options)
    except (ConfigError, GenotypeError) as exc:
        raise BadInput(str(exc)) from None
    return run_transfer(plan, storage, out=out, ray_address=ray_address, on_epoch=on_epoch)


__all__ = ["TransferPlan", "check_resources", "ensure_ray", "plan_transfer", "run_transfer",
           "transfer"]
