"""Samplers and pruners by name, and regularized evolution written as an Optuna sampler.

Regularized evolution (Real et al., 2019): keep the P most recent finished trials as the
population; sample S of them, mutate one decision of the best, train the child; the oldest
member leaves as each child arrives. The population is rebuilt from the study's trials at
every ask, so a resumed study continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from search_spaces import choices


def search_space(
    macro: dict[str, tuple[int, ...]] | None = None,
) -> dict[str, CategoricalDistribution]:
    """The 50 categorical decisions as Optuna distributions, in a fixed order, then the
    searched macro decisions (`cells`, `filters`, `stem_stride`, `blocks`: those with more
    than one value)."""
    space = {name: CategoricalDistribution(list(values)) for name, values in choices().items()}
    for name, values in (macro or {}).items():
        if len(values) > 1:
            space[name] = CategoricalDistribution(list(values))
    return space


class RegularizedEvolutionSampler(BaseSampler):
    """Aging evolution: tournament of `tournament` out of the last `population` trials."""

    def __init__(self, population: int = 16, tournament: int = 4, seed: int | None = None,
                 space: dict[str, BaseDistribution] | None = None):
        if population < 2 or not 1 <= tournament <= population:
            raise ValueError("need population >= 2 and 1 <= tournament <= population")
        self.space = dict(space or search_space())  # macro decisions mutate like the cell's
        self.population = population
        self.tournament = tournament
        self.seed = 0 if seed is None else seed
        self._random = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return dict(self.space)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """A mutated tournament winner, or {} (random) while the population is filling."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done = [t for t in done if all(name in t.params for name in search_space)]
        if len(done) < self.population:
            return {}
        members = sorted(done, key=lambda t: t.number)[-self.population:]  # the oldest left
        # One generator per trial number: the same study history gives the same child.
        rng = np.random.default_rng([self.seed, trial.number])
        picks = rng.choice(len(members), size=self.tournament, replace=False)
        sign = 1.0 if study.directions[0] == StudyDirection.MAXIMIZE else -1.0
        parent = max((members[i] for i in picks), key=lambda t: sign * t.values[0])
        return mutate(dict(parent.params), search_space, rng)

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def mutate(
    params: dict[str, Any], space: dict[str, BaseDistribution], rng: np.random.Generator
) -> dict[str, Any]:
    """Change exactly one categorical decision to a different choice."""
    names = [n for n in space if len(space[n].choices) > 1]  # type: ignore[attr-defined]
    name = names[int(rng.integers(len(names)))]
    options = [c for c in space[name].choices if c != params[name]]  # type: ignore[attr-defined]
    child = dict(params)
    child[name] = options[int(rng.integers(len(options)))]
    return child


def make_sampler(
    name: str, seed: int, objectives: Sequence[str], population: int = 16, tournament: int = 4,
    space: dict[str, BaseDistribution] | None = None,
) -> BaseSampler:
    """tpe (multivariate, constant liar for parallel trials), random, nsga2, or evolution."""
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, group=False, constant_liar=True
        )
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if name == "evolution":
        return RegularizedEvolutionSampler(population, tournament, seed=seed, space=space)
    raise ValueError(f"unknown sampler {name!r}")


def make_pruner(name: str | None, epochs: int, objectives: Sequence[str],
                rung_seconds: int | None = None, reduction_factor: int | None = None,
                budget_seconds: float | None = None) -> optuna.pruners.BasePruner:
    """Pruning on validation accuracy at each report; multi-objective studies cannot prune.

    A step is an epoch, or on the clock (`budget_seconds`) whole seconds of training: sha
    (asynchronous successive halving) and hyperband then have their rungs at rung_seconds,
    rung_seconds*eta, ... seconds. None: sha on the clock, median otherwise.
    """
    clock = budget_seconds is not None
    name = name or ("sha" if clock else "median")
    eta = reduction_factor or 3
    if name == "none" or len(objectives) > 1:
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0)
    first = (rung_seconds or 1) if clock else 1
    top = max(first, int(budget_seconds)) if budget_seconds is not None else max(epochs, 1)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=first, reduction_factor=eta, min_early_stopping_rate=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=top,
                                              reduction_factor=eta)
    raise ValueError(f"unknown pruner {name!r}")
