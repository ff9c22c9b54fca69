"""A training-throughput estimate without training: a per-op latency table for this machine.

ProxylessNAS / FBNet style. A candidate network is built on the meta device (no memory, no
compute) and a forward pass there records the input shape of every unit: the stem, each
cell's preprocessing 1x1s and its ops, and the classifier head. Each distinct (unit, shape)
is timed once, forward plus backward at the training batch size, on this CPU with the
worker's thread count, and kept in a JSON table under the one cache rule
(`workers.source.default_cache_dir`). The estimate is the batch divided by the sum of the
unit times. Adds, concatenations, the loss and the optimizer step are left out, so the
estimate errs fast: a candidate it rules out is slower still (benchmarks/throughput.py
measures how the two compare).
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from search_spaces import Genotype, NetworkConfig, build_network
from workers.source import atomic_write, default_cache_dir

TABLE_VERSION = "1"
REPEATS = 3  # timed forward+backward passes per new entry (after one warm-up); the median


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform says)."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class Estimate:
    images_per_s: float
    step_seconds: float  # summed forward+backward time of one batch
    measured: int  # table entries this estimate had to time (0: all cached)


class LatencyTable:
    """Forward+backward seconds per (unit, input shape) on this machine, cached on disk.

    One file per (CPU model, threads, torch version, memory format): a table measured with
    other settings would predict another machine.
    """

    def __init__(self, threads: int, channels_last: bool = False,
                 cache_dir: Path | None = None) -> None:
        self.threads = max(1, int(threads))
        self.channels_last = bool(channels_last)
        self.machine = {"cpu": cpu_model(), "threads": self.threads, "torch": torch.__version__,
                        "channels_last": self.channels_last, "version": TABLE_VERSION}
        digest = hashlib.sha256(json.dumps(self.machine, sort_keys=True).encode()).hexdigest()
        self.path = (cache_dir or default_cache_dir()) / "latency" / f"{digest[:16]}.json"
        self.entries: dict[str, float] = self._read()

    def _read(self) -> dict[str, float]:
        """The cached entries; a missing, damaged or foreign file is an empty table."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("machine") != self.machine:
            return {}
        entries = data.get("entries")
        return {str(k): float(v) for k, v in entries.items()} if isinstance(entries, dict) else {}

    def _write(self) -> None:
        text = json.dumps({"machine": self.machine, "entries": self.entries}, indent=0)
        with suppress(OSError):  # an unwritable cache only costs time
            atomic_write(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def estimate(self, genotype: Genotype, network: dict[str, Any], batch_size: int) -> Estimate:
        """Training images per second of `genotype` at `network`, from the table (timing what
        it does not hold yet)."""
        config = NetworkConfig(**{**network, "auxiliary": False}).validate()
        with torch.device("meta"):
            model = build_network(genotype, config).train()
        shapes = _unit_shapes(model, batch_size, config.image_size)
        total, measured = 0.0, 0
        for unit, shape in shapes:
            key = f"{unit!r}|{tuple(shape)}"
            if key not in self.entries:
                self.entries[key] = self._time(unit, shape)
                measured += 1
            total += self.entries[key]
        if measured:
            self._write()
        return Estimate(batch_size / max(total, 1e-9), total, measured)

    def _time(self, meta_unit: nn.Module, shape: torch.Size) -> float:
        unit = copy.deepcopy(meta_unit).to_empty(device="cpu").train()
        for module in unit.modules():  # real weights: uninitialised memory may hold denormals
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        fmt = torch.channels_last if self.channels_last and len(shape) == 4 else None
        x = torch.randn(*shape)
        if fmt is not None:
            unit = unit.to(memory_format=fmt)
            x = x.contiguous(memory_format=fmt)
        x.requires_grad_(True)
        times = []
        with torch_threads(self.threads):
            for i in range(REPEATS + 1):
                start = time.perf_counter()
                out = unit(x)
                out.backward(torch.ones_like(out))
                if i:  # the first pass warms caches and allocators
                    times.append(time.perf_counter() - start)
                x.grad = None
                unit.zero_grad(set_to_none=True)
        return statistics.median(times)


def _units(model: nn.Module) -> list[nn.Module]:
    """The timed pieces of a network: stem, per cell its 1x1s and ops, the head."""
    units: list[nn.Module] = [model.stem]
    for cell in model.cells:
        pre = [p for p in (cell.pre0, cell.pre1) if p is not None]  # an unread input has none
        units += [*pre, *cell.narrow.values(), *cell.ops]
    units.append(model.head)
    return units


def _unit_shapes(model: nn.Module, batch_size: int,
                 image_size: int) -> list[tuple[nn.Module, torch.Size]]:
    """Each unit with the input shape it sees, from one forward pass on the meta device."""
    seen: list[tuple[nn.Module, torch.Size]] = []
    hooks = [unit.register_forward_pre_hook(
        lambda module, args: seen.append((module, args[0].shape))) for unit in _units(model)]
    try:
        with torch.device("meta"), torch.no_grad():
            model(torch.empty(batch_size, 3, image_size, image_size))
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Time with a trial's thread count (the table, the search's format choice), then give
    the process its own back."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def rung_shortfall(images_per_s: float, rung_seconds: float, min_images: int,
                   preset: str) -> str | None:
    """Why a candidate cannot train `min_images` in its first rung, or None if it can."""
    images = images_per_s * rung_seconds
    if images >= min_images:
        return None
    return (f"estimated {images_per_s:,.0f} img/s: {images:,.0f} images in the "
            f"{rung_seconds:g} s rung, below the {min_images:,} {preset} asks")
