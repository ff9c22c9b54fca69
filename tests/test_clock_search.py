"""A search on the clock (issue 14, items 1-2): each candidate trains T seconds, is scored at
the successive-halving rungs r, r*eta, ... up to T, and the pruner's step is seconds.

Real pieces throughout: the trainer on real CIFAR-10 subsets, Optuna's own pruners on a real
SQLite study, the Ray search driver on the session's cluster, the CLI's bad-input path.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import optuna
import pytest
from faults.faultkit import run_bad_input
from optuna.trial import TrialState

from nas.cli import main
from nas.db import open_database
from nas.search.config import clock_rungs, make_config, objective_text
from nas.search.controller import Controller
from nas.search.driver import resolve_settings, run_search
from nas.search.samplers import make_pruner
from search_spaces import NetworkConfig, build_network
from search_spaces.published import NASNET_A
from workers.presets import DEFAULT_PRESETS, PRESETS


def test_rungs_run_from_the_first_to_the_budget() -> None:
    assert clock_rungs(1, 3, 9) == (1.0, 3.0, 9.0)
    assert clock_rungs(10, 3, 180) == (10.0, 30.0, 90.0, 180.0)
    assert clock_rungs(180, 3, 180) == (180.0,)


def test_cpu_search_is_the_default_and_searches_for_cpu_compare() -> None:
    """Same network and recipe as cpu-compare, top rung = the comparison's 180 s."""
    assert DEFAULT_PRESETS["search"] == ("cpu-search", "gpu-nasnet")
    search, compare = PRESETS["cpu-search"], PRESETS["cpu-compare"]
    assert search.network == compare.network
    recipe = ("batch_size", "lr", "weight_decay", "label_smoothing", "warmup_epochs",
              "grad_clip", "epochs", "time_budget", "crop_pad", "flip", "cutout")
    for name in recipe:
        assert getattr(search.train, name) == getattr(compare.train, name), name
    # formats are measured for both, never pinned (the search times them once per study)
    assert (compare.train.channels_last, compare.train.bf16) == (None, None)
    assert (search.train.channels_last, search.train.bf16) == (None, None)
    settings = resolve_settings(make_config(), has_gpu=False)
    assert settings.preset == "cpu-search" and settings.budget_seconds == 180.0
    assert settings.train.report_at == (10.0, 30.0, 90.0, 180.0)
    assert settings.train.subset is None and settings.timeout == 900.0
    gpu = resolve_settings(make_config(), has_gpu=True)  # gpu-nasnet stays epoch-based
    assert gpu.preset == "gpu-nasnet" and gpu.budget_seconds is None
    assert gpu.train.time_budget is None and gpu.train.report_at == ()


def test_search_formats_are_timed_once_and_stored_with_the_study() -> None:
    """cpu-search leaves channels_last/bf16 open; the driver times them on this CPU once,
    puts them into the stored config's train overrides, and a stored choice (a resumed
    study) or one given by the user is kept, not timed again."""
    from nas.search.driver import measure_search_formats

    config = make_config(preset="cpu-search", cells_choices=(1,), filters_choices=(24,),
                         stem_stride_choices=(2,))
    settings = resolve_settings(config, has_gpu=False)
    timed = measure_search_formats(config, settings, has_gpu=False)
    formats = {k: timed.train[k] for k in ("channels_last", "bf16")}
    assert all(isinstance(v, bool) for v in formats.values())
    again = resolve_settings(timed, has_gpu=False)
    assert (again.train.channels_last, again.train.bf16) == tuple(formats.values())
    assert measure_search_formats(timed, again, has_gpu=False) is timed  # stored: kept
    given = make_config(preset="cpu-search", train={"channels_last": False})
    kept = measure_search_formats(given, resolve_settings(given, has_gpu=False), False)
    assert kept.train["channels_last"] is False and isinstance(kept.train["bf16"], bool)
    assert measure_search_formats(config, settings, has_gpu=True) is config  # CUDA decides


def test_trainer_reports_at_the_rungs_on_the_clock(cifar_dir: Path) -> None:
    """Reports come at 1 s and 3 s of training (not after epochs), off the clock; the lower
    rung scores the `report_images` subset, the top one the whole split."""
    from workers.data import load_cifar10, subset
    from workers.train import TrainConfig, train

    data = load_cifar10(cifar_dir)
    train_split, val = subset(data.train, 1024, 0), subset(data.val, 200, 0)
    model = build_network(NASNET_A, NetworkConfig(cells=1, filters=24).validate())
    config = TrainConfig(epochs=100, batch_size=32, time_budget=3.0, report_at=(1.0, 3.0),
                         report_images=50, eval_every=0, threads=1, channels_last=False,
                         bf16=False)
    train(model, train_split, val, dataclasses.replace(config, time_budget=None, report_at=(),
                                                       max_steps=2))  # warm the kernels up
    told = []
    result = train(model, train_split, val, config, lambda r: told.append(r) or False)
    assert [r.at_seconds for r in told] == [1.0, 3.0] == [r.at_seconds for r in result.epochs]
    assert told[0].seconds >= 1.0 and told[1].seconds >= 3.0
    assert result.stopped == "time budget" and result.accuracy == told[1].val_accuracy
    assert round(told[0].val_accuracy * 50) == told[0].val_accuracy * 50  # of 50 images
    # told to stop at the first rung: pruned there, never trained to the top
    model = build_network(NASNET_A, NetworkConfig(cells=1, filters=24).validate())
    result = train(model, train_split, val, config, lambda r: True)
    assert result.stopped == "pruned" and [r.at_seconds for r in result.epochs] == [1.0]
    assert result.train_seconds < 3.0


@pytest.mark.parametrize("pruner", ["sha", "hyperband"])
def test_optuna_prunes_on_seconds_at_the_rungs(pruner: str, tmp_path: Path) -> None:
    """Rungs 1/3/9 s: a good first candidate is promoted to the top rung, a bad one after it
    is pruned at rung 1 (Optuna's pruner on a real study; steps are seconds)."""
    config = make_config(study="rungs", pruner=pruner, budget_seconds=9, rung_seconds=1,
                         reduction_factor=3)
    controller = Controller(f"sqlite:///{tmp_path / 'o.db'}", config, epochs=30)
    good = controller.ask()
    assert [controller.report(good.number, step, 0.5) for step in (1, 3)] == [False, False]
    controller.report(good.number, 9, 0.6)
    controller.tell(good.number, TrialState.COMPLETE, [0.6])
    verdicts = []
    for _ in range(3):  # hyperband may put a trial in a bracket that starts later
        bad = controller.ask()
        verdicts.append(controller.report(bad.number, 1, 0.1) or controller.report(
            bad.number, 3, 0.1))
        controller.tell(bad.number, TrialState.PRUNED if verdicts[-1] else TrialState.COMPLETE,
                        None if verdicts[-1] else [0.1])
    assert verdicts[0] if pruner == "sha" else any(verdicts)
    frozen = controller.study.trials[0]
    assert sorted(frozen.intermediate_values) == [1, 3, 9]


def test_pruners_by_name_follow_the_clock() -> None:
    sha = make_pruner(None, 30, ["val_accuracy"], 10, 3, 180.0)
    assert isinstance(sha, optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(None, 30, ["val_accuracy"]), optuna.pruners.MedianPruner)
    hb = make_pruner("hyperband", 30, ["val_accuracy"], 10, 3, 180.0)
    assert isinstance(hb, optuna.pruners.HyperbandPruner)
    assert (hb._min_resource, hb._max_resource, hb._reduction_factor) == (10, 180, 3)


@pytest.mark.usefixtures("ray_cluster")
def test_search_on_the_clock_prunes_and_promotes_at_the_rungs(
    cifar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One trial at a time (2 CPUs each), rungs 1/3 s: what Optuna and the epochs table hold
    follows successive halving, and `nas status` names the objective."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = make_config(
        study="clock", data=str(cifar_dir), trials=3, sampler="random", cpus_per_trial=2,
        budget_seconds=3, rung_seconds=1, train_images=512, val_images=200,
        network={"cells": 1, "filters": 24}, blocks_choices=(5,),  # 5 blocks: under the cap
        train={"batch_size": 32, "report_images": 100})
    summary = run_search(config, url)
    assert summary.trials == 3 and summary.best is not None
    db = open_database(url)
    search = db.search("clock")
    assert search.config["budget_seconds"] == 3 and search.config["pruner"] == "sha"
    study = optuna.load_study(study_name="clock", storage=db.url)
    best_at_1 = None
    for trial in sorted(db.trials(search.search_id), key=lambda t: t.number):
        steps = [e.epoch for e in db.epochs(search.search_id, trial.number)]
        frozen = study.trials[trial.number]
        assert steps == sorted(frozen.intermediate_values) and set(steps) <= {1, 3}
        # A slow step may cross rung 1 and the budget at once (a loaded machine): Optuna then
        # files rung 1 under the last report, whose answer comes too late to prune.
        at_1 = frozen.system_attrs["completed_rung_0"]
        if steps[0] == 1 and best_at_1 is not None and at_1 < best_at_1:  # below the others
            assert trial.state == "PRUNED" and steps == [1], trial
            assert "after 1 s of training" in trial.error
        else:
            assert trial.state == "COMPLETE" and steps[-1] == 3, trial
            assert trial.val_accuracy == frozen.intermediate_values[3]
        best_at_1 = at_1 if best_at_1 is None else max(best_at_1, at_1)
    db.close()
    assert main(["status", "--study", "clock", "--storage", url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["objective"] == ("val_accuracy after 3 s of training; rungs 1/3 s "
                                   "(sha pruner)")
    assert objective_text(search.config) == status["objective"]
    assert main(["status", "--study", "clock", "--storage", url]) == 0
    assert "val_accuracy after 3 s of training" in capsys.readouterr().out


def test_timeout_bounds_the_whole_search_on_the_clock(
    ray_cluster: None, cifar_dir: Path, tmp_path: Path
) -> None:
    """--timeout 20 with a 30 s budget: no trial may train to its top rung, so each one stops
    at the last rung the deadline still allowed (PRUNED, saying why), not after it."""
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    config = make_config(
        study="deadline", data=str(cifar_dir), trials=2, sampler="random", pruner="none",
        budget_seconds=30, rung_seconds=1, timeout=20, train_images=512, val_images=200,
        network={"cells": 1, "filters": 24}, blocks_choices=(5,),  # 5 blocks: under the cap
        train={"batch_size": 32, "report_images": 100})
    summary = run_search(config, url)
    assert summary.states == {"PRUNED": 2}, summary.states
    db = open_database(url)
    search = db.search("deadline")
    for trial in db.trials(search.search_id):
        steps = [e.epoch for e in db.epochs(search.search_id, trial.number)]
        assert steps and set(steps) <= {1, 3, 9, 27} and steps == sorted(steps), steps
        assert trial.error == (f"stopped after {steps[-1]} s of training: --timeout 20 s came "
                               "before its next rung"), trial.error
    db.close()


# (case id, command line after `search`, a piece of the one-line message)
BAD = [
    ("budget zero", ["--budget-seconds", "0"], "--budget-seconds"),
    ("budget negative", ["--budget-seconds", "-5"], "--budget-seconds"),
    ("budget nan", ["--budget-seconds", "nan"], "--budget-seconds"),
    ("budget inf", ["--budget-seconds", "inf"], "--budget-seconds"),
    ("budget not a number", ["--budget-seconds", "soon"], "--budget-seconds"),
    ("budget over a week", ["--budget-seconds", "1e9"], "--budget-seconds"),
    ("rung above the budget", ["--budget-seconds", "5", "--rung-seconds", "10"],
     "--rung-seconds 10 is larger than --budget-seconds 5"),
    ("preset rung above the budget", ["--budget-seconds", "5"],
     "--rung-seconds 10 (preset cpu-search) is larger than --budget-seconds 5"),
    ("rung zero", ["--rung-seconds", "0"], "--rung-seconds"),
    ("rung without a clock", ["--preset", "cpu-quick", "--rung-seconds", "5"],
     "--rung-seconds needs a search on the clock"),
    ("reduction factor one", ["--reduction-factor", "1"], "--reduction-factor"),
    ("unknown pruner", ["--pruner", "asha"], "--pruner"),
    ("unknown preset", ["--preset", "cpu-huge"], "unknown preset 'cpu-huge'"),
]


@pytest.mark.parametrize(("case", "args", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_clock_settings_are_exit_2_and_write_nothing(
    case: str, args: list[str], message: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    run_bad_input(["search", *args], message, tmp_path, tmp_path / "no-data", monkeypatch,
                  capsys)


def test_budget_in_a_config_file_overrides_the_preset(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("budget_seconds: 60\nrung_seconds: 20\n", encoding="utf-8")
    settings = resolve_settings(make_config(path), has_gpu=False)
    assert settings.train.time_budget == 60.0 and settings.train.report_at == (20.0, 60.0)
    assert dataclasses.asdict(settings.train)["eval_every"] == 0
