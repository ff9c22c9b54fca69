"""The Ray Train worker: `workers.train.train` as one rank of a DistributedDataParallel group.

Ray Train's `TorchTrainer` starts K of these (`nas transfer` launches them) with the process
group already initialised (gloo on CPU, NCCL on GPU); the loop itself wraps the model, takes
this rank's slice of every global batch and agrees decisions over the ranks, exactly the code
path a single-process `nas train` runs. Data arrives once through Ray's object store.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_spaces import Arch, Genotype
from workers.augment import ResizedCrop
from workers.source import Split
from workers.train import EpochReport, TrainConfig, train


def train_loop_per_worker(cfg: dict[str, Any]) -> None:
    """One Ray Train worker: `workers.train.train` inside the process group Ray Train set up
    (DDP over gloo or NCCL), then rank 0 reports the weights as a Ray Train checkpoint.

    Each worker reports its rank and sample counts, gathered over the group, so the driver
    can see who took part; rank 0 sends each epoch's progress through the queue.
    """
    import ray
    import ray.train
    import ray.train.torch
    import torch.distributed as dist
    from safetensors.torch import save_file

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    arrays = ray.get(cfg["data"])
    train_split, val_split = (
        Split(torch.from_numpy(np.array(arrays[f"{s}_x"], copy=True)),
              torch.from_numpy(np.array(arrays[f"{s}_y"], copy=True))) for s in ("train", "val"))
    config = TrainConfig(**{**cfg["train"], "threads": cfg["threads"],
                            "device": str(ray.train.torch.get_device())})
    torch.manual_seed(config.seed)
    genotype = Genotype.from_dict(cfg["genotype"]) if cfg["genotype"] else None
    model = Arch(cfg["arch"], cfg["kind"], genotype).build(**cfg["settings"])
    queue = cfg.get("progress")

    def progress(report: EpochReport) -> bool:
        if rank == 0 and queue is not None:
            queue.put(report.as_progress())
        return False

    view = ResizedCrop(cfg["settings"]["image_size"], min_scale=cfg["min_scale"])
    result = train(model, train_split, val_split, config, on_epoch=progress, view=view)
    if result.stopped == "non-finite loss":
        raise FloatingPointError(f"training loss became non-finite in epoch "
                                 f"{len(result.epochs)}; lower the learning rate")
    last = result.epochs[-1]
    mine = {"rank": rank, "train_samples": result.steps * config.batch_size // world,
            "val_samples": len(val_split.shard(rank, world)), "pid": os.getpid(),
            "host": socket.gethostname(), "device": result.settings["device"]}
    everyone: list[Any] = [None] * world
    dist.all_gather_object(everyone, mine)
    metrics = {**last.as_progress(), "top1": result.accuracy, "top5": result.top5,
               "val_images": len(val_split), "train_seconds": result.train_seconds,
               "images_per_s": result.images_per_s, "workers": everyone}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(tmp, "model.safetensors"))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


# -- the driver side: the Ray Train launch ------------------------------------------------


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


def fit(config: dict[str, Any], arrays: dict[str, np.ndarray], workers: int,
        gpus_per_worker: float, threads: int, out: Path,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        ) -> tuple[dict[str, torch.Tensor], dict[str, Any], float]:
    """Run `train_loop_per_worker(config)` on `workers` Ray Train workers (NCCL when they
    have GPUs, else gloo) with `arrays` shipped once through the object store; return rank
    0's weights, its last report and the wall time. Progress items reach `on_epoch` from a
    queue while the run goes on."""
    import ray
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.util.queue import Queue
    from safetensors.torch import load_file

    use_gpu = gpus_per_worker > 0
    resources: dict[str, float] = {"CPU": threads}
    if use_gpu:
        resources["GPU"] = gpus_per_worker
    queue = Queue(actor_options={"num_cpus": 0}) if on_epoch is not None else None
    config = {**config, "data": ray.put(arrays), "progress": queue}
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=".ray-train-", dir=out)).resolve()
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
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
        return state, dict(result.metrics), wall
    finally:
        stop.set()
        if drainer is not None:
            drainer.join(timeout=5)
        if queue is not None:
            queue.shutdown()
        shutil.rmtree(run_dir, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None:
        cause = cause.__cause__
    text = str(cause).strip()
    return text.splitlines()[-1] if text else type(cause).__name__


__all__ = ["fit", "train_loop_per_worker"]
