"""How well the pre-filter's latency-table estimate predicts measured training img/s (not a test).

A dozen searched cells (sampled with seeds 0..11) at N@F in {1, 2} x {24, 48, 96}: each is
estimated from a fresh latency table (workers.throughput) and then trained for a few steps
through the one training loop on real CIFAR-10 images, with cpu-quick's recipe:

    .venv/bin/python benchmarks/bench_throughput.py --data ../shared/data/cifar10 \\
        [--candidates 12] [--steps 6] [--threads 1]

Prints one JSON document: per candidate the estimate, the measured img/s and their ratio,
and over all of them the Spearman rank correlation and the median ratio measured/estimate
(the part of a step the table leaves out: adds, concatenations, loss, optimizer, data).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from search_spaces import NetworkConfig, build_network
from search_spaces.space import sample_genotype
from workers.data import load_cifar10, subset
from workers.presets import PRESETS
from workers.throughput import LatencyTable
from workers.train import train

SIZES = [(1, 24), (1, 48), (1, 96), (2, 24), (2, 48), (2, 96)]


def spearman(a: list[float], b: list[float]) -> float:
    ranks = [np.argsort(np.argsort(x)) for x in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--candidates", type=int, default=12)
    parser.add_argument("--steps", type=int, default=6, help="training steps measured")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    recipe = PRESETS["cpu-quick"].train
    config = dataclasses.replace(recipe, epochs=1, max_steps=args.steps, subset=None,
                                 threads=args.threads, eval_every=0)
    data = load_cifar10(args.data)
    images = subset(data.train, config.batch_size * args.steps, seed=0)
    val = subset(data.val, 64, seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        table = LatencyTable(args.threads, bool(config.channels_last), Path(cache))
        for i in range(args.candidates):
            genotype = sample_genotype(random.Random(i))
            cells, filters = SIZES[i % len(SIZES)]
            network = {"cells": cells, "filters": filters}
            started = time.perf_counter()
            estimate = table.estimate(genotype, network, config.batch_size)
            estimate_s = time.perf_counter() - started
            model = build_network(genotype, NetworkConfig(**network))
            result = train(model, images, val, config)
            rows.append({
                "seed": i, "size": f"{cells}@{filters}",
                "estimate": round(estimate.images_per_s, 1),
                "measured": round(result.images_per_s, 1),
                "ratio": round(result.images_per_s / estimate.images_per_s, 2),
                "estimate_s": round(estimate_s, 2), "new_entries": estimate.measured,
            })
    print(json.dumps({
        "threads": args.threads, "batch_size": config.batch_size,
        "channels_last": config.channels_last, "steps": args.steps,
        "spearman": round(spearman([r["estimate"] for r in rows],
                                   [r["measured"] for r in rows]), 3),
        "median_ratio": statistics.median(r["ratio"] for r in rows),
        "candidates": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
