"""The search driver: the one process that writes the database while Ray workers train.

Flow per trial: ask Optuna -> genotype -> cost check on the meta device (violators are
PRUNED here) -> dedupe by the cell's key at its N@F (one already trained reuses that
result) -> throughput pre-filter (a candidate too slow for its first rung is PRUNED) -> Ray task
`trial-<study>-<n>` -> epoch reports (stored, pruner asked) -> result -> our tables, then
Optuna's `tell`. Our row is written before Optuna's, so a driver killed in between is
reconciled from our row on `--resume`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from nas.db import (
    Database,
    DatabaseError,
    SearchRecord,
    StudyExists,
    Trial,
    host_name,
    lock_holder,
    open_database,
    package_version,
)
from nas.errors import BadInput, Terminated, by_sigterm, note_sigterm
from nas.search.config import SearchConfig, clock_rungs, objective_text, resume_config
from nas.search.controller import Controller, cost_violation, network_cost
from nas.search.monitor import PlainView, echo, metrics_line, progress_line, progress_view
from search_spaces import NUM_BLOCKS, ConfigError, Genotype, GenotypeError, NetworkConfig
from search_spaces.space import BLOCK_CHOICES
from workers import faults

HEARTBEAT_S = 5.0  # how often the driver refreshes its lock
POLL_S = 0.1  # how long the loop waits for a result before serving epoch reports


def _raise_terminated(signum: int, frame: Any) -> None:
    note_sigterm()
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within this block SIGTERM raises `Terminated` in the main thread (Ray's own handler,
    which aborts the process, is set aside and put back afterwards)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    note_sigterm(False)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_reason(exc: BaseException) -> str:
    """What a trial that a stopping driver ends is told (stored as the FAIL reason)."""
    if by_sigterm(exc):
        return "interrupted (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return f"driver stopped: {type(exc).__name__}: {exc}"


class SearchFailed(Exception):
    """The search cannot go on (lost its lock, every trial fails): exit code 1."""


@dataclass(frozen=True)
class Settings:
    """What every trial of this search trains: resolved from the preset and overrides."""

    preset: str
    network: dict[str, Any]
    train: Any  # workers.train.TrainConfig
    trials: int
    epochs: int
    cpus: float
    gpus: float
    budget_seconds: float | None = None  # on the clock: seconds of training per candidate
    rung_seconds: int | None = None  # the first successive-halving rung, in seconds
    reduction_factor: int = 3
    timeout: float | None = None  # --timeout, else the preset's
    # Searched N and F: every value each may take ({"cells": (1, 2), "filters": (96,)}); one
    # value is the network's fixed size, more are Optuna decisions beside the cell's 50.
    macro: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # The throughput pre-filter's floor: images a candidate must train in the first rung
    # (`rung_seconds`); None, or a search not on the clock: no pre-filter.
    min_rung_images: int | None = None


@dataclass
class Summary:
    study: str
    trials: int  # finished (COMPLETE + PRUNED)
    best: dict[str, Any] | None
    states: dict[str, int]
    elapsed_s: float
    dashboard_url: str | None
    storage: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- settings ---------------------------------------------------------------------------------


def check_preset(name: str | None) -> None:
    """An unknown preset is bad input before anything starts."""
    if name is None:
        return
    from workers.presets import PRESETS

    if name not in PRESETS:
        raise BadInput(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")


def resolve_settings(config: SearchConfig, has_gpu: bool) -> Settings:
    """Preset (cpu-quick without GPU, gpu-nasnet with) with the config's overrides on top."""
    from workers.presets import PRESETS, default_preset

    name = config.preset or default_preset("search", has_gpu)
    check_preset(name)
    preset = PRESETS[name]
    network = {"layout": "cifar", "image_size": 32, "num_classes": 10}
    network.update(dict(preset.network))
    network.update(config.network)
    _check_types(NetworkConfig, network, "network settings")
    fixed = {"layout": "cifar", "image_size": 32, "num_classes": 10}  # what CIFAR-10 is
    for key, value in fixed.items():
        if network[key] != value:
            raise BadInput(f"network settings: {key} must be {value!r} for a CIFAR-10 search "
                           f"(got {network[key]!r}); remove it from the config")
    try:
        NetworkConfig(**network).validate()
    except TypeError as exc:
        raise BadInput(f"network settings: {exc}; use NetworkConfig fields "
                       f"({', '.join(f.name for f in dataclasses.fields(NetworkConfig))})"
                       ) from None
    except ConfigError as exc:
        raise BadInput(f"network settings: {exc}") from None
    train = preset.train
    if config.train:
        known = {f.name for f in dataclasses.fields(train)}
        unknown = sorted(set(config.train) - known)
        if unknown:
            raise BadInput(f"train settings: unknown key(s) {unknown}; known: {sorted(known)}")
        _check_types(type(train), {**dataclasses.asdict(train), **config.train},
                     "train settings")
        try:
            train = dataclasses.replace(train, **config.train)
            if hasattr(train, "validate"):
                train = train.validate() or train
        except (TypeError, ValueError) as exc:
            raise BadInput(f"train settings: {exc}") from None
    train, first, factor = _on_the_clock(config, preset, train)
    gpus = config.gpus_per_trial if config.gpus_per_trial is not None else (1.0 if has_gpu else 0)
    return Settings(
        preset=name, network=network, train=train, trials=config.trials or preset.trials,
        epochs=int(getattr(train, "epochs", 1) or 1), cpus=config.cpus_per_trial, gpus=gpus,
        budget_seconds=train.time_budget if first else None, rung_seconds=first,
        reduction_factor=factor, timeout=config.timeout or preset.timeout,
        macro=resolve_macro(config, preset.macro, network),
        min_rung_images=config.min_rung_images or preset.min_rung_images,
    )


def _on_the_clock(config: SearchConfig, preset: Any, train: Any) -> tuple[Any, int | None, int]:
    """(train, first rung, eta): with a budget (--budget-seconds, else the preset's
    time_budget) each candidate trains T seconds on the clock and is scored at the rungs."""
    factor = config.reduction_factor or preset.reduction_factor
    budget = config.budget_seconds or train.time_budget
    if budget is None:
        if config.rung_seconds is not None:
            raise BadInput("--rung-seconds needs a search on the clock; give --budget-seconds "
                           "too, or a preset with a time budget (cpu-search)")
        return train, None, factor
    first = config.rung_seconds or preset.rung_seconds or max(1, int(budget // factor**2))
    if first > budget:
        source = "" if config.rung_seconds else f" (preset {preset.name})"
        raise BadInput(f"--rung-seconds {first}{source} is larger than --budget-seconds "
                       f"{budget:g}; the first rung must be at most the budget")
    train = dataclasses.replace(train, time_budget=float(budget), eval_every=0,
                                report_at=clock_rungs(first, factor, budget))
    return train, first, factor


def objective_config(config: SearchConfig, settings: Settings) -> SearchConfig:
    """The config as stored with the study: the preset, the objective's budget, rungs and
    pruner, the timeout and the mult-adds cap resolved, so that `nas status` and --resume
    read them back."""
    from workers.presets import PRESETS

    clock = settings.budget_seconds is not None
    changes: dict[str, Any] = {"preset": settings.preset, "timeout": settings.timeout,
                               "pruner": config.pruner or ("sha" if clock else "median"),
                               "max_mult_adds": config.max_mult_adds
                               or PRESETS[settings.preset].max_mult_adds}
    if clock:
        changes.update(budget_seconds=settings.budget_seconds, rung_seconds=settings.rung_seconds,
                       reduction_factor=settings.reduction_factor)
    return config.model_copy(update=changes)


def resolve_macro(config: SearchConfig, preset_macro: dict[str, tuple[int, ...]],
                  network: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """N, F, stem-stride and B (blocks per cell) choices: the config's, else the preset's,
    else the network's one value (B: the paper's 5); each value must be one the builder
    takes (exit 2 naming the flag otherwise)."""
    given = {"cells": config.cells_choices, "filters": config.filters_choices,
             "stem_stride": config.stem_stride_choices, "blocks": config.blocks_choices}
    macro = {}
    for name, values in given.items():
        flag = f"--{name.replace('_', '-')}-choices"
        if values is None and name in config.network:  # network: {filters: 48} fixes F
            values = (config.network[name],)
        default = NUM_BLOCKS if name == "blocks" else getattr(NetworkConfig(**network), name)
        choices = values or tuple(preset_macro.get(name, ())) or (default,)
        for value in choices:
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadInput(f"{flag} (config key {name}_choices): {value!r} is not an integer")
            if name == "blocks":
                if value not in BLOCK_CHOICES:
                    raise BadInput(f"{flag} (config key blocks_choices): {value} is refused: "
                                   f"a cell has 1 to {NUM_BLOCKS} blocks")
                continue
            try:
                NetworkConfig(**{**network, name: value}).validate()
            except ConfigError as exc:
                raise BadInput(f"{flag} (config key {name}_choices): {value} is refused by "
                               f"the builder: {exc}") from None
        macro[name] = tuple(choices)
    return macro


def network_macro(macro: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """The macro decisions that are `NetworkConfig` fields (B belongs to the genotype)."""
    return {name: values for name, values in macro.items() if name != "blocks"}


def _check_types(cls: type, values: dict[str, Any], what: str) -> None:
    """Each value has its field's type (a YAML `epochs: lots` is exit 2 naming the key)."""
    from pydantic import TypeAdapter, ValidationError

    known = {f.name for f in dataclasses.fields(cls)}
    if set(values) - known:
        return  # unknown keys get their own message
    try:
        TypeAdapter(cls).validate_python(values, strict=False)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise BadInput(f"{what}: {problems}") from None


def _local_gpu() -> bool:
    return _local_gpu_count() > 0


def _local_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def require_gpus(settings: Settings, gpus: float, where: str) -> None:
    """A gpu- preset or train.device cuda where there is no GPU is bad input (exit 2)."""
    from workers.presets import require_hardware
    from workers.train import TrainError

    try:
        require_hardware(settings.preset, settings.train, gpus, where)
    except TrainError as exc:
        raise BadInput(str(exc)) from None


def data_dir(config: SearchConfig) -> Path | None:
    value = config.data or os.environ.get("NAS_DATA_DIR")
    return Path(value) if value else None


def load_data(config: SearchConfig, settings: Settings) -> tuple[dict[str, Any], str]:
    """The train and validation splits every trial sees, and their fingerprint.

    The training subset (`train_images`, else the preset's `subset`) is drawn once here
    with the study seed, so all candidates are ranked on the same images; workers get a
    TrainConfig with `subset=None`.
    """
    from workers.data import DataError, load_cifar10, subset
    from workers.trial import to_arrays

    try:
        data = load_cifar10(data_dir(config))
    except DataError as exc:
        raise BadInput(str(exc)) from None
    train, val = data.train, data.val
    fingerprint = str(data.fingerprint)
    n_train = config.train_images or getattr(settings.train, "subset", None)
    if n_train is not None and n_train < len(train.labels):
        train = subset(train, n_train, seed=config.seed)
        fingerprint += f":train{n_train}@{config.seed}"
    if config.val_images is not None and config.val_images < len(val.labels):
        val = subset(val, config.val_images, seed=config.seed)
        fingerprint += f":val{config.val_images}@{config.seed}"
    return {"train": to_arrays(train), "val": to_arrays(val)}, fingerprint


# -- the lock --------------------------------------------------------------------------------


# -- the driver ------------------------------------------------------------------------------


def _trained_keys(db: Database, search_id: int, network: dict[str, Any]) -> dict[str, Trial]:
    """Identities (cell key at N@F) this study already trained (not duplicates, not
    cost-pruned, not failed); a row from before N@F was stored is at the search's network."""
    out: dict[str, Trial] = {}
    for t in db.trials(search_id, ["COMPLETE", "PRUNED"]):
        if t.key is None or t.duplicate_of is not None:
            continue
        t = replace(t, cells=t.cells or network["cells"], filters=t.filters or network["filters"])
        if t.identity not in out and (t.state == "COMPLETE" or t.epochs > 0):
            out[t.identity] = t
    return out


def measure_search_formats(config: SearchConfig, settings: Settings, has_gpu: bool
                           ) -> SearchConfig:
    """The formats (channels_last, bf16) every candidate of a CPU search trains in, timed on
    this machine once per study and stored with it (a resumed study keeps them).

    Why once, not per candidate like the comparison: timing four formats costs seconds, a
    third of a 10 s first rung; and why timed, not pinned: the fastest format of a cell
    network differs between hosts (channels_last fp32 on an AMD EPYC, contiguous bf16 on a
    Xeon with AMX). The reference is NASNet-A at the middle of each searched macro range, at
    a trial's thread count. Formats the preset or `--train` fix are kept; on a GPU the
    trainer's own choice (both on) stands.
    """
    train = settings.train
    missing = [name for name in ("channels_last", "bf16") if getattr(train, name, False) is None]
    if has_gpu or not missing:
        return config
    import torch

    from search_spaces import get_arch
    from workers.throughput import torch_threads
    from workers.train import choose_formats

    network = {**settings.network,
               **{k: v[len(v) // 2] for k, v in network_macro(settings.macro).items()}}
    with torch_threads(max(1, int(settings.cpus))):
        model = get_arch("nasnet-a").build(**network)
        channels_last, bf16 = choose_formats(model, train, torch.device("cpu"),
                                             int(network.get("image_size", 32)))
    measured = {"channels_last": channels_last, "bf16": bf16}
    return config.model_copy(update={
        "train": {**config.train, **{name: measured[name] for name in missing}}})


def throughput_table(settings: Settings) -> Any:
    """The per-op latency table of this machine, when the pre-filter is on (else None)."""
    if settings.rung_seconds is None or settings.min_rung_images is None:
        return None
    from workers.throughput import LatencyTable

    return LatencyTable(threads=max(1, int(settings.cpus)),
                        channels_last=bool(getattr(settings.train, "channels_last", False)))


def _reconcile(db: Database, search: SearchRecord, controller: Controller,
               progress: Callable[[str], None]) -> None:
    """After a dead driver: finish in Optuna what our rows finished, re-queue the rest once."""
    ours = {t.number: t for t in db.trials(search.search_id)}
    requeued: set[int] = set()
    for frozen in controller.running():
        row = ours.get(frozen.number)
        if row is not None and row.state in ("COMPLETE", "PRUNED", "FAIL"):
            state = TrialState[row.state]
            controller.tell(frozen.number, state, row.values if row.state == "COMPLETE" else None,
                            reason=row.error)
            continue
        controller.requeue(frozen)
        requeued.add(frozen.number)
        if row is not None:
            db.finish_trial(search.search_id, Trial(
                frozen.number, "FAIL",
                error="driver died while the trial ran; its configuration was re-queued"))
        progress(f"trial {frozen.number:>4}  FAIL      left RUNNING by a dead driver; re-queued")
    for number, row in ours.items():  # rows the dead driver started but Optuna finished
        if row.state == "RUNNING" and number not in requeued:  # (`ours` predates the FAILs)
            state, values = controller.state_of(number)
            if state.is_finished():
                db.finish_trial(search.search_id, Trial(
                    number, state.name, values=values, val_accuracy=values[0] if values else None,
                    error=None if state == TrialState.COMPLETE else "driver died"))


def run_search(
    config: SearchConfig,
    storage: str,
    resume: bool = False,
    explicit: set[str] | frozenset[str] = frozenset(),
    progress: Callable[[str], None] = echo,
    live: bool = False,
) -> Summary:
    """Run (or resume) a search until the study holds `trials` finished trials.

    `explicit` names the options the user actually gave; on resume only those may
    override the stored config. Bad input raises BadInput before anything is written.
    `live`: show the trials running now when stderr is a terminal (plain lines otherwise).
    """
    import ray

    from nas.search import dispatch

    started = time.time()
    check_preset(config.preset)
    early = resolve_settings(config, has_gpu=_local_gpu())  # bad preset/keys: exit 2 now
    if config.ray_address is None:  # the local cluster will have this machine's GPUs
        require_gpus(early, _local_gpu_count(), "this machine")
    dispatch.probe_ray_address(config.ray_address)
    directory = data_dir(config)
    if directory is not None and not directory.is_dir():
        raise BadInput(f"--data {directory} is not a directory; point it at CIFAR-10")
    try:
        db = open_database(storage)
    except DatabaseError as exc:
        raise BadInput(str(exc)) from None
    try:
        existing = db.search(config.study)
        if existing is None and config.study in _optuna_studies(db):
            existing_optuna_only = True
        else:
            existing_optuna_only = False
        if (existing is not None or existing_optuna_only) and not resume:
            raise BadInput(
                f"study {config.study!r} already exists in {db.display_url}; add --resume to "
                f"continue it, or choose another --study"
            )
        if existing is not None:
            config = resume_config(existing.config, config, set(explicit))
            holder = lock_holder(existing)
            if holder is not None:
                raise BadInput(f"study {config.study!r} is being run by another driver "
                               f"({holder}); wait for it or stop it first")
        dashboard = dispatch.start_ray(config.ray_address)
        with sigterm_as_interrupt():  # from here on SIGTERM stops it like Ctrl-C
            has_gpu = dispatch.cluster_gpus() > 0
            settings = resolve_settings(config, has_gpu=has_gpu)
            config = objective_config(config, settings)
            config = measure_search_formats(config, settings, has_gpu)
            settings = resolve_settings(config, has_gpu=has_gpu)
            require_gpus(settings, dispatch.cluster_gpus(), "the Ray cluster")
            missing = dispatch.unmet_trial_resources(settings.cpus, settings.gpus)
            if missing is not None and config.ray_address is None:
                raise BadInput(f"no node of this Ray cluster can run a trial: {missing}")
            if missing is not None:  # a cluster that may grow (autoscaler, nodes still joining)
                progress(f"no node can run a trial yet ({missing}); waiting for the cluster to "
                         "grow" + (f", at most {config.timeout:g}s (--timeout)" if config.timeout
                                   else "; --timeout bounds the wait"))
            data, fingerprint = load_data(config, settings)
            token = uuid.uuid4().hex
            if existing is None:
                try:
                    search = db.create_search(
                        config.study, config.to_dict(), config.seed, package_version(), fingerprint,
                        token, host_name(), os.getpid(),
                    )
                except StudyExists:
                    raise BadInput(f"study {config.study!r} was just created by another driver; "
                                   "use --resume to join after it stops") from None
            else:
                if not db.acquire(existing, token, host_name(), os.getpid()):
                    raise BadInput(f"study {config.study!r} was just taken by another driver")
                db.update_search(existing.search_id, config_json=config.to_dict(),
                                 package_version=package_version(), data_fingerprint=fingerprint)
                search = db.search(config.study)
                assert search is not None
            progress(f"study {config.study}: preset {settings.preset}, sampler {config.sampler}, "
                     f"{settings.trials} trials, database {db.display_url}")
            progress(f"objective: {objective_text(config.to_dict())}")
            if not has_gpu:
                progress(f"formats: channels_last {settings.train.channels_last}, bf16 "
                         f"{settings.train.bf16}")
            if dashboard:
                progress(f"Ray dashboard: {dashboard}")
            progress(metrics_line(dispatch.session_dir()))
            status = "failed"
            view = progress_view(live, progress,  # on the clock a step is seconds, not epochs
                                 None if settings.budget_seconds else settings.epochs)
            try:
                with view:
                    controller = Controller(db.url, config, settings.epochs, settings.macro)
                    _reconcile(db, search, controller, view.line)
                    driver = SearchDriver(db, search, controller, settings, config, token, view)
                    driver.run(ray.put(data), started)
                status = "finished"
            except KeyboardInterrupt:
                status = "interrupted"
                raise
            finally:
                db.release(search.search_id, token, status)
            return summarize(db, config.study, time.time() - started, dashboard)
    finally:
        db.close()


def _optuna_studies(db: Database) -> set[str]:
    import optuna

    storage = optuna.storages.RDBStorage(db.url)
    try:
        return {s.study_name for s in storage.get_all_studies()}
    finally:
        storage.remove_session()
        storage.engine.dispose()


class SearchDriver:
    """The one writer of a running search: asks the controller for trials, routes each one
    (FAIL, cost-PRUNED, duplicate, parked behind its running twin, or a Ray task), stores
    the epochs workers stream, writes results and tells Optuna.

    It owns the trials in flight, each a `Trial` record: `running` (Ray ref -> trial),
    `parked` (identity -> duplicates waiting for the trial of that identity to end) and
    `trained` (identity -> the trial whose result a later duplicate reuses); the identity
    is the cell's key at its N@F (`Trial.identity`).
    """

    def __init__(self, db: Database, search: SearchRecord, controller: Controller,
                 settings: Settings, config: SearchConfig, token: str, view: PlainView) -> None:
        self.db, self.search, self.controller = db, search, controller
        self.settings, self.config, self.token = settings, config, token
        self.view = view  # the live view on a terminal, plain lines elsewhere
        self.progress = view.line
        self.running: dict[Any, Trial] = {}
        self.parked: dict[str, list[Trial]] = {}
        self.trained = _trained_keys(db, search.search_id, settings.network)
        self.throughput = throughput_table(settings)  # a LatencyTable, or None: no pre-filter
        self.finished = controller.finished()  # COMPLETE + PRUNED, this run and before
        self.failures = 0  # FAIL in this run
        best = db.best_trial(search.search_id)
        self.best: tuple[float, int] | None = None  # (validation accuracy, trial)
        if best is not None and best.val_accuracy is not None:
            self.best = (best.val_accuracy, best.number)
            view.best = self.best  # a resumed study starts with its best
        self.broker: Any = None  # the EpochBroker actor while `run` runs
        self.data_ref: Any = None  # the study's data in Ray's object store, likewise
        self.deadline: float | None = None  # --timeout as a time.time(), while `run` runs
        self.cut: set[int] = set()  # trials stopped at a rung because the deadline was near

    def note_best(self, trial: Trial) -> None:
        if trial.state == "COMPLETE" and trial.val_accuracy is not None and (
            self.best is None or trial.val_accuracy > self.best[0]
        ):
            self.best = (trial.val_accuracy, trial.number)

    def objective_values(self, val_accuracy: float, params: int, mult_adds: int,
                         latency_ms: float | None) -> list[float]:
        extra = {"params": float(params), "mult_adds": float(mult_adds),
                 "latency": float(latency_ms if latency_ms is not None else float("inf"))}
        return [val_accuracy, *(extra[o] for o in self.config.objectives[1:])]

    def busy(self) -> int:
        """Trials this driver holds: on Ray or parked."""
        return len(self.running) + sum(len(v) for v in self.parked.values())

    def holds(self, number: int) -> bool:
        return any(t.number == number for t in self.running.values()) or any(
            t.number == number for waiting in self.parked.values() for t in waiting)

    def finish(self, trial: Trial) -> None:
        """Write our row, then tell Optuna, then count, print and update the metrics."""
        self.db.finish_trial(self.search.search_id, trial)
        faults.point("after-db-write")  # our row written, Optuna not yet told
        state = {"COMPLETE": TrialState.COMPLETE, "PRUNED": TrialState.PRUNED,
                 "FAIL": TrialState.FAIL}[trial.state]
        self.controller.tell(trial.number, state, trial.values, reason=trial.error)
        if trial.state in ("COMPLETE", "PRUNED"):
            self.finished += 1
        else:
            self.failures += 1
        self.note_best(trial)
        best = self.best[0] if self.best else None
        self.view.finish(trial.number, self.best)
        note = trial.error
        if trial.duplicate_of is not None:
            note = f"duplicate of trial {trial.duplicate_of}"
        self.progress(progress_line(
            trial.number, trial.state, trial.val_accuracy, trial.params, trial.mult_adds,
            trial.duration_s, best, self.best[1] if self.best else None, note,
        ))
        faults.point("between-trials")

    def run(self, data_ref: Any, started: float) -> None:
        """Keep the cluster busy until the study holds N finished trials."""
        import ray

        from nas.search import dispatch

        settings, config, db = self.settings, self.config, self.db
        search_id = self.search.search_id
        self.data_ref = data_ref
        self.broker = dispatch.EpochBroker.remote(config.study)
        capacity = max(1, int(dispatch.cluster_cpus() // settings.cpus))
        if settings.gpus > 0:
            capacity = min(capacity, max(1, int(dispatch.cluster_gpus() // settings.gpus)))
        deadline = self.deadline = started + config.timeout if config.timeout else None
        failure_limit = settings.trials + 3
        last_beat = time.time()
        started_with = self.finished + self.failures
        try:
            while True:
                out_of_time = deadline is not None and time.time() > deadline
                if time.time() - last_beat > HEARTBEAT_S:
                    if not db.heartbeat(search_id, self.token):
                        raise SearchFailed(f"study {config.study!r}: another driver took the lock")
                    last_beat = time.time()
                    unmet = dispatch.unmet_trial_resources(settings.cpus, settings.gpus)
                    if out_of_time and self.running and unmet is not None:
                        raise SearchFailed(f"--timeout reached while no node could run a trial "
                                           f"({unmet})")
                too_many_failures = self.failures >= failure_limit
                while (not out_of_time and not too_many_failures
                       and len(self.running) < capacity
                       and self.finished + self.busy() < settings.trials):
                    self.dispatch_one()
                if not self.running and not self.parked:
                    unmet = dispatch.unmet_trial_resources(settings.cpus, settings.gpus) \
                        if out_of_time and self.finished + self.failures == started_with else None
                    if unmet is not None:  # out of time before a trial could even be sent
                        raise SearchFailed(f"--timeout reached while no node could run a trial "
                                           f"({unmet})")
                    break
                if self.parked and not self.running:  # cannot happen: a parked key always
                    raise SearchFailed(  # has its original running
                        "internal: duplicates wait for a trial that is not running")
                ready, _ = ray.wait(list(self.running), num_returns=len(self.running),
                                    timeout=POLL_S)
                self.serve_reports()
                for ref in ready:
                    trial = self.collect(self.running.pop(ref), ref)
                    self.finish(trial)
                    ray.get(self.broker.trial_finished.remote(
                        trial.state, self.best[0] if self.best else None))
                    key = trial.identity
                    if trial.state == "COMPLETE" or (trial.state == "PRUNED" and trial.epochs):
                        self.trained[key] = trial
                    waiting = self.parked.pop(key, [])
                    if waiting and key not in self.trained:  # the original failed: the first
                        heir = waiting.pop(0)  # duplicate trains the key, the rest wait on it
                        db.start_trial(search_id, heir, db.upsert_architecture(
                            heir.key, heir.genotype, heir.params, heir.mult_adds, None))
                        self.start(heir)
                        if waiting:
                            self.parked[key] = waiting
                        waiting = []
                    for duplicate in waiting:
                        self.resolve_duplicate(duplicate, self.trained[key])
                if too_many_failures and not self.running and not self.parked:
                    raise SearchFailed(
                        f"{self.failures} trials failed in this run; see `nas leaderboard "
                        f"--study {config.study}` and the error column of the trials"
                    )
        except BaseException as exc:
            reason = stop_reason(exc)
            for ref, trial in list(self.running.items()):
                ray.cancel(ref, force=True)
                self.fail_quietly(trial, reason)
            for waiting in self.parked.values():
                for trial in waiting:
                    self.fail_quietly(trial, reason)
            raise
        finally:
            ray.kill(self.broker)
        if self.failures >= failure_limit and self.finished < settings.trials:
            raise SearchFailed(f"{self.failures} trials failed in this run")

    def start(self, trial: Trial) -> None:
        """Send a costed trial to Ray as its own named task."""
        from nas.search import dispatch
        from workers.trial import TrialSpec

        settings, config = self.settings, self.config
        spec = TrialSpec(
            study=config.study, number=trial.number, genotype=trial.genotype,
            network=self.network_of(trial),
            train=for_trial(settings.train, trial.seed, settings.cpus),
            seed=trial.seed, threads=max(1, int(settings.cpus)),
            measure_latency="latency" in config.objectives,
        )
        ref = dispatch.submit_trial(spec, self.data_ref, self.broker, settings.cpus,
                                    settings.gpus, config.max_retries)
        self.running[ref] = replace(trial, started_at=datetime.now(UTC))
        self.view.start(trial.number)

    def network_of(self, trial: Trial) -> dict[str, Any]:
        """The search's network settings at the trial's N@F."""
        size = {"cells": trial.cells, "filters": trial.filters, "stem_stride": trial.stem_stride}
        return {**self.settings.network, **{k: v for k, v in size.items() if v is not None}}

    def resolve_duplicate(self, trial: Trial, original: Trial) -> None:
        """End a duplicate with the result of the trial that trained its key."""
        self.finish(replace(
            trial, state=original.state,
            values=original.values if original.state == "COMPLETE" else None,
            val_accuracy=original.val_accuracy, duration_s=0.0, duplicate_of=original.number,
        ))

    def fail_quietly(self, trial: Trial, reason: str) -> None:
        """Mark a trial FAIL while stopping; a database error must not hide the first error."""
        with contextlib.suppress(Exception):
            self.finish(replace(trial, state="FAIL", error=reason))

    def dispatch_one(self) -> None:
        """Ask one trial and route it: cost-pruned, duplicate, parked, or a new Ray task."""
        trial = self.controller.ask()
        try:
            self.route(trial)
        except BaseException as exc:  # Ctrl-C, SIGTERM or an error while it was being routed
            if not self.holds(trial.number):
                self.abandon(trial, stop_reason(exc))
            raise

    def abandon(self, trial: Trial, reason: str) -> None:
        """FAIL an asked trial that never reached Ray, in our table and in Optuna, so that no
        exit path leaves it RUNNING; errors are suppressed so the first error is the one shown."""
        search_id = self.search.search_id
        with contextlib.suppress(Exception):
            row = self.db.trial(search_id, trial.number)
            if row is None:
                self.db.start_trial(search_id, trial, None)
            if row is None or row.state == "RUNNING":
                self.db.finish_trial(search_id, replace(trial, state="FAIL", error=reason,
                                                        duration_s=0.0))
        with contextlib.suppress(Exception):
            self.controller.tell(trial.number, TrialState.FAIL, reason=reason)

    def route(self, trial: Trial) -> None:
        """Cost-check an asked trial and send it on: FAIL, PRUNED, duplicate, parked or Ray."""
        db, config = self.db, self.config
        search_id = self.search.search_id
        faults.point("dispatch")  # asked (RUNNING in Optuna), not yet in our table nor on Ray
        network = self.network_of(trial)
        try:
            cost = network_cost(Genotype.from_dict(trial.genotype), network)
        except (GenotypeError, ConfigError, RuntimeError, ValueError) as exc:
            db.start_trial(search_id, trial, None)
            self.finish(replace(trial, state="FAIL", error=f"cannot build the network: {exc}",
                                duration_s=0.0))
            return
        trial = replace(trial, params=cost.params, mult_adds=cost.mult_adds)
        arch_id = db.upsert_architecture(trial.key, trial.genotype, cost.params,
                                         cost.mult_adds, network)
        db.start_trial(search_id, trial, arch_id)
        violation = cost_violation(cost, config)
        if violation is not None:
            self.finish(replace(trial, state="PRUNED", error=violation, duration_s=0.0))
            return
        original = self.trained.get(trial.identity)
        if original is not None:
            self.resolve_duplicate(trial, original)
            return
        if any(t.identity == trial.identity for t in self.running.values()):
            self.parked.setdefault(trial.identity, []).append(trial)
            return
        trial, slow = self.estimate(trial, network)
        if slow is not None:
            self.finish(replace(trial, state="PRUNED", error=slow, duration_s=0.0))
            return
        self.start(trial)

    def estimate(self, trial: Trial, network: dict[str, Any]) -> tuple[Trial, str | None]:
        """The throughput pre-filter: the trial with its estimated training img/s on this
        machine, and why it cannot train the preset's images in its first rung (or None)."""
        from workers.throughput import rung_shortfall

        settings = self.settings
        if self.throughput is None or settings.rung_seconds is None or \
                settings.min_rung_images is None:
            return trial, None
        estimate = self.throughput.estimate(Genotype.from_dict(trial.genotype), network,
                                            int(getattr(settings.train, "batch_size", 64)))
        trial = replace(trial, est_images_per_s=estimate.images_per_s)
        return trial, rung_shortfall(estimate.images_per_s, settings.rung_seconds,
                                     settings.min_rung_images, settings.preset)

    def serve_reports(self) -> None:
        """Store streamed epochs, ask the pruner, and send the answers back to the workers."""
        import ray

        reports = ray.get(self.broker.drain.remote())
        if not reports:
            return
        running = {t.number for t in self.running.values()}
        answers = []
        for report_id, number, row in reports:
            prune = False
            if number in running:
                row = _as_step(row)
                self.db.add_epochs(self.search.search_id, number, [row])
                self.view.update(number, row["epoch"], row.get("val_accuracy"))
                if _finite(row.get("val_accuracy")):
                    prune = self.controller.report(number, row["epoch"],
                                                   float(row["val_accuracy"]))
                if not prune and self.no_time_for_next_rung(row["epoch"]):
                    prune = True
                    self.cut.add(number)
            answers.append((report_id, prune))
        self.broker.answer.remote(answers)

    def no_time_for_next_rung(self, at: int) -> bool:
        """On the clock, --timeout bounds the whole search: a trial whose next rung would
        end after the deadline stops at this one (PRUNED, with that reason)."""
        later = [r for r in self.settings.train.report_at if r > at]  # () off the clock
        return bool(later) and self.deadline is not None and \
            time.time() + later[0] - at > self.deadline

    def collect(self, trial: Trial, ref: Any) -> Trial:
        """The finished trial from its worker's result dict (or from why there is none):
        the one place where a worker's result becomes the record."""
        import ray

        from nas.search import dispatch

        duration = (datetime.now(UTC) - trial.started_at).total_seconds()
        try:
            result = ray.get(ref)
        except Exception as exc:  # every Ray error is the FAIL reason
            return replace(trial, state="FAIL", error=dispatch.task_error(exc),
                           duration_s=duration)
        rows = tuple(_as_step(row) for row in result.get("epochs") or [])
        values = None
        if result["status"] == "complete":
            state, error = "COMPLETE", None
            values = self.objective_values(result["val_accuracy"], trial.params,
                                           trial.mult_adds, result.get("latency_ms"))
        elif result["status"] == "pruned":
            state = "PRUNED"
            last = rows[-1]["epoch"] if rows else 0
            at = f"{last} s of training" if self.settings.budget_seconds else f"epoch {last}"
            error = (f"stopped after {at}: --timeout {self.config.timeout:g} s came before "
                     f"its next rung" if trial.number in self.cut
                     else f"pruned by the {self.config.pruner} pruner after {at}")
        else:
            state, error = "FAIL", result.get("error") or "unknown worker error"
        return replace(
            trial, state=state, values=values, error=error, duration_s=duration,
            val_accuracy=result.get("val_accuracy"), latency_ms=result.get("latency_ms"),
            train_seconds=result.get("train_seconds"), fit_seconds=result.get("fit_seconds"),
            worker_node=result.get("node"), device=result.get("device"),
            epochs=len(rows), epoch_rows=rows,
        )


def for_trial(train: Any, seed: int, cpus: float) -> Any:
    """The TrainConfig a worker gets: the trial's seed, threads = reserved CPUs, and no
    subset (the driver already shipped the study's subset)."""
    is_dc = dataclasses.is_dataclass(train)
    fields = {f.name for f in dataclasses.fields(train)} if is_dc else set()
    changes: dict[str, Any] = {}
    if "seed" in fields:
        changes["seed"] = seed
    if "threads" in fields:
        changes["threads"] = max(1, int(cpus))
    if "subset" in fields:
        changes["subset"] = None
    return dataclasses.replace(train, **changes) if changes else train


def _as_step(row: dict[str, Any]) -> dict[str, Any]:
    """A report as stored and told to Optuna: its step is the epoch, or on the clock the
    whole seconds of training at its rung (the epochs table's `epoch` column holds it)."""
    at = row.get("at_seconds")
    return {**row, "epoch": int(at) if at is not None else int(row.get("epoch") or 0)}


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(float(value))


def summarize(db: Database, study: str, elapsed_s: float, dashboard: str | None) -> Summary:
    search = db.search(study)
    if search is None:
        raise BadInput(f"no study {study!r} in {db.display_url}")
    states = db.state_counts(search.search_id)
    best = db.best_trial(search.search_id)
    return Summary(
        study=study,
        trials=states.get("COMPLETE", 0) + states.get("PRUNED", 0),
        best=None if best is None else {
            "trial": best.number, "val_accuracy": best.val_accuracy, "params": best.params,
            "mult_adds": best.mult_adds, "key": best.key, "genotype": best.genotype,
        },
        states=states, elapsed_s=round(elapsed_s, 1), dashboard_url=dashboard,
        storage=db.display_url,
    )
