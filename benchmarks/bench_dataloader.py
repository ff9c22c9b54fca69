"""Our training step against the usual torchvision pipeline, on the same network.

The usual way to feed CIFAR-10 is a `DataLoader` over `ImageFolder` (or `datasets.CIFAR10`)
with `RandomCrop(32, padding=4)`, `RandomHorizontalFlip`, `ToTensor`, `Normalize`: PIL work
per image in worker processes. `workers.train` keeps the decoded uint8 tensors in memory and
augments whole batches instead. This script times both feeding the same `train_step`, plus
the model alone on a pre-made batch, and prints one JSON document:

    .venv/bin/python benchmarks/bench_dataloader.py nasnet-a --preset cpu-quick \\
        --data ../shared/data/cifar10 [--loader-workers 2] [--steps 5 --repeats 5]

`ratio_vs_dataloader` > 1 means our pipeline trains faster than the DataLoader one.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from itertools import islice
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from nas.training.train import network_settings, train_config
from search_spaces import get_arch
from workers.augment import MEAN, STD
from workers.data import load_cifar10
from workers.presets import get_preset
from workers.train import available_cores, benchmark, make_optimizer, train_step


def dataloader_rate(model: torch.nn.Module, root: Path, batch_size: int, steps: int,
                    repeats: int, loader_workers: int, channels_last: bool,
                    bf16: bool) -> list[float]:
    """Images/s of DataLoader + transforms + the same training step, per repeat."""
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),  # 0..1, so the 0..255 statistics are scaled
        transforms.Normalize([m / 255 for m in MEAN], [s / 255 for s in STD])])
    dataset = datasets.ImageFolder(str(root / "train"), transform=transform)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        num_workers=loader_workers, persistent_workers=loader_workers > 0)
    config = get_preset("cpu-quick").train
    optimizer = make_optimizer(model, config)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    device = torch.device("cpu")
    batches = iter(loader)
    rates = []
    for r in range(repeats + 1):  # the first repeat warms up the workers
        start = time.perf_counter()
        for x, y in islice(batches, steps):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            train_step(model, optimizer, params, x, y, config, bf16, device)
        if r > 0:
            rates.append(steps * batch_size / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ref")
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--data", type=Path, required=True,
                        help="CIFAR-10 in the ImageFolder layout (train/<class>/*.jpg)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--loader-workers", type=int, default=2)
    args = parser.parse_args()

    preset = get_preset(args.preset)
    arch = get_arch(args.ref)
    settings = network_settings(arch, preset.network)
    config = train_config(preset.train, batch_size=args.batch_size)
    torch.set_num_threads(available_cores())
    torch.manual_seed(0)
    ours = benchmark(arch.build(**settings), load_cifar10(args.data).train, config,
                     steps=args.steps, repeats=args.repeats)
    torch.manual_seed(0)
    model = arch.build(**settings)  # in the memory format and precision ours measured with
    if ours["channels_last"]:
        model.to(memory_format=torch.channels_last)
    loader = dataloader_rate(model, args.data, config.batch_size, args.steps, args.repeats,
                             args.loader_workers, ours["channels_last"], ours["bf16"])
    loader_rate = statistics.median(loader)
    print(json.dumps({
        "arch": arch.name, "preset": preset.name, "batch_size": config.batch_size,
        "threads": ours["threads"], "loader_workers": args.loader_workers,
        "images_per_s": round(ours["images_per_s"], 1),
        "model_only_images_per_s": round(ours["model_only_images_per_s"], 1),
        "dataloader_images_per_s": round(loader_rate, 1),
        "ratio_vs_model_only": round(ours["ratio"], 3),
        "ratio_vs_dataloader": round(ours["images_per_s"] / loader_rate, 3),
        "dataloader_samples": [round(v, 1) for v in loader],
    }, indent=2))


if __name__ == "__main__":
    main()
