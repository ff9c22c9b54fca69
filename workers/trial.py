"""The worker side of one search trial: a pure function of (genotype, settings, seed, data).

Stateless by design: it opens no database session and keeps nothing between calls, so Ray
may retry it on another worker. Per-epoch reports go out through `on_epoch`, whose answer
(True = prune) comes back from the driver.
"""

from __future__ import annotations

import math
import os
import socket
import statistics
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from search_spaces import Genotype, NetworkConfig, build_network
from workers import faults

EpochCallback = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class TrialSpec:
    """What a worker needs besides the data: all plain values, cheap to ship."""

    study: str
    number: int
    genotype: dict[str, Any]
    network: dict[str, Any]  # NetworkConfig fields
    train: Any  # workers.train.TrainConfig
    seed: int
    threads: int = 1  # torch intra-op threads (= the CPUs Ray reserved for the task)
    measure_latency: bool = False  # median forward time at batch 1 on this device
    extra: dict[str, Any] = field(default_factory=dict)


def to_arrays(split: Any) -> dict[str, np.ndarray]:
    """A data split as numpy arrays: what goes into Ray's object store (zero-copy to read)."""
    return {"images": np.asarray(split.images), "labels": np.asarray(split.labels)}


def _split(arrays: Mapping[str, np.ndarray]) -> Any:
    """Back to a training split; copies, because object-store arrays are read-only."""
    from workers.data import Split

    images = torch.from_numpy(np.array(arrays["images"], copy=True))
    labels = torch.from_numpy(np.array(arrays["labels"], copy=True))
    return Split(images, labels)


def measure_latency(model: torch.nn.Module, image_size: int, device: torch.device,
                    repeats: int = 20) -> float:
    """Median forward time in milliseconds at batch 1, after a warm-up."""
    model.eval()
    x = torch.randn(1, 3, image_size, image_size, device=device)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 3):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run_trial(spec: TrialSpec, data: Mapping[str, Mapping[str, np.ndarray]],
              on_epoch: EpochCallback | None = None) -> dict[str, Any]:
    """Build, train on data["train"], score on data["val"]; never raises for a bad candidate.

    Returns a dict with `status` "complete", "pruned" or "fail"; a failure carries `error`
    (out-of-memory is named as such) so the driver can store it and carry on.
    """
    from workers.train import train

    started = time.perf_counter()
    result: dict[str, Any] = {
        "number": spec.number, "status": "fail", "error": None, "epochs": [],
        "val_accuracy": None, "train_seconds": None, "images_per_s": None,
        "latency_ms": None, "node": socket.gethostname(), "pid": os.getpid(), "device": None,
    }
    try:
        torch.manual_seed(spec.seed)
        np.random.seed(spec.seed % 2**32)
        torch.set_num_threads(max(1, spec.threads))
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        result["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        genotype = Genotype.from_dict(spec.genotype)
        config = NetworkConfig(**spec.network).validate()
        model = build_network(genotype, config)
        faults.break_op(model, spec.number)
        train_split, val_split = _split(data["train"]), _split(data["val"])
        result["setup_seconds"] = time.perf_counter() - started
        if faults.stub_seconds() is not None:  # load tests: everything but the training
            return _stub(result, genotype.key(), started)

        def report(epoch: Any) -> bool:
            row = asdict(epoch)
            result["epochs"].append(row)
            return bool(on_epoch(row)) if on_epoch is not None else False

        fit_started = time.perf_counter()
        outcome = train(model, train_split, val_split, spec.train, report)
        # Wall time inside the trainer, evaluation included: what is "training" for the
        # per-trial overhead (everything else is dispatch, build, hand-off, bookkeeping).
        result["fit_seconds"] = time.perf_counter() - fit_started
        result["epochs"] = [asdict(e) for e in outcome.epochs]
        result["val_accuracy"] = float(outcome.accuracy)
        result["train_seconds"] = float(outcome.train_seconds)
        result["images_per_s"] = float(outcome.images_per_s)
        result["stopped"] = outcome.stopped
        if outcome.stopped == "pruned":
            result["status"] = "pruned"
        elif outcome.stopped == "non-finite loss":
            result["status"] = "fail"
            result["error"] = "training diverged: non-finite loss"
        elif not math.isfinite(result["val_accuracy"]):
            result["error"] = "training ended without a validation accuracy"
        else:
            result["status"] = "complete"
            if spec.measure_latency:
                result["latency_ms"] = measure_latency(model, config.image_size, device)
    except torch.OutOfMemoryError as exc:
        result["error"] = f"out of memory: {_first_line(exc)}"
    except MemoryError:
        result["error"] = "out of memory: host memory exhausted"
    except Exception as exc:
        # The summary line first (what `nas leaderboard` shows), then the whole traceback.
        result["error"] = f"{_describe(exc)}\n{traceback.format_exc()[-6000:]}"
    finally:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    result["seconds"] = time.perf_counter() - started
    return result


def _stub(result: dict[str, Any], key: str, started: float) -> dict[str, Any]:
    """NAS_FAULT_STUB_TRAIN: sleep instead of training, score the cell by its key."""
    seconds = faults.stub_seconds() or 0.0
    time.sleep(seconds)
    accuracy = faults.stub_accuracy(key)
    result.update(status="complete", val_accuracy=accuracy, train_seconds=seconds,
                  fit_seconds=seconds, images_per_s=0.0, stopped=None,
                  epochs=[{"epoch": 1, "train_loss": 1.0, "val_accuracy": accuracy,
                           "seconds": seconds, "images_per_s": 0.0}])
    result["seconds"] = time.perf_counter() - started
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _describe(exc: BaseException) -> str:
    """`Type: message (file:line in function)` of the innermost frame: enough to act on."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" ({os.path.basename(last.filename)}:{last.lineno} in {last.name})"
    text = f"{type(exc).__name__}: {_first_line(exc)}{where}"
    if any(m in text.lower() for m in ("out of memory", "can't allocate memory")):
        text = f"out of memory: {text}"
    return text
