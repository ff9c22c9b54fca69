"""Benchmarks of the search service (not a test): per-trial overhead, and sampler quality.

    # per-trial time spent outside training (dispatch, model build, data hand-off, DB writes)
    .venv/bin/python benchmarks/bench_search.py overhead --trials 8 --data DIR
    # best validation accuracy after 5, 10, 20 trials for tpe, evolution and random (same seed)
    .venv/bin/python benchmarks/bench_search.py samplers --trials 20 --data DIR

Overhead is measured from the database alone, with one trial at a time
(--cpus-per-trial = all CPUs): for trial n, the driver's wall time from trial n-1's end to
trial n's end, minus the time the worker spent inside the trainer (training and its
validation passes). That interval holds the ask,
the meta-device cost check, the database writes, the Ray dispatch, the model build, the
data hand-off, the epoch reports and Optuna's tell. Trial 0 is skipped (it pays for the
cluster start and data load).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from nas.db import open_database
from nas.search.config import make_config
from nas.search.driver import run_search


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    url = f"sqlite:///{args.workdir / 'overhead.db'}"
    study = f"overhead-{int(time.time())}"
    config = make_config(
        study=study, preset=args.preset, trials=args.trials, sampler="random",
        pruner="none", data=args.data, seed=args.seed, cpus_per_trial=float(os.cpu_count() or 1),
    )
    started = time.time()
    run_search(config, url, progress=lambda line: print(line, file=sys.stderr))
    wall = time.time() - started
    db = open_database(url)
    trials = db.trials(db.search(study).search_id)
    db.close()
    rows = []
    for prev, cur in itertools.pairwise(trials):
        if cur.fit_seconds is None or prev.finished_at is None or cur.finished_at is None:
            continue
        span = (cur.finished_at - prev.finished_at).total_seconds()
        rows.append({"trial": cur.number, "span_s": span, "fit_s": cur.fit_seconds,
                     "outside_s": span - cur.fit_seconds})
    outside = [r["outside_s"] for r in rows]
    spans = [r["span_s"] for r in rows]
    return {
        "preset": args.preset, "trials": len(trials), "wall_s": round(wall, 1),
        "median_outside_training_s": round(statistics.median(outside), 3),
        "median_trial_s": round(statistics.median(spans), 2),
        "median_outside_fraction": round(statistics.median(
            r["outside_s"] / r["span_s"] for r in rows), 4),
        "per_trial": rows,
    }


def samplers(args: argparse.Namespace) -> dict[str, Any]:
    url = f"sqlite:///{args.workdir / 'samplers.db'}"
    out: dict[str, Any] = {}
    checkpoints = [c for c in (5, 10, 20) if c <= args.trials] or [args.trials]
    for sampler in args.samplers.split(","):
        study = f"bench-{sampler}-{args.seed}-{int(time.time())}"
        config = make_config(
            study=study, preset=args.preset, trials=args.trials, sampler=sampler,
            population=args.population, tournament=args.tournament, pruner="none",
            data=args.data, seed=args.seed,
        )
        started = time.time()
        run_search(config, url, progress=lambda line: print(line, file=sys.stderr))
        db = open_database(url)
        trials = db.trials(db.search(study).search_id, ["COMPLETE"])
        db.close()
        accs = [t.val_accuracy for t in sorted(trials, key=lambda t: t.number)]
        out[sampler] = {
            "study": study, "wall_s": round(time.time() - started, 1),
            **{f"best_after_{c}": round(max(accs[:c]), 4) for c in checkpoints if accs[:c]},
            "duplicates": sum(1 for t in trials if t.duplicate_of is not None),
        }
    return {"preset": args.preset, "seed": args.seed, "trials": args.trials, "results": out,
            "storage": url}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["overhead", "samplers"])
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=os.environ.get("NAS_DATA_DIR"))
    parser.add_argument("--samplers", default="tpe,evolution,random")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--tournament", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.trials is None:
        args.trials = 8 if args.what == "overhead" else 20
    result = overhead(args) if args.what == "overhead" else samplers(args)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
