"""SIGKILL of the driver at chosen points, then `--resume` (guarantee 2 of docs/reliability.md).

The driver kills itself with SIGKILL the n-th time it reaches a fault point
(`NAS_FAULT_KILL=point:n`, workers/faults.py): right after an ask, inside the transaction
that ends a trial, between that commit and Optuna's tell, and between two trials. The
drivers join the session's Ray cluster; trials train tiny real networks for 3 steps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import optuna
import pytest
from faultkit import (
    check_consistent,
    driver,
    optuna_states,
    record,
    states,
    study_trials,
    wait_for,
    write_config,
)

from nas.db import open_database

N = 7


@pytest.mark.slow
@pytest.mark.parametrize(("point", "sampler"), [
    ("dispatch:3", "tpe"),
    ("db-write:3", "evolution"),
    ("after-db-write:3", "tpe"),
    ("between-trials:4", "evolution"),
])
def test_driver_killed_then_resumed(point: str, sampler: str, ray_cluster: None,
                                    cifar_dir: Path, tmp_path: Path) -> None:
    from nas.search.dispatch import gcs_address

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = write_config(tmp_path / "search.json")
    extra = ("--ray-address", gcs_address())  # the session's cluster: no Ray start per driver
    if sampler == "evolution":
        extra += ("--population", "2", "--tournament", "2")
    first = driver(url, cifar_dir, "kill", N, config, *extra, sampler=sampler,
                   env={"NAS_FAULT_KILL": point})
    try:
        _, err = first.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # Ray processes the dead driver left
    assert first.returncode == -signal.SIGKILL, err
    before = states(url, "kill")
    optuna_before = optuna_states(url, "kill")
    if point.startswith("db-write"):  # the transaction that ended the trial was lost
        assert before.get("RUNNING", 0) >= 1, before
    if point.startswith(("dispatch", "after-db-write")):  # Optuna was left with it RUNNING
        assert optuna_before.get("RUNNING", 0) >= 1, optuna_before

    started = time.time()
    resume_at = datetime.now(UTC)
    resumed = driver(url, cifar_dir, "kill", N, config, "--resume", *extra, sampler=sampler)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    trials = check_consistent(url, "kill", N)

    dead = [t for t in trials if t.state == "FAIL"]
    assert all("driver died" in (t.error or "") for t in dead)
    study = optuna.load_study(study_name="kill", storage=url)
    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    for t in trials:  # Optuna and we agree on every trial we hold
        assert frozen[t.number].state.name == t.state
    # A kill right after an ask leaves a trial only Optuna knows: FAIL there, re-queued.
    asked_only = [n for n in frozen if n not in {t.number for t in trials}]
    assert all(frozen[n].state.name == "FAIL" for n in asked_only)
    assert all("driver died" in frozen[n].user_attrs.get("reason", "") for n in asked_only)
    retries = [t for t in trials if t.retry_of is not None]
    assert {t.retry_of for t in retries} <= {t.number for t in dead} | set(asked_only)
    if point.startswith(("dispatch", "db-write")):
        assert retries, "the interrupted trial was not re-run"
    if sampler == "evolution":
        _assert_children_of_the_stored_population(trials, frozen, resume_at)
    record(f"driver killed at {point}", {
        "left_running": before.get("RUNNING", 0),
        "left_running_in_optuna": optuna_before.get("RUNNING", 0),
        "failed_by_death": len(dead) + len(asked_only),
        "requeued": len(retries), "finished": N,
        "resume_seconds": round(time.time() - started, 1)})


def _assert_children_of_the_stored_population(trials: list, frozen: dict,
                                              resume_at: datetime) -> None:
    """Every kill point leaves at least 2 COMPLETE trials (the population), so evolution
    must go on from them: each new trial after the resume is one decision away from an
    earlier finished trial, not a fresh random draw."""
    finished = [t.number for t in trials if t.state == "COMPLETE"]
    children = [t for t in trials if t.retry_of is None and t.started_at > resume_at]
    assert children
    for child in children:
        params = frozen[child.number].params
        parents = [n for n in finished if n < child.number]
        distance = min(sum(frozen[p].params[k] != v for k, v in params.items())
                       for p in parents)
        assert distance <= 1, (child.number, distance)


@pytest.mark.slow
def test_sigkill_from_outside_during_real_training_then_resume(cifar_dir: Path,
                                                               tmp_path: Path) -> None:
    """The same guarantee with real training and a kill from outside, at whatever moment
    the driver is in when a trial has finished and another runs; a second driver started
    meanwhile is refused."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = write_config(tmp_path / "search.json", train={"epochs": 2, "max_steps": 20},
                          train_images=512, val_images=256)
    first = driver(url, cifar_dir, "crash", 5, config)
    try:
        wait_for(lambda: states(url, "crash").get("COMPLETE", 0) >= 1
                 and states(url, "crash").get("RUNNING", 0) >= 1, 240, "a trial to finish",
                 first)
        second = driver(url, cifar_dir, "crash", 5, config, "--resume")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "another driver" in err
        os.kill(first.pid, signal.SIGKILL)  # the driver only: Ray's reaper ends its cluster
        first.wait(30)
        time.sleep(3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # whatever the reaper missed
    assert states(url, "crash").get("RUNNING", 0) >= 1  # what the dead driver left behind
    resumed = driver(url, cifar_dir, "crash", 5, config, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    trials = check_consistent(url, "crash", 5)
    dead = [t for t in trials if t.state == "FAIL" and "driver died" in (t.error or "")]
    # A kill right after an ask leaves a trial only Optuna knows: FAIL there, re-queued
    # (as in test_driver_killed_then_resumed; the kill from outside can land there too).
    frozen = {t.number: t for t in optuna.load_study(study_name="crash",
                                                     storage=url).get_trials(deepcopy=False)}
    asked_only = {n for n in frozen if n not in {t.number for t in trials}}
    assert all(frozen[n].state.name == "FAIL"
               and "driver died" in frozen[n].user_attrs.get("reason", "") for n in asked_only)
    requeued = [t for t in trials if t.retry_of is not None]
    assert dead or asked_only
    assert {t.retry_of for t in requeued} <= {t.number for t in dead} | asked_only
    assert all(t.epochs >= 1 for t in trials
               if t.state == "COMPLETE" and t.duplicate_of is None)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "reason"), [
    (signal.SIGINT, 130, "interrupted (Ctrl-C)"),
    (signal.SIGTERM, 143, "interrupted (SIGTERM)"),  # docker stop, Kubernetes
], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_fails_running_trials_and_keeps_the_rest(
        signum: int, code: int, reason: str, cifar_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = write_config(tmp_path / "search.json", train={"epochs": 2, "max_steps": 200},
                          train_images=2048, val_images=256)  # trials of several seconds
    proc = driver(url, cifar_dir, "intr", 6, config)
    try:
        wait_for(lambda: states(url, "intr").get("RUNNING", 0) >= 1, 240, "a running trial",
                 proc)
        time.sleep(3)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, err
    trials = study_trials(url, "intr")
    assert not [t for t in trials if t.state == "RUNNING"]
    assert [t for t in trials if t.state == "FAIL" and t.error == reason]
    assert optuna_states(url, "intr").get("RUNNING", 0) == 0
    db = open_database(url)
    search = db.search("intr")
    db.close()
    assert search.status == "interrupted" and search.driver_token is None
