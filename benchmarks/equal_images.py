"""Equal images, not equal seconds: is the searched cell better per image than the strongest
baselines, and loses under `cpu-compare` only because it trains fewer images per second?

Each model trains for the same number of epochs of the 45,000 training images under
cpu-compare's recipe with the clock taken out (epochs instead of 180 s, warm-up the same
share of them), at the peak lr its lr pick chose in docs/results/comparison.md, formats
measured, seed 0; it is scored on the 5,000 validation images (a diagnostic reads no test
image). Run from the repository root with nothing else on the machine:

    .venv/bin/python benchmarks/equal_images.py --data ../shared/data/cifar10 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace

from torch import nn

from nas.refs import resolve_ref
from search_spaces.registry import get_model
from workers.data import load_cifar10
from workers.presets import PRESETS
from workers.throughput import cpu_model
from workers.train import train

COMPARISON = "sqlite:///docs/results/comparison.db"


def models() -> dict[str, tuple[Callable[[], nn.Module], float]]:
    """name -> (builder, the lr the comparison's pick chose for it)."""
    searched = resolve_ref("s1:48", COMPARISON)
    return {
        "s1:48 1@128 stem stride 2": (
            lambda: searched.build(cells=1, filters=128, stem_stride=2), 0.1),
        "resnet18/16": (lambda: get_model("resnet18", layout="cifar", width=1 / 16), 0.3),
        "mobilenet-v1/4": (lambda: get_model("mobilenet-v1", layout="cifar", width=1 / 4), 0.3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 directory")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_cifar10(args.data, download=False)
    base = PRESETS["cpu-compare"].train
    print(json.dumps({"host": cpu_model(), "epochs": args.epochs, "seed": args.seed}))
    for name, (make, lr) in models().items():
        config = replace(base, time_budget=None, epochs=args.epochs, lr=lr, seed=args.seed,
                         warmup_epochs=base.warmup_epochs * args.epochs / base.epochs)
        start = time.perf_counter()
        result = train(make(), data.train, data.val, config)
        print(json.dumps({
            "model": name, "lr": lr, "val_accuracy": result.accuracy,
            "images_per_s": round(result.images_per_s), "train_s": round(result.train_seconds, 1),
            "wall_s": round(time.perf_counter() - start, 1),
            "channels_last": result.settings["channels_last"], "bf16": result.settings["bf16"],
        }), flush=True)


if __name__ == "__main__":
    main()
