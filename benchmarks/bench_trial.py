"""One search trial of a known genotype, exactly as `nas search` trains a candidate (not a test).

The same data hand-off (the study's training subset drawn once with the study seed, the
5,000 validation images), the same `TrialSpec` and worker function, without Ray and the
database, so the figure is the trial itself:

    .venv/bin/python benchmarks/bench_trial.py nasnet-a --preset cpu-quick \\
        --data ../shared/data/cifar10 [--seed 0] [--cpus 2]

Prints one JSON document: validation accuracy, the trial's wall seconds (build, training,
validation), and the per-epoch reports.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from nas.search.config import make_config
from nas.search.driver import for_trial, load_data, resolve_settings
from search_spaces import get_arch
from workers.trial import TrialSpec, run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ref", help="a registered genotype, e.g. nasnet-a")
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=int, default=2, help="threads of the trial")
    args = parser.parse_args()

    config = make_config(study="bench-trial", preset=args.preset, data=str(args.data),
                         seed=args.seed, cpus_per_trial=float(args.cpus))
    settings = resolve_settings(config, has_gpu=False)
    started = time.perf_counter()
    data, _ = load_data(config, settings)
    load_seconds = time.perf_counter() - started
    genotype = get_arch(args.ref).genotype
    if genotype is None:
        raise SystemExit(f"{args.ref} is not a cell genotype")
    spec = TrialSpec(study="bench-trial", number=0, genotype=genotype.to_dict(),
                     network=settings.network,
                     train=for_trial(settings.train, args.seed, args.cpus), seed=args.seed,
                     threads=args.cpus)
    result = run_trial(spec, data)
    print(json.dumps({
        "arch": args.ref, "preset": settings.preset, "status": result["status"],
        "error": result["error"], "val_accuracy": result["val_accuracy"],
        "trial_seconds": round(result["seconds"], 1),
        "train_seconds": round(result["train_seconds"] or 0.0, 1),
        "images_per_s": round(result["images_per_s"] or 0.0, 1),
        "data_load_seconds": round(load_seconds, 1), "threads": args.cpus,
        "train_images": len(data["train"]["labels"]), "val_images": len(data["val"]["labels"]),
        "epochs": result["epochs"],
    }, indent=2))


if __name__ == "__main__":
    main()
