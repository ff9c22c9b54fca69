"""Config validation, samplers (regularized evolution included) and the Optuna controller.

No training here: objectives are real, cheap functions of the genotype (its cost on the
meta device, op counts), so sampler behaviour is checked against known values.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy.exc import OperationalError

from nas.errors import BadInput
from nas.search.config import SearchConfig, make_config, resume_config
from nas.search.controller import Controller, cost_violation, network_cost, trial_seed
from nas.search.samplers import RegularizedEvolutionSampler, make_sampler, search_space
from search_spaces import (
    PUBLISHED,
    NetworkConfig,
    build_network,
    choices,
    count_cost,
    genotype_from_params,
)

TINY = {"cells": 1, "filters": 24}


def sep_score(params: dict) -> float:
    """How many branches use a separable conv: a real objective with a known optimum."""
    return float(sum(1 for k, v in params.items() if "_op_" in k and v.startswith("sep_conv")))


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"sampler": "annealing"}, "sampler"),
        ({"objectives": "val_accuracy,flops"}, "objectives"),
        ({"objectives": "params"}, "first objective must be val_accuracy"),
        ({"pruner": "asha"}, "pruner"),
        ({"trials": 0}, "trials"),
        ({"study": "my study"}, "may only hold letters"),
        ({"study": "x'; drop"}, "may only hold letters"),
        ({"population": 4, "tournament": 5}, "larger than population"),
    ],
)
def test_bad_options_are_one_line_bad_input(flags: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message) as info:
        make_config(**flags)
    assert "\n" not in str(info.value)


def test_config_file_keys_types_and_flag_precedence(tmp_path: Path) -> None:
    good = tmp_path / "search.yaml"
    good.write_text("sampler: evolution\npopulation: 8\nmax-params: 100000\ntrials: 3\n")
    config = make_config(good, trials=5)
    assert (config.sampler, config.population, config.max_params, config.trials) == (
        "evolution", 8, 100000, 5)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("sampler: tpe\nlearning_rate: 0.1\n")
    with pytest.raises(BadInput, match="learning_rate: unknown key"):
        make_config(unknown)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"trials": "many"}')
    with pytest.raises(BadInput, match="trials"):
        make_config(wrong)
    broken = tmp_path / "broken.yaml"
    broken.write_text("sampler: [tpe\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        make_config(broken)
    with pytest.raises(BadInput, match="cannot read config file"):
        make_config(tmp_path / "absent.yaml")


def test_resume_keeps_the_search_and_takes_run_options() -> None:
    stored = SearchConfig(study="s", sampler="evolution", seed=3, trials=4).to_dict()
    resumed = resume_config(stored, SearchConfig(study="s", trials=9, timeout=60.0),
                            {"study", "trials", "timeout"})
    assert (resumed.sampler, resumed.seed, resumed.trials, resumed.timeout) == (
        "evolution", 3, 9, 60.0)
    with pytest.raises(BadInput, match="created with sampler='evolution'"):
        resume_config(stored, SearchConfig(study="s", sampler="tpe"), {"sampler"})
    same = resume_config(stored, SearchConfig(study="s", sampler="evolution"), {"sampler"})
    assert same.sampler == "evolution"


# -- seeds, space, cost ---------------------------------------------------------------------


def test_trial_seeds_are_stable_and_distinct() -> None:
    seeds = [trial_seed(0, n) for n in range(200)]
    assert len(set(seeds)) == 200
    assert seeds == [trial_seed(0, n) for n in range(200)]
    assert trial_seed(1, 0) != trial_seed(0, 0)


def test_search_space_is_the_fifty_decisions() -> None:
    space = search_space()
    assert len(space) == 50
    assert {k: tuple(d.choices) for k, d in space.items()} == choices()


def test_cost_check_on_meta_device() -> None:
    genotype = PUBLISHED["nasnet-a"]
    cost = network_cost(genotype, {"layout": "cifar", **TINY})
    real = build_network(genotype, NetworkConfig(**TINY))  # on the CPU, for comparison
    assert cost.params == sum(p.numel() for p in real.parameters())  # no aux head
    assert cost.mult_adds == count_cost(real, 32).mult_adds
    bigger = network_cost(genotype, {"layout": "cifar", "cells": 2, "filters": 48})
    assert bigger.params > cost.params
    assert cost_violation(cost, SearchConfig()) is None
    reason = cost_violation(cost, SearchConfig(max_params=cost.params - 1))
    assert reason is not None and "--max-params" in reason
    reason = cost_violation(cost, SearchConfig(max_mult_adds=1000))
    assert reason is not None and "--max-mult-adds" in reason


# -- samplers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tpe", "random", "nsga2", "evolution"])
def test_every_sampler_yields_valid_genotypes(name: str) -> None:
    objectives = ("val_accuracy", "params") if name == "nsga2" else ("val_accuracy",)
    directions = ["maximize", "minimize"] if name == "nsga2" else ["maximize"]
    sampler = make_sampler(name, seed=0, objectives=objectives, population=4, tournament=2)
    study = optuna.create_study(directions=directions, sampler=sampler)
    space = search_space()
    keys = set()
    for _ in range(8):
        trial = study.ask(space)
        genotype = genotype_from_params(trial.params)
        keys.add(genotype.key())
        score = sep_score(trial.params)
        study.tell(trial, [score, 1.0 / (1 + score)] if name == "nsga2" else score)
    assert len(keys) >= 6  # a sampler that repeats itself would not search


def _fill(study: optuna.Study, n: int) -> None:
    space = search_space()
    for _ in range(n):
        trial = study.ask(space)
        study.tell(trial, sep_score(trial.params))


def test_evolution_mutates_one_decision_of_a_tournament_winner() -> None:
    population, tournament = 6, 3
    study = optuna.create_study(
        direction="maximize",
        sampler=RegularizedEvolutionSampler(population, tournament, seed=1),
    )
    _fill(study, population)  # the first P trials are random
    for _ in range(10):
        done = study.get_trials(states=(TrialState.COMPLETE,))
        members = done[-population:]
        trial = study.ask(search_space())
        child = trial.params
        diffs = [
            (m, [k for k in child if child[k] != m.params[k]]) for m in members
        ]
        parents = [m for m, d in diffs if len(d) == 1]
        assert parents, "child must differ from a population member in exactly one decision"
        # The parent won a tournament: at least tournament-1 members score no better.
        best_parent = max(parents, key=lambda m: m.value)
        worse = sum(1 for m in members if m.value <= best_parent.value)
        assert worse >= tournament
        genotype_from_params(child)
        study.tell(trial, sep_score(child))


def test_evolution_state_is_rebuilt_from_the_study(tmp_path: Path) -> None:
    """A fresh sampler on a stored study proposes what the first one would have: resume."""
    url = f"sqlite:///{tmp_path / 'evo.db'}"
    first = optuna.create_study(storage=url, study_name="evo", direction="maximize",
                                sampler=RegularizedEvolutionSampler(5, 2, seed=4))
    _fill(first, 8)
    again = optuna.load_study(storage=url, study_name="evo",
                              sampler=RegularizedEvolutionSampler(5, 2, seed=4))
    frozen = again.get_trials()
    sampler = RegularizedEvolutionSampler(5, 2, seed=4)
    ghost = optuna.trial.create_trial(state=TrialState.RUNNING, params={}, distributions={})
    ghost.number = len(frozen)
    proposal_a = sampler.sample_relative(again, ghost, dict(search_space()))
    proposal_b = RegularizedEvolutionSampler(5, 2, seed=4).sample_relative(
        first, ghost, dict(search_space()))
    assert proposal_a == proposal_b and len(proposal_a) == 50


# -- controller -----------------------------------------------------------------------------


def test_controller_requeues_a_dead_drivers_trial_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    config = SearchConfig(study="c", sampler="random", seed=2)
    controller = Controller(url, config, epochs=1)
    first = controller.ask()
    assert first.seed == trial_seed(2, first.number) and first.retry_of is None
    asked = controller.study.trials[first.number]
    assert first.genotype == genotype_from_params(asked.params).to_dict()
    assert first.key == genotype_from_params(asked.params).key() and first.state == "RUNNING"
    done = controller.ask()
    controller.tell(done.number, TrialState.COMPLETE, [0.5])
    # A new driver finds trial 0 RUNNING: FAIL it and queue its configuration again.
    resumed = Controller(url, config, epochs=1)
    assert [t.number for t in resumed.running()] == [first.number]
    resumed.requeue(resumed.running()[0])
    assert resumed.state_of(first.number)[0] == TrialState.FAIL
    retry = resumed.ask()
    assert retry.retry_of == first.number and retry.key == first.key
    assert resumed.finished() == 1
    # The retry dies too: it is marked FAIL but not queued a second time.
    resumed.requeue(resumed.study.get_trials(states=(TrialState.RUNNING,))[0])
    nxt = resumed.ask()
    assert nxt.retry_of is None


def test_controller_refuses_other_objectives_on_same_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    Controller(url, SearchConfig(study="d"), epochs=1)
    with pytest.raises(ValueError, match="objective"):
        Controller(url, SearchConfig(study="d", objectives=("val_accuracy", "params")),
                   epochs=1)



def _drop_connection_on_call(monkeypatch: pytest.MonkeyPatch, controller: Controller,
                             call: int) -> None:
    """The server drops the connection on the `call`-th decision Optuna writes."""
    real = controller.storage._set_trial_param  # what Optuna writes each decision with
    calls = {"n": 0}

    def flaky(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == call:
            raise OperationalError("INSERT INTO trial_params", {},
                                   Exception("server closed the connection unexpectedly"))
        real(*args)

    monkeypatch.setattr(controller.storage, "_set_trial_param", flaky)


def test_an_interrupted_ask_leaves_no_trial_running(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Optuna had created the trial when the database went away: the retried ask FAILs
    that half-written trial rather than leaving it RUNNING with nobody to finish it."""
    controller = Controller(f"sqlite:///{tmp_path / 'o.db'}",
                            SearchConfig(study="o", sampler="random", seed=3), epochs=1)
    _drop_connection_on_call(monkeypatch, controller, 7)
    candidate = controller.ask()
    states = {t.number: t.state for t in controller.study.get_trials()}
    assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING} and candidate.number == 1
    assert len(controller.study.trials[candidate.number].params) == 50
    controller.tell(candidate.number, TrialState.COMPLETE, [0.5])
    assert controller.running() == [] and controller.finished() == 1


def test_an_interrupted_ask_of_a_queued_retry_queues_it_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    config = SearchConfig(study="q", sampler="random", seed=4)
    dead = Controller(url, config, epochs=1).ask()  # its driver dies: trial 0 stays RUNNING
    controller = Controller(url, config, epochs=1)
    controller.requeue(controller.running()[0])
    _drop_connection_on_call(monkeypatch, controller, 3)
    retry = controller.ask()
    assert retry.retry_of == dead.number and retry.key == dead.key
    assert [t.number for t in controller.running()] == [retry.number]
