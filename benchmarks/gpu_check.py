"""The GPU check's figures (not a test): what the training path gets out of one CUDA device.

    benchmarks/gpu_check.py --prepare [--source ../shared/data/cifar10]   # here, once
    benchmarks/gpu_check.py --measure                                      # on the GPU

`--prepare` copies a small real CIFAR-10 subset (ImageFolder JPEGs, the project's own layout)
into `.gpu-check/data/cifar10`, the ignored folder the device tool carries (`carry:
[".gpu-check"]`); `benchmarks/gpu_check_prep.sh` also fetches the pytest wheels beside it.
`--measure` prints one table and writes `$OUT/gpu_check.json` (OUT defaults to
./gpu-check-out): images/s of the whole training step and of the model alone
(`workers.train.benchmark`) for NASNet-A at the gpu-nasnet size (N=2 F=768) and ResNet-18
(CIFAR layout), in bf16 / fp32 and channels_last / contiguous, the GPU memory peak, the same
for a plain PyTorch loop over the same network (no project code in the loop), and the wall
time of one gpu-nasnet epoch (45,000 images: the carried training images repeated).

NAS_GPU_CHECK_DEVICE=cpu is the dry run: the same code on the CPU with tiny step counts and
small networks of the same kinds (`--quick`: one network, two formats, for the default suite);
NAS_GPU_CHECK_DATA points it at another CIFAR-10 ImageFolder.
Without a GPU and without that variable it says so in one line and exits 3.
It imports only torch, torchvision, timm, safetensors and the project's `search_spaces` and
`workers` (no optuna, sqlalchemy, alembic, pydantic or ray: the GPU machine lacks them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".gpu-check"
DATA = CARRY / "data" / "cifar10"
TRAIN_PER_CLASS = 500  # 5,000 training images carried (about 5 MB of JPEG)
TEST_PER_CLASS = 100
EPOCH_IMAGES = 45_000  # one gpu-nasnet epoch: the search's training split
NETWORKS = {  # label -> (registry name, build settings)
    "NASNet-A 2@768": ("nasnet-a", {"layout": "cifar", "cells": 2, "filters": 768}),
    "ResNet-18 (CIFAR)": ("resnet18", {"layout": "cifar"}),
}
DRY_SIZES = {"nasnet-a": {"cells": 1, "filters": 48}, "resnet18": {"width": 0.25}}  # dry run
FORMATS = ((True, True), (False, True), (True, False), (False, False))  # (bf16, channels_last)


def prepare(source: Path) -> None:
    """Copy the first files of every class into DATA (ImageFolder layout, real JPEGs)."""
    if not (source / "train").is_dir():
        sys.exit(f"gpu_check: {source} has no train/; give --source a CIFAR-10 ImageFolder")
    tmp = DATA.with_name(".cifar10.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for split, count in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        for cls in sorted(p.name for p in (source / split).iterdir() if p.is_dir()):
            (tmp / split / cls).mkdir(parents=True)
            for name in sorted(os.listdir(source / split / cls))[:count]:
                shutil.copyfile(source / split / cls / name, tmp / split / cls / name)
    shutil.rmtree(DATA, ignore_errors=True)
    tmp.rename(DATA)  # whole or not at all
    size = sum(f.stat().st_size for f in DATA.rglob("*") if f.is_file())
    print(f"gpu_check: {DATA.relative_to(ROOT)}: {TRAIN_PER_CLASS} train + {TEST_PER_CLASS} "
          f"test images per class, {size / 2**20:.1f} MiB")


# -- measuring ------------------------------------------------------------------------------


def _settings(dry: bool) -> dict[str, Any]:
    """Step counts: the H200 run fits in about 3 minutes; the dry run only walks the code."""
    if dry:
        return {"batch": 4, "steps": 1, "repeats": 1, "epoch_batch": 4, "epoch_steps": 2,
                "val_images": 16, "threads": 1}
    return {"batch": 128, "steps": 20, "repeats": 3, "epoch_batch": 128, "epoch_steps": 60,
            "val_images": 5000, "threads": None}  # None: the cores this process may use


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: Any) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _build(name: str, settings: dict[str, Any], dry: bool) -> Any:
    """The network; in the dry run a small one of the same kind (2 CPU cores)."""
    import torch

    from search_spaces import get_arch

    torch.manual_seed(0)
    return get_arch(name).build(**{**settings, **(DRY_SIZES[name] if dry else {})})


def plain_loop(model: Any, x_u8: Any, y: Any, batch: int, bf16: bool, channels_last: bool,
               steps: int, repeats: int) -> dict[str, float]:
    """Images/s of a textbook PyTorch loop over `model`: uint8 data on the device, a pad-4
    crop (one offset per batch) and per-image flip, SGD-Nesterov, clip 5 — no project code."""
    import torch
    import torch.nn.functional as F

    device = x_u8.device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    mean = torch.tensor([125.31, 122.95, 113.87], device=device).view(1, 3, 1, 1)
    std = torch.tensor([62.99, 62.09, 66.70], device=device).view(1, 3, 1, 1)
    n = len(y)

    def batch_from_data() -> tuple[Any, Any]:
        idx = torch.randint(0, n, (batch,), device=device)
        xb = F.pad(x_u8[idx], (4, 4, 4, 4))
        i, j = (int(v) for v in torch.randint(0, 9, (2,)))  # host-side offsets: no sync
        xb = xb[:, :, i:i + 32, j:j + 32]
        flip = torch.rand(batch, device=device) < 0.5
        xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
        xb = ((xb.float() - mean) / std).contiguous(memory_format=fmt)
        return xb, y[idx]

    def step(xb: Any, yb: Any) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(xb)
        loss = F.cross_entropy(out.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    fixed = batch_from_data()
    runs = {"whole": lambda: step(*batch_from_data()), "model": lambda: step(*fixed)}
    return _rates(runs, device, batch, steps, repeats)


def _rates(runs: dict[str, Callable[[], None]], device: Any, batch: int, steps: int,
           repeats: int) -> dict[str, float]:
    """Median images/s of each run over `repeats`, alternating their order; one warm-up."""
    for fn in runs.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in runs}
    names = list(runs)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                runs[name]()
            _sync(device)
            samples[name].append(steps * batch / (time.perf_counter() - start))
    whole, model = statistics.median(samples["whole"]), statistics.median(samples["model"])
    return {"images_per_s": whole, "model_only_images_per_s": model, "ratio": whole / model}


def measure_throughput(device: Any, data: Any, knobs: dict[str, Any],
                       log: Callable[[str], None], quick: bool = False) -> list[dict[str, Any]]:
    """The table's rows: every network in every format, through the project and plainly
    (`quick`: ResNet-18 in two formats, for the default suite's dry run)."""
    from workers.presets import get_preset
    from workers.train import benchmark

    preset = get_preset("gpu-nasnet").train
    dry = device.type != "cuda"
    x_u8, y = data.train.x.to(device), data.train.y.to(device)
    rows = []
    networks = list(NETWORKS.items())[1:] if quick else NETWORKS.items()
    for label, (name, settings) in networks:
        for bf16, channels_last in FORMATS[1::2] if quick else FORMATS:
            config = replace(preset, device=str(device), batch_size=knobs["batch"], bf16=bf16,
                             channels_last=channels_last, threads=knobs["threads"])
            _peak_reset(device)
            ours = benchmark(_build(name, settings, dry), data.train, config, steps=knobs["steps"],
                             repeats=knobs["repeats"])
            peak = _peak_mib(device)
            _peak_reset(device)
            plain = plain_loop(_build(name, settings, dry), x_u8, y, knobs["batch"], bf16,
                               channels_last, knobs["steps"], knobs["repeats"])
            row = {
                "network": label, "bf16": bf16, "channels_last": channels_last,
                "batch": knobs["batch"],
                "images_per_s": round(ours["images_per_s"], 1),
                "model_only_images_per_s": round(ours["model_only_images_per_s"], 1),
                "ratio": round(ours["ratio"], 3),
                "peak_mib": peak,
                "plain_images_per_s": round(plain["images_per_s"], 1),
                "plain_model_only_images_per_s": round(plain["model_only_images_per_s"], 1),
                "plain_ratio": round(plain["ratio"], 3),
                "plain_peak_mib": _peak_mib(device),
                "ours_vs_plain": round(ours["images_per_s"] / plain["images_per_s"], 3),
            }
            rows.append(row)
            log(_row_text(row))
    return rows


def measure_epoch(device: Any, data: Any, knobs: dict[str, Any]) -> dict[str, Any]:
    """One gpu-nasnet epoch over 45,000 images (the carried ones repeated): timed in full when
    a first timed slice says it takes under 150 s, else extrapolated from that slice."""
    import torch

    from workers.data import Split, subset
    from workers.presets import get_preset
    from workers.train import train

    preset = get_preset("gpu-nasnet")
    dry = device.type != "cuda"
    repeat = -(-EPOCH_IMAGES // len(data.train))
    big = Split(data.train.x.repeat(repeat, 1, 1, 1)[:EPOCH_IMAGES],
                data.train.y.repeat(repeat)[:EPOCH_IMAGES])
    config = replace(preset.train, device=str(device), epochs=1,
                     batch_size=knobs["epoch_batch"], threads=knobs["threads"])
    val = subset(data.val, knobs["val_images"], seed=0)
    steps_per_epoch = EPOCH_IMAGES // config.batch_size
    settings = {"layout": "cifar", **preset.network}
    slice_config = replace(config, max_steps=knobs["epoch_steps"])
    warm = replace(slice_config, max_steps=min(5, knobs["epoch_steps"]))
    train(_build("nasnet-a", settings, dry), big, val, warm)  # cuDNN plans, allocator
    _peak_reset(device)
    part = train(_build("nasnet-a", settings, dry), big, val, slice_config)
    per_step = part.train_seconds / part.steps
    predicted = per_step * steps_per_epoch
    out: dict[str, Any] = {
        "preset": "gpu-nasnet", "images": EPOCH_IMAGES, "batch": config.batch_size,
        "steps_per_epoch": steps_per_epoch, "slice_steps": part.steps,
        "slice_seconds": round(part.train_seconds, 2), "settings": part.settings,
    }
    if predicted < 150 and device.type == "cuda":
        _peak_reset(device)
        start = time.perf_counter()
        full = train(_build("nasnet-a", settings, dry), big, val, config)
        torch.cuda.synchronize(device)
        out.update(how="timed in full", epoch_seconds=round(full.train_seconds, 2),
                   epoch_wall_seconds=round(time.perf_counter() - start, 2),
                   images_per_s=round(full.images_per_s, 1), val_accuracy=full.accuracy)
    else:
        out.update(how=f"extrapolated from {part.steps} timed steps",
                   epoch_seconds=round(predicted, 2), images_per_s=round(part.images_per_s, 1))
    out["peak_mib"] = _peak_mib(device)
    return out


def _row_text(row: dict[str, Any]) -> str:
    fmt = f"{'bf16' if row['bf16'] else 'fp32'} {'NHWC' if row['channels_last'] else 'NCHW'}"
    peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f}"
    return (f"{row['network']:<18} {fmt:<9} {row['images_per_s']:>9.1f} "
            f"{row['model_only_images_per_s']:>9.1f} {row['ratio']:>6.3f} {peak:>7} "
            f"{row['plain_images_per_s']:>9.1f} {row['plain_model_only_images_per_s']:>9.1f} "
            f"{row['plain_ratio']:>6.3f} {row['ours_vs_plain']:>6.3f}")


HEADER = (f"{'network':<18} {'format':<9} {'whole/s':>9} {'model/s':>9} {'ratio':>6} "
          f"{'peakMiB':>7} {'plain/s':>9} {'p.model':>9} {'p.rat':>6} {'vs.pl':>6}")


def measure(folder: Path, out_dir: Path, quick: bool = False) -> int:
    import torch

    device = torch.device(os.environ.get("NAS_GPU_CHECK_DEVICE") or "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on "
              "a GPU machine, or set NAS_GPU_CHECK_DEVICE=cpu for the dry run", file=sys.stderr)
        return 3
    if not folder.is_dir():
        print(f"gpu_check: {folder} is missing; run benchmarks/gpu_check_prep.sh first and "
              "carry .gpu-check", file=sys.stderr)
        return 2
    from workers.data import load_cifar10

    dry = device.type != "cuda"
    knobs = _settings(dry)
    if dry:
        torch.set_num_threads(1)  # a loaded shared CPU: no thread thrashing
    out_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    started = time.perf_counter()
    # The decoded cache goes to the temp dir: .gpu-check stays what is carried, nothing more.
    cache = Path(tempfile.gettempdir()) / "nas-gpu-check-cache"
    data = load_cifar10(folder, cache_dir=cache, download=False)
    figures: dict[str, Any] = {
        "dry_run": dry, "device": torch.cuda.get_device_name(device) if not dry else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "train_images": len(data.train), "knobs": knobs,
    }
    log(f"gpu_check on {figures['device']} (torch {torch.__version__}, CUDA "
        f"{torch.version.cuda}){' DRY RUN: tiny steps, figures mean nothing' if dry else ''}")
    log(HEADER)
    figures["throughput"] = measure_throughput(device, data, knobs, log, quick)
    figures["epoch"] = measure_epoch(device, data, knobs)
    e = figures["epoch"]
    log(f"gpu-nasnet epoch ({e['images']:,} images, batch {e['batch']}): "
        f"{e['epoch_seconds']:.1f} s of training steps, {e['how']}; "
        f"{e['images_per_s']:.0f} img/s; peak {e['peak_mib']} MiB")
    figures["seconds"] = round(time.perf_counter() - started, 1)
    log(f"measured in {figures['seconds']:.0f} s")
    tmp = out_dir / ".gpu_check.json.tmp"
    tmp.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    tmp.replace(out_dir / "gpu_check.json")
    (out_dir / "gpu_check_table.txt").write_text("\n".join(lines) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--prepare", action="store_true", help="make .gpu-check/data here")
    action.add_argument("--measure", action="store_true", help="measure (on the GPU)")
    parser.add_argument("--quick", action="store_true",
                        help="dry run only: one network, two formats (seconds on a CPU)")
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared/data/cifar10")
    parser.add_argument("--out", type=Path,
                        default=Path(os.environ.get("OUT") or "gpu-check-out"))
    args = parser.parse_args()
    if args.prepare:
        prepare(args.source)
        return 0
    return measure(Path(os.environ.get("NAS_GPU_CHECK_DATA") or DATA), args.out, args.quick)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
