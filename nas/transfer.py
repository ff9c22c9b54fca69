"""`nas transfer`: stack a cell (or build a baseline) at the ImageNet layout and train it on an
ImageFolder with Ray Train's `TorchTrainer` (DistributedDataParallel over K workers; gloo on
CPU, NCCL on GPU), score top-1 / top-5 on `val/`, write a checkpoint and a models row.

Why Ray Train rather than a local loop: the same command then scales from 2 CPU cores to a
GPU cluster by changing `--workers` and `--gpus-per-worker`. Data is decoded once
(`workers.imagefolder`) and shipped to the workers through Ray's object store; each worker
draws its own shard of every global batch and augments it on its device.

Transfer presets live here (not in `workers.presets`, whose presets are CIFAR-10 training
recipes): `TRANSFER_PRESETS`, documented in the README.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import BadInput
from search_spaces import Arch, ConfigError, Genotype, GenotypeError, count_cost
from workers.card import ModelCard


@dataclass(frozen=True)
class TransferConfig:
    """How one ImageNet-layout model is trained (all workers together)."""

    epochs: int = 10
    batch_size: int = 64  # global: split evenly over the workers
    lr: float = 0.1  # peak learning rate for `batch_size`
    momentum: float = 0.9  # SGD with Nesterov momentum
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0  # linear warm-up, then cosine to 0
    grad_clip: float | None = 5.0  # max gradient norm; None: no clipping
    min_scale: float = 0.25  # RandomResizedCrop: smallest area fraction of a crop
    resize_ratio: float = 1.15  # stored side = round(image_size x ratio); val = centre crop
    aux_weight: float = 0.4  # auxiliary-head loss weight (cell networks built with one)
    eval_every: int = 0  # score val/ every E epochs as well; 0: only after the last
    max_train_images: int | None = None  # a class-balanced subset of train/ (None: all)
    seed: int = 0

    def validate(self) -> TransferConfig:
        if self.epochs < 1:
            raise BadInput(f"--epochs must be at least 1 (got {self.epochs})")
        if self.batch_size < 1:
            raise BadInput(f"batch size must be at least 1 (got {self.batch_size})")
        if not 0 < self.min_scale <= 1:
            raise BadInput(f"min_scale must lie in (0, 1] (got {self.min_scale})")
        if self.resize_ratio < 1:
            raise BadInput(f"resize_ratio must be at least 1 (got {self.resize_ratio})")
        return self


@dataclass(frozen=True)
class TransferPreset:
    """A named budget: network size, training recipe and default resources."""

    name: str
    description: str
    network: dict[str, Any]  # cells / filters (cell networks), image_size, width (baselines)
    train: TransferConfig
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
        train=TransferConfig(epochs=6, batch_size=64, lr=0.1, warmup_epochs=0.5,
                             min_scale=0.25),
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
        train=TransferConfig(epochs=250, batch_size=1024, lr=0.4, warmup_epochs=5,
                             weight_decay=4e-5, min_scale=0.08, eval_every=10),
        workers=1,
        gpus_per_worker=1.0,
    ),
}


def default_transfer_preset() -> str:
    return "gpu-mobile" if torch.cuda.is_available() else "cpu-transfer"


def get_transfer_preset(name: str) -> TransferPreset:
    try:
        return TRANSFER_PRESETS[name]
    except KeyError:
        raise BadInput(
            f"unknown transfer preset {name!r}; use one of {', '.join(TRANSFER_PRESETS)}"
        ) from None


@dataclass(frozen=True)
class TransferPlan:
    """Everything a transfer run needs, checked before any compute starts."""

    arch: Arch
    settings: dict[str, Any]  # Arch.resolve(...) at the ImageNet layout
    train: TransferConfig
    preset: str
    data: Path
    classes: tuple[str, ...]
    workers: int
    gpus_per_worker: float
    index: Any = field(repr=False)  # workers.imagefolder.FolderIndex

    @property
    def stored_size(self) -> int:
        return max(self.settings["image_size"],
                   round(self.settings["image_size"] * self.train.resize_ratio))


def plan_transfer(
    arch: Arch,
    data: Path | str | None,
    preset: str | None = None,
    cells: int | None = None,
    filters: int | None = None,
    image_size: int | None = None,
    width: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    seed: int | None = None,
    max_train_images: int | None = None,
    network: dict[str, Any] | None = None,
) -> TransferPlan:
    """Resolve preset + flags into a plan; every user mistake is BadInput, before training."""
    from workers.imagefolder import ImageFolderError, scan_imagefolder

    chosen = get_transfer_preset(preset or default_transfer_preset())
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
    train = replace(
        chosen.train,
        **{k: v for k, v in {"epochs": epochs, "batch_size": batch_size, "seed": seed,
                             "max_train_images": max_train_images}.items() if v is not None},
    ).validate()
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
        index=index,
    )
    if plan.train.batch_size % plan.workers:
        raise BadInput(
            f"batch size {plan.train.batch_size} does not split evenly over {plan.workers} "
            "workers; pick --workers that divides it"
        )
    n_train = _train_count(plan)
    if n_train < plan.train.batch_size:
        raise BadInput(
            f"{plan.data / 'train'} has {n_train} images, fewer than one batch of "
            f"{plan.train.batch_size}; add images or use a smaller batch"
        )
    return plan


def _train_count(plan: TransferPlan) -> int:
    n = len(plan.index.files["train"])
    return n if plan.train.max_train_images is None else min(n, plan.train.max_train_images)


def _balanced_subset(labels: torch.Tensor, limit: int, seed: int) -> torch.Tensor:
    """`limit` indices spread evenly over the classes (round robin in a seeded order)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=gen)
    by_class: dict[int, list[int]] = {}
    for i in order.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    picked: list[int] = []
    queues = [iter(v) for _, v in sorted(by_class.items())]
    while len(picked) < limit and queues:
        alive = []
        for q in queues:
            i = next(q, None)
            if i is not None:
                picked.append(i)
                alive.append(q)
                if len(picked) == limit:
                    break
        queues = alive
    return torch.tensor(sorted(picked), dtype=torch.int64)


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
        raise BadInput(f"cannot connect to Ray at {address or 'a local cluster'}: {text}") \
            from None


def check_resources(workers: int, gpus_per_worker: float) -> int:
    """CPUs each worker gets; BadInput when the cluster cannot hold K workers at all."""
    import ray

    total = ray.cluster_resources()
    gpus = float(total.get("GPU", 0.0))
    if gpus_per_worker > 0 and workers * gpus_per_worker > gpus:
        raise BadInput(
            f"--workers {workers} x --gpus-per-worker {gpus_per_worker:g} needs "
            f"{workers * gpus_per_worker:g} GPUs; the Ray cluster has {gpus:g}"
            + ("; use --gpus-per-worker 0 to train on CPUs" if gpus == 0 else "")
        )
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
        raise BadInput(
            f"--gpus-per-worker {gpus_per_worker:g} asks for GPUs, but this machine has none "
            "(and no --ray-address was given); use --gpus-per-worker 0"
        )


# -- the worker side ------------------------------------------------------------------------


def _evaluate(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, size: int,
              num_classes: int, device: torch.device, batch: int) -> tuple[int, int, int]:
    """(top-1 correct, top-5 correct, count) on this worker's shard."""
    from workers.imagefolder import center_crop

    net.eval()
    top1 = top5 = 0
    k = min(5, num_classes)
    with torch.no_grad():
        for i in range(0, len(y), batch):
            xb = center_crop(x[i:i + batch].to(device, non_blocking=True), size)
            yb = y[i:i + batch].to(device)
            with _autocast(device):
                logits = net(xb)
            best = logits.float().topk(k, dim=1).indices
            top1 += int((best[:, 0] == yb).sum())
            top5 += int((best == yb[:, None]).any(dim=1).sum())
    net.train()
    return top1, top5, len(y)


def _autocast(device: torch.device) -> Any:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    """One Ray Train worker: DDP training on its shard of every global batch, then scoring.

    Every worker reports each epoch (Ray Train requires all to); the metrics carry every
    worker's rank and sample counts, gathered over the process group, so the driver can see
    who took part. Rank 0 reports the final weights as a Ray Train checkpoint.
    """
    import ray
    import ray.train
    import ray.train.torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from workers.imagefolder import random_resized_crop
    from workers.train import lr_at

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    device = ray.train.torch.get_device()
    arrays = ray.get(cfg["data"])
    train_x = torch.from_numpy(np.array(arrays["train_x"], copy=True))
    train_y = torch.from_numpy(np.array(arrays["train_y"], copy=True))
    val_x = torch.from_numpy(np.array(arrays["val_x"][rank::world], copy=True))
    val_y = torch.from_numpy(np.array(arrays["val_y"][rank::world], copy=True))
    genotype = Genotype.from_dict(cfg["genotype"]) if cfg["genotype"] else None
    arch = Arch(cfg["arch"], cfg["kind"], genotype)
    model = arch.build(**cfg["settings"])
    net = model
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    model = ray.train.torch.prepare_model(model)
    train_cfg = TransferConfig(**cfg["train"])
    size = cfg["settings"]["image_size"]
    per_worker = train_cfg.batch_size // world
    steps_per_epoch = len(train_y) // train_cfg.batch_size
    total = steps_per_epoch * train_cfg.epochs
    warmup = min(total, round(train_cfg.warmup_epochs * steps_per_epoch))
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": train_cfg.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=train_cfg.lr, momentum=train_cfg.momentum, nesterov=True,
    )
    aux = getattr(net, "aux_head", None) is not None
    aug = torch.Generator().manual_seed(train_cfg.seed * 1009 + rank)
    seen = 0
    step = 0
    train_seconds = 0.0
    queue = cfg.get("progress")
    for epoch in range(train_cfg.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(train_y),
                               generator=torch.Generator().manual_seed(train_cfg.seed + epoch))
        loss_sum = torch.zeros((), device=device)
        for s in range(steps_per_epoch):
            lo = s * train_cfg.batch_size + rank * per_worker
            idx = order[lo:lo + per_worker]
            xb = random_resized_crop(train_x[idx].to(device, non_blocking=True), size, aug,
                                     scale=(train_cfg.min_scale, 1.0))
            if device.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = train_y[idx].to(device, non_blocking=True)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, train_cfg.lr)
            if hasattr(net, "set_progress"):
                net.set_progress(step / max(1, total))
            with _autocast(device):
                logits = model(xb)
                loss = F.cross_entropy(logits.float(), yb,
                                       label_smoothing=train_cfg.label_smoothing)
                if aux and net.aux_logits is not None:
                    loss = loss + train_cfg.aux_weight * F.cross_entropy(
                        net.aux_logits.float(), yb, label_smoothing=train_cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if train_cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), train_cfg.grad_clip)
            opt.step()
            loss_sum += loss.detach()
            seen += len(idx)
            step += 1
        mean_loss = loss_sum / max(1, steps_per_epoch)
        dist.all_reduce(mean_loss)
        mean_loss = float(mean_loss) / world
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss became {mean_loss} in epoch {epoch + 1}; "
                                     "lower the learning rate")
        epoch_seconds = time.perf_counter() - start
        train_seconds += epoch_seconds
        last = epoch == train_cfg.epochs - 1
        metrics: dict[str, Any] = {
            "epoch": epoch + 1, "train_loss": mean_loss, "seconds": epoch_seconds,
            "images_per_s": steps_per_epoch * train_cfg.batch_size / epoch_seconds,
        }
        if last or (train_cfg.eval_every and (epoch + 1) % train_cfg.eval_every == 0):
            for buffer in net.buffers():  # evaluate exactly the weights rank 0 will save
                dist.broadcast(buffer, src=0)
            counts = torch.tensor(_evaluate(net, val_x, val_y, size, cfg["settings"]["num_classes"],
                                            device, 2 * per_worker),
                                  dtype=torch.float64, device=device)
            dist.all_reduce(counts)
            metrics["top1"] = float(counts[0] / counts[2])
            metrics["top5"] = float(counts[1] / counts[2])
            metrics["val_images"] = int(counts[2])
        mine = {"rank": rank, "train_samples": seen, "val_samples": len(val_y),
                "pid": os.getpid(), "host": socket.gethostname(), "device": str(device)}
        everyone: list[Any] = [None] * world
        dist.all_gather_object(everyone, mine)
        metrics["workers"] = everyone
        metrics["train_seconds"] = train_seconds
        if rank == 0 and queue is not None:
            queue.put({k: v for k, v in metrics.items() if k != "workers"})
        if last and rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
                save_file(state, os.path.join(tmp, "model.safetensors"))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)


# -- the driver side ------------------------------------------------------------------------


def _load_data(plan: TransferPlan, cache_dir: Path | None) -> dict[str, np.ndarray]:
    from workers.imagefolder import ImageFolderError, load_imagefolder

    try:
        data = load_imagefolder(plan.data, plan.stored_size, cache_dir=cache_dir,
                                index=plan.index)
    except ImageFolderError as exc:
        raise BadInput(str(exc)) from None
    train_x, train_y = data.train.x, data.train.y
    if plan.train.max_train_images is not None and plan.train.max_train_images < len(train_y):
        keep = _balanced_subset(train_y, plan.train.max_train_images, plan.train.seed)
        train_x, train_y = train_x[keep], train_y[keep]
    return {"train_x": train_x.numpy(), "train_y": train_y.numpy(),
            "val_x": data.val.x.numpy(), "val_y": data.val.y.numpy(),
            "fingerprint": np.frombuffer(data.fingerprint.encode(), dtype=np.uint8)}


def _drain(queue: Any, stop: threading.Event, on_epoch: Any) -> None:
    from ray.util.queue import Empty

    while True:
        try:
            item = queue.get(timeout=0.5)
        except Empty:
            if stop.is_set():
                return
            continue
        except Exception:  # the queue actor went away with the cluster
            return
        on_epoch(item)


def run_transfer(
    plan: TransferPlan,
    storage: str | None,
    out: Path | str = Path("runs"),
    ray_address: str | None = None,
    cache_dir: Path | None = None,
    on_epoch: Any = None,
    record_kind: str = "transfer",
) -> dict[str, Any]:
    """Train `plan` with Ray Train; save the checkpoint; record it; return the `--json` row."""
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue
    from safetensors.torch import load_file

    from workers.checkpoint import save_checkpoint

    _local_gpu_precheck(ray_address, plan.gpus_per_worker)
    arrays = _load_data(plan, cache_dir)
    fingerprint = bytes(arrays.pop("fingerprint")).decode()
    ensure_ray(ray_address)
    threads = check_resources(plan.workers, plan.gpus_per_worker)
    use_gpu = plan.gpus_per_worker > 0
    resources: dict[str, float] = {"CPU": threads}
    if use_gpu:
        resources["GPU"] = plan.gpus_per_worker
    queue = Queue(actor_options={"num_cpus": 0}) if on_epoch is not None else None
    config = {
        "arch": plan.arch.name, "kind": plan.arch.kind,
        "genotype": plan.arch.genotype.to_dict() if plan.arch.genotype else None,
        "settings": plan.settings, "train": asdict(plan.train), "threads": threads,
        "seed": plan.train.seed, "data": ray.put(arrays), "progress": queue,
    }
    del arrays
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=".ray-train-", dir=out)).resolve()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=plan.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=ray.train.RunConfig(
            name="transfer", storage_path=str(run_dir),
            failure_config=ray.train.FailureConfig(max_failures=0)),
    )
    stop = threading.Event()
    drainer = None
    if queue is not None:
        drainer = threading.Thread(target=_drain, args=(queue, stop, on_epoch), daemon=True)
        drainer.start()
    start = time.perf_counter()
    try:
        try:
            result = trainer.fit()
        except ray.train.TrainingFailedError as exc:
            raise RuntimeError(f"Ray Train failed: {_first_line(exc)}") from None
        wall = time.perf_counter() - start
        if result.checkpoint is None:
            raise RuntimeError("Ray Train finished without a checkpoint from rank 0")
        with result.checkpoint.as_directory() as folder:
            state = load_file(os.path.join(folder, "model.safetensors"))
        metrics = dict(result.metrics)
    finally:
        stop.set()
        if drainer is not None:
            drainer.join(timeout=5)
        if queue is not None:
            queue.shutdown()
        shutil.rmtree(run_dir, ignore_errors=True)
    model = plan.arch.build(**plan.settings)
    model.load_state_dict(state, strict=True)
    cost = count_cost(model, plan.settings["image_size"])
    safe_name = plan.arch.name.replace(":", "-").replace("/", "-")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = out / f"{safe_name}-imagenet-{stamp}.safetensors"
    top1, top5 = float(metrics["top1"]), float(metrics["top5"])
    train_seconds = float(metrics["train_seconds"])
    card = transfer_card(plan, metrics, cost, fingerprint, threads, record_kind)
    save_checkpoint(path, model, card)
    images_per_s = float(metrics.get("images_per_s", 0.0))
    row = {
        "arch": plan.arch.name,
        "kind": plan.arch.kind,
        "layout": "imagenet",
        "preset": plan.preset,
        "cells": plan.settings.get("cells"),
        "filters": plan.settings.get("filters"),
        "width": plan.settings.get("width"),
        "image_size": plan.settings["image_size"],
        "top1": top1,
        "top5": top5,
        "params": cost.params,
        "mult_adds": cost.mult_adds,
        "epochs": plan.train.epochs,
        "train_seconds": round(train_seconds, 2),
        "wall_seconds": round(wall, 2),
        "images_per_s": round(images_per_s, 1),
        "workers": metrics.get("workers"),
        "checkpoint": str(path),
        "model_id": None,
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
               "stored_size": plan.stored_size},
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
            storage,
            kind=record_kind,
            arch=plan.arch.name,
            config={"network": plan.settings, "train": {**card.recipe.settings,
                                                        "preset": plan.preset},
                    "data": card.provenance.data, "arch_kind": plan.arch.kind},
            metrics={k: row[k] for k in ("top1", "top5", "train_seconds", "wall_seconds",
                                         "images_per_s", "epochs", "workers")},
            genotype=genotype.to_dict() if genotype else None,
            key=genotype.key() if genotype else None,
            layout="imagenet",
            test_accuracy=row["top1"],
            params=row["params"],
            mult_adds=row["mult_adds"],
            checkpoint=row["checkpoint"],
            card=card.to_dict(),
        )
    except DatabaseError as exc:
        raise BadInput(f"checkpoint written to {row['checkpoint']}, but {exc}") from None
    return record.model_id


def _first_line(exc: BaseException) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause).strip()
    return text.splitlines()[-1] if text else type(cause).__name__


def transfer(
    ref: str,
    data: Path | str | None,
    storage: str | None,
    out: Path | str = Path("runs"),
    ray_address: str | None = None,
    on_epoch: Any = None,
    **options: Any,
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


__all__ = [
    "TRANSFER_PRESETS",
    "TransferConfig",
    "TransferPlan",
    "TransferPreset",
    "check_resources",
    "default_transfer_preset",
    "ensure_ray",
    "get_transfer_preset",
    "plan_transfer",
    "run_transfer",
    "train_loop_per_worker",
    "transfer",
]
