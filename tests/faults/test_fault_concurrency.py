"""Four processes writing one study at once (guarantee 4 of docs/reliability.md).

Each process does what a driver does for every trial, through the same code: Optuna's ask
(which numbers the trial), our architecture upsert and trial row, streamed epochs, the
finishing transaction, Optuna's tell — as fast as it can, on SQLite and on PostgreSQL.
No "database is locked" (or any other error) may surface, numbers must be unique and every
count exact.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from faultkit import check_consistent, driver, record, write_config

from nas.db import host_name, open_database
from nas.search.config import make_config
from nas.search.controller import Controller

PROCESSES = 4
TRIALS_EACH = 25


def _hammer(url: str, worker: int, count: int, results: Any) -> None:
    """One writer process: `count` whole trials, every database write a driver makes."""
    from optuna.trial import TrialState

    try:
        db = open_database(url)
        search = db.search("race")
        controller = Controller(db.url, make_config(study="race", sampler="random"), 1)
        numbers = []
        for i in range(count):
            trial = controller.ask()
            key = f"{trial.key}-{worker}-{i}"  # distinct rows, the real genotype
            arch = db.upsert_architecture(key, trial.genotype, 1000, 2000, None)
            trial = replace(trial, params=1000, mult_adds=2000)
            db.start_trial(search.search_id, trial, arch)
            epoch = {"epoch": 1, "train_loss": 1.0, "val_accuracy": 0.5, "seconds": 0.01,
                     "images_per_s": 1.0}
            db.add_epochs(search.search_id, trial.number, [epoch])
            db.finish_trial(search.search_id, replace(
                trial, state="COMPLETE", values=[0.5], val_accuracy=0.5, duration_s=0.01,
                epochs=1, epoch_rows=(epoch,)))
            controller.tell(trial.number, TrialState.COMPLETE, [0.5])
            numbers.append(trial.number)
        db.close()
        results.put((worker, numbers, None))
    except BaseException:
        results.put((worker, [], traceback.format_exc()))


def test_four_writers_on_one_study(db_url: str) -> None:
    db = open_database(db_url)
    config = make_config(study="race", sampler="random")
    db.create_search("race", config.to_dict(), 0, "test", None, "t", host_name(), 0)
    Controller(db.url, config, 1)  # the Optuna study, as the driver creates it
    db.close()
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate drivers
    results = context.Queue()
    procs = [context.Process(target=_hammer, args=(db_url, w, TRIALS_EACH, results))
             for w in range(PROCESSES)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    seconds = time.perf_counter() - started
    errors = [err for _, _, err in outcomes if err]
    assert not errors, errors[0]
    numbers = sorted(n for _, got, _ in outcomes for n in got)
    total = PROCESSES * TRIALS_EACH
    assert numbers == list(range(total))  # unique, none lost, none skipped
    trials = check_consistent(db_url, "race", total)
    assert all(t.epochs == 1 and t.state == "COMPLETE" for t in trials)
    backend = db_url.split(":", 1)[0].split("+", 1)[0]
    record(f"concurrency {backend}", {
        "processes": PROCESSES, "trials": total, "seconds": round(seconds, 2),
        "trials_per_s": round(total / seconds, 1), "errors": 0})


def test_sqlite_waits_instead_of_failing(tmp_path: Any) -> None:
    """A writer holding SQLite's lock for longer than one statement makes the others wait
    (busy_timeout, then the retry), never fail with "database is locked"."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    db = open_database(url)
    db.create_search("busy", make_config(study="busy").to_dict(), 0, "t", None, "t",
                     host_name(), 0)
    db.close()
    holder = sqlite3.connect(tmp_path / "nas.db")
    holder.execute("BEGIN IMMEDIATE")  # a write lock, held for 2 s
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_heartbeat, args=(url,)) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    time.sleep(2.0)
    holder.rollback()
    holder.close()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert time.perf_counter() - started >= 2.0


def _heartbeat(url: str) -> None:
    db = open_database(url)
    search = db.search("busy")
    db.update_search(search.search_id, status="running")
    db.close()


@pytest.mark.slow
def test_four_drivers_share_one_database_and_one_cluster(
    db_url: str, ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    """Four `nas search` processes, four studies, one database, one Ray cluster, at once:
    each study ends with exactly its trials, and no driver sees a locking error."""
    from nas.search.dispatch import gcs_address

    config = write_config(tmp_path / "search.json")
    studies = [f"c{i}" for i in range(PROCESSES)]
    started = time.perf_counter()
    procs = [driver(db_url, cifar_dir, s, 3, config, "--ray-address", gcs_address())
             for s in studies]
    errors = []
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0 or "locked" in err:
            errors.append(err[-2000:])
    assert not errors, errors[0]
    for study in studies:
        check_consistent(db_url, study, 3)
    backend = db_url.split(":", 1)[0].split("+", 1)[0]
    record(f"four drivers {backend}", {"drivers": PROCESSES, "trials_each": 3,
                                       "seconds": round(time.perf_counter() - started, 1)})
