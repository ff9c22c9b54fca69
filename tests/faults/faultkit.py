"""What the fault suite's tests share: a driver process, waiting, reading a study back, a
commit whose acknowledgement is lost, and the figures file that docs/reliability.md is
written from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event

from nas.db import Trial, open_database

# Tiny but real networks: 1 cell per stack at F=24 on a few hundred CIFAR-10 images.
TINY_NETWORK = {"cells": 1, "filters": 24}
FIGURES = Path(os.environ.get("NAS_FAULT_FIGURES", "")) if os.environ.get(
    "NAS_FAULT_FIGURES") else None


def write_config(path: Path, train: dict[str, Any] | None = None, **extra: Any) -> Path:
    """A search config file: tiny network, a few steps, small subsets."""
    config = {"network": TINY_NETWORK, "train": {"epochs": 1, "max_steps": 3, **(train or {})},
              "train_images": 256, "val_images": 128, **extra}
    path.write_text(json.dumps(config))
    return path


def driver(url: str, cifar_dir: Path, study: str, trials: int, config: Path, *extra: str,
           env: dict[str, str] | None = None, sampler: str = "random") -> subprocess.Popen[str]:
    """`nas search` in its own process group (so a test can kill it and all it started)."""
    cmd = [sys.executable, "-m", "nas", "search", "--study", study, "--trials", str(trials),
           "--preset", "cpu-quick", "--data", str(cifar_dir), "--pruner", "none",
           "--sampler", sampler, "--config", str(config), "--storage", url, *extra]
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             proc: subprocess.Popen[str] | None = None) -> None:
    """Poll `predicate`; fail at once, with its stderr, if `proc` ends first."""
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the driver exited ({proc.returncode}) before {what}: "
                                 f"{err[-3000:]}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def study_trials(url: str, study: str) -> list[Trial]:
    db = open_database(url)
    try:
        search = db.search(study)
        return [] if search is None else db.trials(search.search_id)
    finally:
        db.close()


def states(url: str, study: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study_trials(url, study):
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts


def optuna_states(url: str, study: str) -> dict[str, int]:
    import optuna

    counts: dict[str, int] = {}
    for t in optuna.load_study(study_name=study, storage=url).get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def check_consistent(url: str, study: str, finished: int) -> list[Trial]:
    """The invariants every fault must leave intact: exactly `finished` COMPLETE/PRUNED
    trials, none RUNNING (ours or Optuna's), unique numbers, no cell trained twice at one N@F."""
    trials = study_trials(url, study)
    done = [t for t in trials if t.state in ("COMPLETE", "PRUNED")]
    assert len(done) == finished, [(t.number, t.state, t.error) for t in trials]
    assert not [t for t in trials if t.state == "RUNNING"]
    optuna_counts = optuna_states(url, study)
    assert optuna_counts.get("RUNNING", 0) == 0, (optuna_counts, [t.number for t in trials])
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    trained_once(url, study, top=max(100, len(trials)))
    return trials


def trained_once(url: str, study: str, top: int = 100) -> list[dict[str, Any]]:
    """No key trained twice, as a user reads it: in `nas leaderboard --top 100 --json` (run
    as a subprocess; `top` must cover the study), each key appears once among the trials
    that trained (COMPLETE, or PRUNED with epochs) and are not marked `duplicate_of`, and
    every reuse names a trained trial of the same key. Returns the leaderboard rows."""
    out = subprocess.run(
        [sys.executable, "-m", "nas", "leaderboard", "--study", study, "--top", str(top),
         "--json", "--storage", url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows: list[dict[str, Any]] = json.loads(out.stdout)
    trained = {r["trial"]: r for r in rows
               if r["duplicate_of"] is None and (r["state"] == "COMPLETE" or r["epochs"])}
    # one cell at two sizes is two candidates: identity = key at N@F
    twice = {k for k, n in Counter((r["key"], r["cells"], r["filters"])
                                   for r in trained.values()).items() if n > 1}
    assert not twice, ("a key was trained twice",
                       [(r["trial"], r["state"], r["key"], r["note"]) for r in rows
                        if (r["key"], r["cells"], r["filters"]) in twice])
    for r in rows:
        if r["duplicate_of"] is not None:
            original = trained.get(r["duplicate_of"])
            assert original is not None and original["key"] == r["key"], r
    return rows


def run_bad_input(argv: list[str], message: str, tmp_path: Path, data_dir: Path,
                  monkeypatch: Any, capsys: Any) -> str:
    """Run the CLI in `tmp_path` on an empty SQLite database (env NAS_STORAGE): exit 2, one
    line holding `message`, no traceback, nothing on stdout, nothing in the database."""
    from nas.cli import main

    db_file = tmp_path / "nas.db"
    monkeypatch.setenv("NAS_STORAGE", f"sqlite:///{db_file}")
    monkeypatch.setenv("NAS_DATA_DIR", str(data_dir))
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err and out == ""
    nothing_written(db_file)
    return err


def nothing_written(db_file: Path) -> None:
    """Bad input leaves the database as it was: no file, or no search, trial or model in it."""
    if not db_file.exists():
        return
    import sqlite3

    with sqlite3.connect(db_file) as c:
        tables = {r[0] for r in c.execute("select name from sqlite_master where type='table'")}
        for table in ("searches", "search_trials", "models", "studies", "trials"):
            if table in tables:
                assert c.execute(f"select count(*) from {table}").fetchone()[0] == 0, table


def record(section: str, figures: dict[str, Any]) -> None:
    """Add figures to NAS_FAULT_FIGURES (JSON), read when docs/reliability.md is written."""
    if FIGURES is None:
        return
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[section] = figures
    tmp = FIGURES.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(FIGURES)


@contextmanager
def commit_acknowledgement_lost(engine: Engine) -> Iterator[list[int]]:
    """While inside, the first COMMIT on `engine` that carries a write goes through and then
    the connection drops before the client hears back: the driver's own commit call fails
    on the closed connection, exactly as when the server or the network goes away at that
    moment. Read-only transactions pass untouched. Yields a list that gets one entry when
    the fault has fired."""
    fired: list[int] = []
    wrote: set[int] = set()  # connections whose open transaction changed something

    def on_execute(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SELECT", "PRAGMA")):
            wrote.add(id(connection))

    def on_rollback(connection: Connection) -> None:
        wrote.discard(id(connection))

    def on_commit(connection: Connection) -> None:
        if fired or id(connection) not in wrote:
            return
        wrote.discard(id(connection))
        fired.append(1)
        raw = connection.connection.dbapi_connection
        assert raw is not None
        raw.commit()  # the write lands...
        raw.close()  # ...and the acknowledgement never arrives

    hooks = (("before_cursor_execute", on_execute), ("rollback", on_rollback),
             ("commit", on_commit))
    for name, hook in hooks:
        event.listen(engine, name, hook)
    try:
        yield fired
    finally:
        for name, hook in hooks:
            event.remove(engine, name, hook)
