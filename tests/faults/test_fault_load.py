"""Load (guarantee 8 of docs/reliability.md): 200 trials whose training is a 5 ms sleep
(`NAS_FAULT_STUB_TRAIN`); the driver, Ray tasks, network builds, cost checks, Optuna and
the database are real. Figures: trials per second, the driver's memory growth, the size of
the database."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
from faultkit import check_consistent, driver, record, states, write_config
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.slow
TRIALS = 200


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _database_bytes(url: str) -> int:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar())
    finally:
        engine.dispose()


def test_two_hundred_stub_trials(db_url: str, cifar_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "search.json")
    proc = driver(db_url, cifar_dir, "load", TRIALS, config, sampler="tpe",
                  env={"NAS_FAULT_STUB_TRAIN": "0.005"})
    samples: list[tuple[int, int]] = []  # (finished trials, driver RSS KiB)
    try:
        while proc.poll() is None:
            with contextlib.suppress(Exception):
                done = states(db_url, "load").get("COMPLETE", 0)
                samples.append((done, _rss_kib(proc.pid)))
            time.sleep(1.0)
        _, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    trials = check_consistent(db_url, "load", TRIALS)
    starts = min(t.started_at for t in trials)
    ends = max(t.finished_at for t in trials if t.finished_at)
    seconds = (ends - starts).total_seconds()
    early = [rss for done, rss in samples if 20 <= done <= 40 and rss]
    late = [rss for done, rss in samples if done >= TRIALS - 20 and rss]
    assert early and late, samples[:5]
    growth_mib = (max(late) - min(early)) / 1024
    backend = db_url.split(":", 1)[0].split("+", 1)[0]
    figures = {
        "trials": TRIALS, "seconds": round(seconds, 1),
        "trials_per_s": round(TRIALS / seconds, 2),
        "driver_rss_mib_after_20": round(min(early) / 1024, 1),
        "driver_rss_mib_at_end": round(max(late) / 1024, 1),
        "driver_growth_mib_per_100_trials": round(growth_mib * 100 / (TRIALS - 40), 2),
        "database_bytes": _database_bytes(db_url),
    }
    record(f"load {backend}", figures)
    # Bounds with a wide margin, so a slow machine passes and a leak does not: the driver
    # holds no per-trial state beyond a few numbers.
    assert growth_mib < 200, figures
    assert figures["database_bytes"] < 50 * 2**20, figures
