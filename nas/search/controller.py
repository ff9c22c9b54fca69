"""The controller: an Optuna study driven by ask/tell over the 50 NASNet decisions.

It owns everything Optuna: sampling, telling results, pruning answers, and putting a dead
driver's RUNNING trials back in the queue. It never trains and never writes our tables;
`nas.search.driver` does that as the one writer.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from nas.db.retry import retry_methods
from nas.db.store import Trial
from nas.search.config import SearchConfig
from nas.search.samplers import make_pruner, make_sampler, search_space
from search_spaces import Genotype, NetworkConfig, build_network, count_cost, genotype_from_params

RETRY_OF = "retry_of"  # user attribute: the number of the crashed trial a trial re-runs


def trial_seed(study_seed: int, number: int) -> int:
    """A trial's seed: a hash of the study seed and the trial number (stable across runs)."""
    digest = hashlib.sha256(f"{study_seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


@dataclass(frozen=True)
class Cost:
    params: int
    mult_adds: int


def network_cost(genotype: Genotype, network: dict[str, Any]) -> Cost:
    """Parameters and mult-adds of the network a worker would build, on the meta device.

    The meta device allocates nothing and computes nothing, so an oversized candidate is
    caught before it reaches a worker.
    """
    config = NetworkConfig(**network).validate()
    with torch.device("meta"):
        model = build_network(genotype, config)
        cost = count_cost(model, config.image_size)
    return Cost(cost.params, cost.mult_adds)


def cost_violation(cost: Cost, config: SearchConfig) -> str | None:
    """Why a candidate breaks --max-params / --max-mult-adds, or None."""
    if config.max_params is not None and cost.params > config.max_params:
        return f"params {cost.params:,} > --max-params {config.max_params:,}"
    if config.max_mult_adds is not None and cost.mult_adds > config.max_mult_adds:
        return f"mult-adds {cost.mult_adds:,} > --max-mult-adds {config.max_mult_adds:,}"
    return None


class Controller:
    """One study (same name as the search) in the shared database."""

    def __init__(self, storage_url: str, config: SearchConfig, epochs: int,
                 macro: dict[str, tuple[int, ...]] | None = None) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.config = config
        # cells/filters: their choices (one value: fixed, not a decision); the driver gives both
        self.macro = dict(macro or {})
        self.space = search_space(self.macro)
        self.storage = optuna.storages.RDBStorage(
            storage_url, engine_kwargs={"pool_pre_ping": True}
        )
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=config.study,
            directions=config.directions,
            sampler=make_sampler(config.sampler, config.seed, config.objectives,
                                 config.population, config.tournament, self.space),
            pruner=make_pruner(config.pruner, epochs, config.objectives, config.rung_seconds,
                               config.reduction_factor, config.budget_seconds),
            load_if_exists=True,
        )
        if [d.name.lower() for d in self.study.directions] != config.directions:
            raise ValueError(
                f"study {config.study!r} optimises {len(self.study.directions)} objective(s); "
                f"the config asks for {list(config.objectives)}"
            )
        self._half_asked: int | None = None  # a trial created, its decisions not all written
        self._asked: dict[int, optuna.trial.Trial] = {}  # Optuna's handles, until told

    @property
    def multi_objective(self) -> bool:
        return len(self.config.objectives) > 1

    def ask(self) -> Trial:
        """Sample the next trial (a queued retry first, if any): its number, the genotype its
        50 decisions spell, its N@F (sampled, else the fixed one), its seed and the trial it
        re-runs.

        Optuna creates the trial (RUNNING) before it writes the 50 decisions, one at a
        time; a database that goes away in between leaves a RUNNING trial nobody holds.
        The retry of such an ask first FAILs that half-made trial (a queued retry goes
        back in the queue), so it does not stay RUNNING for ever.
        """
        if self._half_asked is not None:
            self._fail_half_asked(self._half_asked)
            self._half_asked = None
        trial = self.study.ask()
        self._half_asked = trial.number
        for name, distribution in self.space.items():  # what study.ask(space) does, in order
            trial.suggest_categorical(name, distribution.choices)
        self._half_asked = None
        genotype = genotype_from_params(trial.params)
        self._asked[trial.number] = trial
        size = {name: int(trial.params.get(name, values[0]))  # sampled, else the fixed value
                for name, values in self.macro.items()}
        return Trial(trial.number, key=genotype.key(), genotype=genotype.to_dict(),
                     seed=trial_seed(self.config.seed, trial.number),
                     retry_of=trial.user_attrs.get(RETRY_OF), cells=size.get("cells"),
                     filters=size.get("filters"), stem_stride=size.get("stem_stride"))

    def report(self, number: int, epoch: int, val_accuracy: float) -> bool:
        """Report an epoch's validation accuracy of asked trial `number`; True if the pruner
        says stop."""
        if self.multi_objective:
            return False
        trial = self._asked[number]
        trial.report(val_accuracy, epoch)
        return trial.should_prune()

    def tell(self, number: int, state: TrialState, values: list[float] | None = None,
             reason: str | None = None) -> None:
        """Finish a trial in Optuna; a trial already finished (after a resume) is left as is."""
        if reason is not None:
            self.study._storage.set_trial_user_attr(  # no public per-number setter exists
                self._trial_id(number), "reason", reason[:2000]
            )
        if state == TrialState.COMPLETE:
            self.study.tell(number, values, skip_if_finished=True)
        else:
            self.study.tell(number, state=state, skip_if_finished=True)
        self._asked.pop(number, None)

    def _fail_half_asked(self, number: int) -> None:
        frozen = self.storage.get_trial(self._trial_id(number))
        self.tell(number, TrialState.FAIL,
                  reason="the database went away while the trial was being sampled")
        fixed = frozen.system_attrs.get("fixed_params")
        retry_of = frozen.user_attrs.get(RETRY_OF)
        if fixed and retry_of is not None:  # a queued retry: queue it again
            self.study.enqueue_trial(fixed, user_attrs={RETRY_OF: retry_of},
                                     skip_if_exists=False)

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number
        )

    def finished(self) -> int:
        """Trials that count towards --trials N: COMPLETE and PRUNED."""
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        return len(self.study.get_trials(deepcopy=False, states=states))

    def running(self) -> list[optuna.trial.FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def requeue(self, trial: optuna.trial.FrozenTrial) -> None:
        """Mark a dead driver's RUNNING trial FAIL and queue its configuration once more."""
        self.tell(trial.number, TrialState.FAIL, reason="driver died while the trial ran")
        if trial.user_attrs.get(RETRY_OF) is None:  # a retry that died again is not re-queued
            self.study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF: trial.number},
                                     skip_if_exists=False)

    def state_of(self, number: int) -> tuple[TrialState, list[float] | None]:
        frozen = self.storage.get_trial(self._trial_id(number))
        return frozen.state, frozen.values


# Optuna's storage calls ride out a database that is briefly away, as ours do (nas.db.retry).
retry_methods(Controller, ("ask", "report", "tell", "finished", "running", "requeue",
                           "state_of"))
