"""PostgreSQL going away under a running search (guarantee 3 of docs/reliability.md).

The server at 127.0.0.1:5432 is restarted with `pg_ctlcluster ... restart` while a search
writes to it, and the driver's idle connections are killed server-side with
pg_terminate_backend during trials. Training is the stub (a sleep); the driver, Ray,
PostgreSQL and Optuna are real.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PG_ADMIN, _postgres_database
from faultkit import check_consistent, driver, record, states, wait_for, write_config
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _postgres_database()


def _cluster() -> tuple[str, str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        pytest.skip("pg_ctlcluster (Debian's PostgreSQL) is not installed here")
    return versions[-1], "main"


def _pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode == 0


def _finished(url: str, study: str) -> int:
    with contextlib.suppress(Exception):  # the server may be down right now
        counts = states(url, study)
        return counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    return -1


def _run(proc: subprocess.Popen[str]) -> str:
    try:
        _, err = proc.communicate(timeout=400)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    return err


def test_postgres_restart_during_a_search(pg_url: str, cifar_dir: Path, tmp_path: Path) -> None:
    version, name = _cluster()
    n = 12
    config = write_config(tmp_path / "search.json")
    proc = driver(pg_url, cifar_dir, "pgr", n, config, env={"NAS_FAULT_STUB_TRAIN": "1.0"})
    try:
        wait_for(lambda: _finished(pg_url, "pgr") >= 2, 240, "two finished trials")
        at_restart = _finished(pg_url, "pgr")
        down = time.time()
        # `restart`, with the server kept down for 5 s in between: long enough that the
        # driver must notice (its trials end every 0.5 s) and wait.
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "stop"],
                       check=True, capture_output=True, timeout=120)
        time.sleep(5)
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"],
                       check=True, capture_output=True, timeout=120)
        wait_for(_pg_ready, 60, "PostgreSQL to accept connections again")
        outage = time.time() - down
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    err = _run(proc)
    assert at_restart < n, "the search ended before the restart"
    trials = check_consistent(pg_url, "pgr", n)
    assert all(t.state == "COMPLETE" for t in trials)
    assert "database unavailable" in err  # it noticed, waited and went on
    ends = sorted(t.finished_at for t in trials if t.finished_at)
    longest_gap = max((b - a).total_seconds() for a, b in itertools.pairwise(ends))
    record("postgres restart", {
        "finished_before_restart": at_restart, "finished": n, "outage_seconds": round(outage, 1),
        "retries_logged": err.count("database unavailable"),
        "longest_pause_between_trial_ends_s": round(longest_gap, 1)})


def test_idle_connections_dropped_by_the_server(pg_url: str, cifar_dir: Path,
                                                tmp_path: Path) -> None:
    """During each long trial the driver's pooled connections sit idle; the server kills
    them all, three times. pool_pre_ping (and the retry around each call) recover."""
    database = pg_url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    n = 6
    config = write_config(tmp_path / "search.json")
    proc = driver(pg_url, cifar_dir, "idle", n, config, env={"NAS_FAULT_STUB_TRAIN": "3.0"})
    killed = 0
    try:
        for round_ in range(1, 4):
            wait_for(lambda r=round_: _finished(pg_url, "idle") >= r, 240, "a finished trial")
            time.sleep(1.0)  # inside the next trial: the driver's connections are idle
            with admin.connect() as c:
                killed += len(c.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"), {"d": database}).all())
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        admin.dispose()
    _run(proc)
    assert killed >= 3
    check_consistent(pg_url, "idle", n)
    record("idle connections dropped", {"connections_terminated": killed, "finished": n})
