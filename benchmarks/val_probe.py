"""Validation-only probe of one network under the `cpu-compare` recipe: the peak lr picked
from a grid by short runs, then 180 s of training on the 45,000 training images, scored on
the 5,000 validation images. It never reads the test split, so its figures may guide what the
search space offers next (docs/results/comparison.md, "A dense stem?").

`stem_k` replaces a cell network's one-conv stem by two 3x3 convolutions (3 -> stem_k at full
resolution, then stem_k -> the stem's width at its stride): the experiment asks whether a
ResNet-like dense stem would pay as a macro decision before the builder and the search get one.
Run from the repository root with nothing else on the machine, one JSON spec per call:

    .venv/bin/python benchmarks/val_probe.py '{"ref": "baseline:resnet18:0.0625"}' OUT.jsonl
    .venv/bin/python benchmarks/val_probe.py \
        '{"ref": "s1:48", "cells": 0, "filters": 192, "stem_k": 8, "seed": 1}' OUT.jsonl
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, NoReturn

import torch
from torch import nn

from nas.refs import resolve_ref
from search_spaces.cost import count_cost
from search_spaces.registry import get_model
from workers.data import load_cifar10
from workers.presets import get_preset
from workers.recipe import pick_lr
from workers.throughput import cpu_model
from workers.train import train

STORAGE = "sqlite:///docs/results/comparison.db"
KEYS = {"ref", "cells", "filters", "stride", "stem_mult", "stem_k", "seed", "grid"}


def fail(message: str) -> NoReturn:
    """Bad input: one line on stderr, exit 2, nothing written."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def parse_spec(text: str) -> dict[str, Any]:
    """The JSON spec, checked before any training: a wrong key or a cell network without
    N@F is a one-line error (exit 2), not a traceback after minutes."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"SPEC is not JSON ({exc}); e.g. '{{\"ref\": \"s1:48\", \"cells\": 0, "
             '"filters": 192}\'')
    if not isinstance(spec, dict) or "ref" not in spec:
        fail('SPEC needs "ref": "baseline:NAME:WIDTH" or a study ref')
    if unknown := set(spec) - KEYS:
        fail(f"SPEC has unknown keys {sorted(unknown)}; use {sorted(KEYS)}")
    if not spec["ref"].startswith("baseline:") and not {"cells", "filters"} <= set(spec):
        fail('a cell network needs "cells" and "filters" (N@F) in SPEC')
    return spec


def dense_stem(net: nn.Module, k: int) -> nn.Module:
    """`net` with its stem conv split in two: 3 -> k at stride 1, then k -> the old width."""
    conv = net.stem[0]
    width, stride = conv.out_channels, conv.stride[0]
    net.stem = nn.Sequential(
        nn.Conv2d(3, k, 3, padding=1, bias=False), nn.BatchNorm2d(k), nn.ReLU(),
        nn.Conv2d(k, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width))
    return net


def build(spec: dict[str, Any]) -> nn.Module:
    """A baseline (`baseline:NAME:WIDTH`) or a cell network at N@F, stem stride 2 by default."""
    if spec["ref"].startswith("baseline:"):
        _, name, width = spec["ref"].split(":")
        return get_model(name, layout="cifar", width=float(width))
    net = resolve_ref(spec["ref"], STORAGE).build(
        cells=spec["cells"], filters=spec["filters"], stem_stride=spec.get("stride", 2),
        stem_multiplier=spec.get("stem_mult"))
    return dense_stem(net, spec["stem_k"]) if spec.get("stem_k") else net


def main(spec: dict[str, Any], out: str) -> None:
    seed = int(spec.get("seed", 0))
    preset = get_preset("cpu-compare")
    config = dataclasses.replace(preset.train, seed=seed)
    cifar = load_cifar10(os.environ.get("NAS_DATA_DIR", "../shared/data/cifar10"))
    pick = pick_lr(lambda: build(spec), cifar, config, spec.get("grid", (0.1, 0.3)),
                   preset.pick_share)  # cifar.train and cifar.val only
    torch.manual_seed(seed)
    result = train(build(spec), cifar.train, cifar.val, dataclasses.replace(config, lr=pick.lr))
    row = {**spec, "seed": seed, "host": cpu_model(), "cost": dataclasses.asdict(
        count_cost(build(spec), 32)), "pick": list(pick.val_accuracy), "lr": pick.lr,
        "val_accuracy": result.accuracy, "images_per_s": round(result.images_per_s),
        "formats": {k: result.settings.get(k) for k in ("channels_last", "bf16", "threads")}}
    print(json.dumps(row), flush=True)
    with open(out, "a") as f:  # one line per probe: a crash loses only the probe in progress
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        fail("usage: val_probe.py SPEC OUT.jsonl")
    args = parse_spec(sys.argv[1])
    try:
        count_cost(build(args), 32)  # the ref resolves and the network builds: before data
    except Exception as exc:  # any failure here is the spec's: said in one line
        fail(f"SPEC does not build: {exc}")
    main(args, sys.argv[2])
