"""The search service end to end: real Ray tasks train tiny networks on real CIFAR-10 subsets.

The default suite runs a few searches of seconds each on one session-wide Ray cluster; the
crash tests (SIGKILL the driver, kill a worker, Ctrl-C, a second driver) are marked slow.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
from test_export import export_and_compare

from nas.cli import main
from nas.db import host_name, open_database
from nas.search.config import make_config
from nas.search.driver import SearchFailed, run_search
from search_spaces import PUBLISHED, Genotype

# Tiny but real: 1 cell per stack at F=24, a few optimizer steps on a few hundred images.
TINY = {
    "network": {"cells": 1, "filters": 24},
    "train": {"epochs": 1, "max_steps": 3},
    "train_images": 256,
    "val_images": 256,
    "preset": "cpu-quick",
    "pruner": "none",
}


def tiny(study: str, cifar_dir: Path, **over: Any):
    return make_config(**{**TINY, "study": study, "data": str(cifar_dir), **over})


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _nothing_written(url: str, study: str) -> None:
    db_file = url.removeprefix("sqlite:///")
    if url.startswith("sqlite:///") and not os.path.exists(db_file):
        return
    db = open_database(url)
    try:
        assert db.search(study) is None
        assert study not in {s.study_name for s in optuna.get_all_study_summaries(db.url)}
    finally:
        db.close()


# -- bad input: exit 2, one line, nothing written --------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sampler", "annealing"], "sampler"),
        (["--objectives", "val_accuracy,flops"], "objectives"),
        (["--pruner", "asha"], "pruner"),
        (["--trials", "0"], "trials"),
        (["--study", "my study"], "may only hold letters"),
        (["--study", 'q"uote'], "may only hold letters"),
        (["--preset", "gpu-imaginary"], "unknown preset"),
        (["--ray-address", "127.0.0.1:1"], "no Ray cluster answers"),
        (["--data", "/nonexistent/cifar"], "not a directory"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = "s" if "--study" not in args else "x"
    code, out, err = run_cli("search", "--storage", url, "--study", study, *args, capsys=capsys)
    assert code == 2, err
    assert message in err and err.count("\n") == 1 and out == ""
    _nothing_written(url, study)


def test_bad_config_file_and_unreachable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "search.yaml"
    config.write_text("sampler: tpe\nbatch_size: 64\n")
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code, _, err = run_cli("search", "--config", str(config), "--storage", url, capsys=capsys)
    assert code == 2 and "batch_size: unknown key" in err
    config.write_text("trials: [1, 2]\n")
    code, _, err = run_cli("search", "--config", str(config), "--storage", url, capsys=capsys)
    assert code == 2 and "trials" in err
    assert not (tmp_path / "nas.db").exists()
    secret = "postgresql://nas:hunter2@127.0.0.1:1/nas"
    code, out, err = run_cli("search", "--storage", secret, capsys=capsys)
    assert code == 2 and "127.0.0.1" in err and "hunter2" not in err + out
    for command in ("status", "leaderboard"):
        code, _, err = run_cli(command, "--storage", url, capsys=capsys)
        assert code == 2 and "run `nas search` first" in err
    assert not (tmp_path / "nas.db").exists()


def test_second_driver_on_a_live_study_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lock row: a study whose driver is alive (this process, fresh heartbeat) is refused."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    db = open_database(url)
    held = db.create_search("busy", make_config(study="busy").to_dict(), 0, "0.1.0", None,
                            "token-of-the-first-driver", host_name(), os.getpid())
    code, _, err = run_cli("search", "--study", "busy", "--resume", "--storage", url,
                           capsys=capsys)
    assert code == 2 and "being run by another driver" in err and f"pid {os.getpid()}" in err
    after = db.search("busy")
    assert after.driver_token == held.driver_token and db.trials(after.search_id) == []
    db.close()


def test_worker_is_a_pure_function_of_its_inputs(cifar_dir: Path) -> None:
    """Same genotype, settings, seed and data: same result; a broken candidate: FAIL text."""
    from nas.search.driver import for_trial, load_data, resolve_settings
    from workers.trial import TrialSpec, run_trial

    config = tiny("pure", cifar_dir)
    settings = resolve_settings(config, has_gpu=False)
    data, _ = load_data(config, settings)
    genotype = PUBLISHED["nasnet-a"].to_dict()
    spec = TrialSpec("pure", 0, genotype, settings.network,
                     for_trial(settings.train, 123, 1), 123)
    reports: list[dict[str, Any]] = []
    first = run_trial(spec, data, lambda row: reports.append(row) or False)
    second = run_trial(spec, data)
    assert first["status"] == "complete" and first["error"] is None
    assert first["val_accuracy"] == second["val_accuracy"]
    assert [r["epoch"] for r in reports] == [e["epoch"] for e in first["epochs"]] == [1]
    broken = TrialSpec("pure", 1, genotype, {**settings.network, "num_classes": 5},
                       settings.train, 1)
    failed = run_trial(broken, data)
    assert failed["status"] == "fail" and failed["error"]


# -- a real search on the session's Ray cluster ----------------------------------------------


def _dashboard_tasks(found: set[str], stop: threading.Event) -> None:
    """Poll the dashboard's state API (HTTP, with the cluster's auth token) for trial tasks."""
    from ray._private.authentication.http_token_authentication import (
        get_auth_headers_if_auth_enabled,
    )

    from nas.search.dispatch import dashboard_url

    url = f"{dashboard_url()}/api/v0/tasks?limit=1000"
    headers = get_auth_headers_if_auth_enabled({})
    while not stop.is_set():
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=5) as reply:
                rows = json.loads(reply.read())["data"]["result"]["result"]
            found.update(r["name"] for r in rows if r["name"].startswith("trial-"))
        except OSError:
            pass
        stop.wait(0.5)


def test_search_trains_records_and_reads_back(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=_dashboard_tasks, args=(seen, stop), daemon=True)
    watcher.start()
    try:
        summary = run_search(tiny("t1", cifar_dir, trials=3, sampler="random"), url)
    finally:
        time.sleep(1.0)
        stop.set()
        watcher.join()
    assert summary.trials == 3 and summary.states == {"COMPLETE": 3}
    assert {f"trial-t1-{n}" for n in range(3)} <= seen  # named tasks, seen by the dashboard

    db = open_database(url)
    search = db.search("t1")
    trials = db.trials(search.search_id)
    assert search.data_fingerprint and search.config["sampler"] == "random"
    assert search.package_version and search.driver_token is None
    assert search.status == "finished"
    for t in trials:
        assert t.epochs == 1 and 0.0 <= t.val_accuracy <= 1.0 and t.device == "cpu"
        assert t.values == [t.val_accuracy] and t.duration_s > 0
        assert db.epochs(search.search_id, t.number)[0].images_per_s > 0
    assert len({t.seed for t in trials}) == 3

    # Reading commands.
    code, out, _ = run_cli("leaderboard", "--study", "t1", "--storage", url, "--json",
                           capsys=capsys)
    rows = json.loads(out)
    assert code == 0 and len(rows) == 3
    assert set(rows[0]) >= {"trial", "state", "val_accuracy", "params", "mult_adds", "epochs",
                            "duration_s", "key", "genotype"}
    assert [r["val_accuracy"] for r in rows] == sorted((r["val_accuracy"] for r in rows),
                                                       reverse=True)
    code, out, _ = run_cli("status", "--storage", url, "--json", capsys=capsys)
    status = json.loads(out)
    assert code == 0 and status["study"] == "t1" and status["states"]["COMPLETE"] == 3
    assert status["best_val_accuracy"] == rows[0]["val_accuracy"]
    code, out, _ = run_cli("show", "t1:best", "--storage", url, "--json", capsys=capsys)
    assert code == 0 and Genotype.from_dict(json.loads(out)).key() == rows[0]["key"]
    code, out, _ = run_cli("inspect", f"t1:{rows[-1]['trial']}", "--storage", url,
                           "--cells", "1", "--filters", "24", "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["params"] == rows[-1]["params"]
    code, _, err = run_cli("show", "t1:99", "--storage", url, capsys=capsys)
    assert code == 2 and "no trial 99" in err

    # The best cell goes on: `nas train t1:best` records its model beside the search, and
    # `nas export t1:best` hands it over as a torch-only module that reproduces it.
    best = f"t1:{rows[0]['trial']}"
    code, out, err = run_cli(
        "train", "t1:best", "--storage", url, "--preset", "cpu-quick", "--cells", "1",
        "--filters", "24", "--epochs", "1", "--subset", "64", "--max-steps", "1",
        "--data", str(cifar_dir), "--out", str(tmp_path / "ck"), "--json", capsys=capsys)
    assert code == 0, err
    trained = json.loads(out)
    assert [(m.kind, m.arch, m.key) for m in db.models()] == [("train", best, rows[0]["key"])]
    export_and_compare("t1:best", Path(trained["checkpoint"]), tmp_path / "export", url)

    # Same command again: the study exists, so it needs --resume; with it, N=3 is a no-op.
    code, _, err = run_cli("search", "--study", "t1", "--storage", url, capsys=capsys)
    assert code == 2 and "--resume" in err
    again = run_search(tiny("t1", cifar_dir, trials=3), url, resume=True,
                       explicit={"trials"})
    assert again.trials == 3 and len(db.trials(search.search_id)) == 3

    # A genotype already trained comes back: its result is reused, not retrained.
    study = optuna.load_study(study_name="t1", storage=db.url)
    first = study.trials[0]
    study.enqueue_trial(dict(first.params))
    more = run_search(tiny("t1", cifar_dir, trials=4), url, resume=True, explicit={"trials"})
    assert more.trials == 4
    dup = db.trial(search.search_id, 3)
    assert dup.duplicate_of == first.number and dup.val_accuracy == trials[0].val_accuracy
    assert dup.epochs == 0 and dup.key == trials[0].key
    db.close()


def test_cost_limits_prune_before_any_worker(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    summary = run_search(tiny("cost", cifar_dir, trials=3, max_params=1000), url)
    assert summary.states == {"PRUNED": 3}
    from ray.util.state import list_tasks

    from nas.search.dispatch import gcs_address

    never = list_tasks(address=gcs_address(), filters=[("name", "=", "trial-cost-0")])
    assert never == []  # never dispatched
    db = open_database(url)
    trials = db.trials(db.search("cost").search_id)
    assert all("--max-params 1,000" in t.error and t.epochs == 0 for t in trials)
    db.close()


def test_training_errors_fail_the_trial_with_the_reason(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    # A learning rate of 1e30 is in range but diverges on the first steps inside the worker
    # (a network with the wrong class count, the old way to make a worker fail, is now bad
    # input before the search starts; an exception in a worker is tests/faults' op fault).
    config = tiny("err", cifar_dir, trials=1, network={"cells": 1, "filters": 24},
                  train={**TINY.get("train", {}), "lr": 1e30})
    with pytest.raises(SearchFailed, match="trials failed"):
        run_search(config, url)
    db = open_database(url)
    search = db.search("err")
    trials = db.trials(search.search_id)
    assert trials and all(t.state == "FAIL" and t.error for t in trials)
    assert "non-finite loss" in trials[0].error
    assert search.status == "failed" and search.driver_token is None
    db.close()


# -- a duplicate asked while its original still trains: parked, then resolved -----------------


def _twins(url: str, study: str) -> None:
    """The study's first two trials are the same genotype, so the second is asked while the
    first trains (the session cluster has 2 CPUs: two trials at once)."""
    import random

    from nas.search.samplers import search_space

    rng = random.Random(7)
    params = {name: rng.choice(d.choices) for name, d in search_space().items()}
    study_ = optuna.create_study(storage=url, study_name=study, direction="maximize")
    study_.enqueue_trial(params)
    study_.enqueue_trial(params)


def _task_names(study: str) -> set[str]:
    from ray.util.state import list_tasks

    from nas.search.dispatch import gcs_address

    return {t.name for t in list_tasks(address=gcs_address(), limit=10_000)
            if t.name.startswith(f"trial-{study}-")}


def test_a_parked_duplicate_reuses_the_result_of_its_running_twin(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    _twins(url, "twins")
    summary = run_search(tiny("twins", cifar_dir, trials=2, sampler="random"), url, resume=True)
    assert summary.states == {"COMPLETE": 2}
    db = open_database(url)
    original, twin = db.trials(db.search("twins").search_id)
    db.close()
    assert (twin.duplicate_of, twin.key, twin.epochs) == (original.number, original.key, 0)
    assert twin.val_accuracy == original.val_accuracy and twin.values == original.values
    assert twin.duration_s == 0.0 and original.epochs == 1 and original.duplicate_of is None
    assert _task_names("twins") == {"trial-twins-0"}  # the twin never reached Ray


def test_a_parked_duplicate_trains_itself_when_its_twin_fails(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    _twins(url, "twinfail")
    config = tiny("twinfail", cifar_dir, trials=2, sampler="random",
                  train={**TINY["train"], "lr": 1e30})  # diverges: every trial FAILs
    with pytest.raises(SearchFailed, match="trials failed"):
        run_search(config, url, resume=True)
    db = open_database(url)
    original, twin, *_ = db.trials(db.search("twinfail").search_id)
    db.close()
    assert original.key == twin.key and twin.duplicate_of is None
    assert all(t.state == "FAIL" and "non-finite loss" in t.error for t in (original, twin))
    assert {"trial-twinfail-0", "trial-twinfail-1"} <= _task_names("twinfail")
