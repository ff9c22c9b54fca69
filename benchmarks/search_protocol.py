"""The samplers under one protocol (docs/results/search.md): `tpe`, `evolution` and `random`,
each for several seeds, each search given the same wall-clock budget under one preset.

    python benchmarks/search_protocol.py run --data ../shared/data/cifar10 \
        --out docs/results/search [--samplers tpe,evolution,random] [--seeds 0,1,2] \
        [--minutes 10] [--preset cpu-search]
    python benchmarks/search_protocol.py plot --out docs/results/search [--minutes 10]

`run` gives every (sampler, seed) its own SQLite database and moves it into OUT when that
search has finished (temp file, then rename), so an interruption loses at most the search in
progress and a second `run` skips what OUT already holds. `plot` reads those databases:
the best validation accuracy found (COMPLETE trials, i.e. the top rung) against wall time,
mean and spread over the seeds, drawn to OUT/search.png, and a markdown table on stdout.
Run it with nothing else on the machine: under a clock budget, other load costs accuracy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def db_name(sampler: str, seed: int) -> str:
    return f"{sampler}-s{seed}.db"


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    nas = shutil.which("nas") or str(Path(sys.executable).with_name("nas"))
    for seed in args.seeds:  # seed-major: an interruption leaves every sampler with as many seeds
        for sampler in args.samplers:
            final = out / db_name(sampler, seed)
            if final.exists():
                print(f"{final} exists; skipped", flush=True)
                continue
            with tempfile.TemporaryDirectory(dir=out) as work:
                db = Path(work) / final.name
                cmd = [nas, "search", "--preset", args.preset, "--sampler", sampler,
                       "--seed", str(seed), "--study", f"{sampler}-s{seed}",
                       "--timeout", str(args.minutes * 60), "--trials", "100000",
                       "--data", args.data, "--storage", f"sqlite:///{db}"]
                print(f"== {datetime.now().isoformat(timespec='seconds')} {' '.join(cmd)}",
                      flush=True)
                start = time.time()
                with open(out / f"{sampler}-s{seed}.log", "w") as log:
                    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
                print(f"   exit {rc} after {time.time() - start:.0f} s", flush=True)
                if rc != 0:
                    raise SystemExit(f"{sampler} seed {seed} failed (exit {rc}); see its log")
                os.replace(db, final)


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def curve(path: Path) -> dict[str, object]:
    """Best-so-far validation accuracy of one search: [(seconds since start, best)], counts."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        (created,) = con.execute("select created_at from searches").fetchone()
        rows = con.execute(
            "select state, val_accuracy, finished_at from search_trials "
            "where finished_at is not null order by finished_at").fetchall()
    t0 = _time(created)
    best, points = float("-inf"), []
    for state, acc, finished in rows:
        if state == "COMPLETE" and acc is not None and acc > best:
            best = acc
            points.append((_time(finished) - t0, best))
    states = [r[0] for r in rows]
    return {"points": points, "evaluated": sum(s in ("COMPLETE", "PRUNED") for s in states),
            "complete": states.count("COMPLETE"), "failed": states.count("FAIL")}


def best_at(points: list[tuple[float, float]], t: float) -> float | None:
    found = [b for s, b in points if s <= t]
    return found[-1] if found else None


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    horizon = args.minutes * 60
    grid = [horizon * i / 120 for i in range(121)]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    print("| sampler | seeds | best val accuracy at the end (mean ± sd) | per seed | "
          "candidates evaluated (mean) | COMPLETE (top rung, mean) |")
    print("|---|---|---|---|---|---|")
    for sampler in args.samplers:
        runs = [curve(out / db_name(sampler, s)) for s in args.seeds
                if (out / db_name(sampler, s)).exists()]
        if not runs:
            continue
        finals = [best_at(r["points"], horizon) for r in runs]  # type: ignore[arg-type]
        finals_f = [f for f in finals if f is not None]
        mean = statistics.mean(finals_f) if finals_f else float("nan")
        sd = statistics.stdev(finals_f) if len(finals_f) > 1 else 0.0
        per_seed = ", ".join("–" if f is None else f"{f:.4f}" for f in finals)
        print(f"| {sampler} | {len(runs)} | {mean:.4f} ± {sd:.4f} | {per_seed} | "
              f"{statistics.mean(r['evaluated'] for r in runs):.1f} | "  # type: ignore[misc]
              f"{statistics.mean(r['complete'] for r in runs):.1f} |")  # type: ignore[misc]
        ts, means, lows, highs = [], [], [], []
        for t in grid:
            values = [best_at(r["points"], t) for r in runs]  # type: ignore[arg-type]
            if all(v is not None for v in values):
                ts.append(t / 60)
                means.append(statistics.mean(values))  # type: ignore[arg-type]
                lows.append(min(values))  # type: ignore[type-var]
                highs.append(max(values))  # type: ignore[type-var]
        line, = ax.plot(ts, means, label=f"{sampler} (mean of {len(runs)})")
        ax.fill_between(ts, lows, highs, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("wall time of the search (minutes)")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title("best found against wall time; band = min–max over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out / ".search.png.tmp"
    fig.savefig(tmp, dpi=120, format="png")
    os.replace(tmp, out / "search.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "plot"):
        p = sub.add_parser(name)
        p.add_argument("--out", required=True)
        p.add_argument("--samplers", default="tpe,evolution,random",
                       type=lambda s: s.split(","))
        p.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",")])
        p.add_argument("--minutes", type=float, default=10.0)
        if name == "run":
            p.add_argument("--data", required=True)
            p.add_argument("--preset", default="cpu-search")
    args = parser.parse_args()
    (run if args.command == "run" else plot)(args)


if __name__ == "__main__":
    main()
