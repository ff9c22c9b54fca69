"""Workers that die and candidates that fail (guarantees 1 and 5 of docs/reliability.md).

Real Ray tasks train tiny real networks on real CIFAR-10 subsets on the session's Ray
cluster; worker processes are killed with SIGKILL from outside, as the OOM killer would.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from faultkit import TINY_NETWORK, check_consistent, driver, record, study_trials, write_config

from nas.search.config import make_config
from nas.search.driver import SearchFailed, run_search


def tiny(study: str, cifar_dir: Path, trials: int, **over: Any):
    settings = {"network": TINY_NETWORK, "train": {"epochs": 1, "max_steps": 40},
                "train_images": 1024, "val_images": 256, "preset": "cpu-quick",
                "pruner": "none", "sampler": "random", "trials": trials, **over}
    return make_config(study=study, data=str(cifar_dir), **settings)


def _tasks(name: str) -> list[Any]:
    from ray.util.state import list_tasks

    from nas.search.dispatch import gcs_address

    return list_tasks(address=gcs_address(), filters=[("name", "=", name)], detail=True)


def _worker_pids(names: list[str], wait: float = 30.0) -> set[int]:
    """The worker pids that ran the named tasks. Ray reports task events to the GCS
    asynchronously (about once a second), so a task that failed in 0.2 s can be listed
    before its worker is: poll until every attempt names its worker, or `wait` runs out."""
    deadline = time.monotonic() + wait
    while True:
        tasks = [t for name in names for t in _tasks(name)]
        if (tasks and all(t.worker_pid for t in tasks)) or time.monotonic() > deadline:
            return {int(t.worker_pid) for t in tasks if t.worker_pid}
        time.sleep(0.5)


class Killer(threading.Thread):
    """SIGKILL the worker of each running attempt of the named tasks, `times[name]` times."""

    def __init__(self, times: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.times = times
        self.killed: dict[str, list[int]] = {name: [] for name in times}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and any(
                len(self.killed[n]) < k for n, k in self.times.items()):
            for name, wanted in self.times.items():
                if len(self.killed[name]) >= wanted:
                    continue
                for task in _tasks(name):
                    pid = int(task.worker_pid or 0)
                    if task.state == "RUNNING" and pid and pid not in self.killed[name]:
                        time.sleep(0.5)  # mid-trial, not at its first instruction
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            continue
                        self.killed[name].append(pid)
                        break
            time.sleep(0.2)


@pytest.mark.slow
def test_workers_killed_several_times_in_one_search(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    """Trial 1's worker dies on all three attempts (max_retries 2): FAIL, with the reason.
    Trial 2's dies once: Ray re-runs it and it completes. The others are untouched."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    killer = Killer({"trial-wk-1": 3, "trial-wk-2": 1})
    killer.start()
    started = time.time()
    summary = run_search(tiny("wk", cifar_dir, 5), url)
    killer.stop.set()
    killer.join()
    assert len(killer.killed["trial-wk-1"]) == 3 and len(killer.killed["trial-wk-2"]) == 1
    trials = {t.number: t for t in check_consistent(url, "wk", 5)}
    assert trials[1].state == "FAIL"
    assert "worker process died" in trials[1].error and "retries were used up" in trials[1].error
    assert trials[2].state == "COMPLETE" and trials[2].epochs == 1
    assert max(a.attempt_number for a in _tasks("trial-wk-2")) >= 1  # Ray re-ran it
    untouched = [t for n, t in trials.items() if n not in (1, 2)]
    assert all(t.state == "COMPLETE" and t.error is None and t.epochs == 1 for t in untouched)
    assert summary.trials == 5
    record("workers killed", {"kills": 4, "failed": 1, "retried_and_completed": 1,
                              "finished": 5, "seconds": round(time.time() - started, 1)})


def test_candidate_failures_are_fail_with_the_reason(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    """A diverging candidate is FAIL "non-finite loss"; one too large for memory is FAIL
    "out of memory" and the same worker process then trains the next trial fine."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    nan = tiny("nan", cifar_dir, 1, train={"epochs": 1, "max_steps": 20, "lr": 1e12,
                                           "grad_clip": 0.0})
    with pytest.raises(SearchFailed, match="trials failed"):  # after trials + 3 failures
        run_search(nan, url)
    diverged = study_trials(url, "nan")
    assert diverged and all(t.state == "FAIL" and "non-finite loss" in t.error
                            for t in diverged)

    # 300,000 channels: one conv weight is 360 GB, refused by the allocator at build time
    # (before the network ever runs); the cost check on the meta device lets it through.
    huge = tiny("oom", cifar_dir, 1, network={"cells": 1, "filters": 24 * 300_000})
    with pytest.raises(SearchFailed, match="trials failed"):
        run_search(huge, url)
    oom = study_trials(url, "oom")
    assert oom and all(t.state == "FAIL" and t.error.startswith("out of memory")
                       for t in oom), oom[0].error
    # The workers that hit it are alive and train the next trials (two at once: both
    # worker processes of the 2-CPU cluster are busy, so the OOM ones are among them).
    pid_oom = _worker_pids([f"trial-oom-{n}" for n in range(len(oom))])
    run_search(tiny("after", cifar_dir, 2, train={"epochs": 1, "max_steps": 2}), url)
    assert [t.state for t in study_trials(url, "after")] == ["COMPLETE", "COMPLETE"]
    pid_after = _worker_pids([f"trial-after-{n}" for n in range(2)])
    assert pid_oom and pid_after, "Ray's state API names the workers of these tasks"
    assert pid_oom & pid_after, "a worker that hit out-of-memory trained the next trial"


@pytest.mark.slow
def test_exception_inside_an_operation_fails_with_its_traceback(
    cifar_dir: Path, tmp_path: Path
) -> None:
    """Every SepConv of trial 1 raises (NAS_FAULT_OP_ERROR): that trial is FAIL with the
    traceback stored; the search goes on and finishes its other trials."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = write_config(tmp_path / "search.json", train={"max_steps": 2})
    proc = driver(url, cifar_dir, "op", 3, config, env={"NAS_FAULT_OP_ERROR": "SepConv:1"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    trials = {t.number: t for t in check_consistent(url, "op", 3)}
    broken = trials[1]
    assert broken.state == "FAIL"
    summary, _, trace = broken.error.partition("\n")
    assert summary.startswith("RuntimeError: injected fault in operation SepConv")
    assert "Traceback (most recent call last)" in trace and "faults.py" in trace
    assert [t.state for n, t in sorted(trials.items()) if n != 1] == ["COMPLETE"] * 3
