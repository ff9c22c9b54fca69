"""Every way a driver stops by itself leaves no trial RUNNING (issue 17, classes 2 and 4).

A trial asking for resources no node has would stay pending in Ray for ever: on a cluster
this driver started (fixed size) that is exit 2 before anything is written; on a cluster
that may grow (`--ray-address`) the search says so once and `--timeout` bounds the wait,
failing the waiting trial. A Ctrl-C that lands between Optuna's ask and the Ray task (the
cost check on the meta device) FAILs that trial in both tables. Trials train tiny real
networks for 3 steps on the session's Ray cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import nothing_written, optuna_states, states, study_trials, write_config

from nas.cli import main
from workers import faults

CASES = [
    ("gpus on a cpu-only cluster", ["--gpus-per-trial", "1"], "--gpus-per-trial 1 needs"),
    ("half a gpu", ["--gpus-per-trial", "0.5"], "use --gpus-per-trial 0"),
    ("more cpus than any node", ["--cpus-per-trial", "64"], "--cpus-per-trial 64"),
]


@pytest.mark.parametrize(("case", "flags", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_trial_no_node_can_run_is_exit_2_on_a_fixed_cluster(
        case: str, flags: list[str], message: str, ray_cluster: None, cifar_dir: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "search.json")
    code = main(["search", "--study", "res", "--trials", "1", "--data", str(cifar_dir),
                 "--config", str(config), "--storage", f"sqlite:///{tmp_path / 'nas.db'}",
                 *flags])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and message in err, err
    nothing_written(tmp_path / "nas.db")


def test_a_growable_cluster_waits_bounded_by_timeout(
        ray_cluster: None, cifar_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from nas.search.dispatch import gcs_address

    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = write_config(tmp_path / "search.json")
    code = main(["search", "--study", "grow", "--trials", "1", "--data", str(cifar_dir),
                 "--config", str(config), "--storage", url, "--gpus-per-trial", "1",
                 "--ray-address", gcs_address(), "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "waiting for the cluster to grow" in err and "--timeout reached" in err, err
    trials = study_trials(url, "grow")
    # a trial sent before the deadline is FAILed; under load the deadline may come first
    assert all(t.state == "FAIL" for t in trials), [(t.state, t.error) for t in trials]
    assert optuna_states(url, "grow").get("RUNNING", 0) == 0


def test_ctrl_c_during_the_cost_check_leaves_no_trial_running(
        ray_cluster: None, cifar_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = write_config(tmp_path / "search.json")
    monkeypatch.setenv(faults.INTERRUPT_ENV, "dispatch:2")  # the second ask, before Ray
    monkeypatch.setattr(faults, "_arrivals", {})
    code = main(["search", "--study", "intr", "--trials", "3", "--data", str(cifar_dir),
                 "--config", str(config), "--storage", url])
    err = capsys.readouterr().err
    assert code == 130, err
    assert states(url, "intr").get("RUNNING", 0) == 0
    assert optuna_states(url, "intr").get("RUNNING", 0) == 0
    interrupted = [t for t in study_trials(url, "intr") if t.error == "interrupted (Ctrl-C)"]
    assert len(interrupted) >= 1, study_trials(url, "intr")
