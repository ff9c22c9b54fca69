"""The search configuration: one typed, frozen model that CLI flags and config files map onto.

A config file (YAML or JSON) holds the same keys as the `nas search` flags, with `_` for
`-`; an unknown key or a wrong type is bad input (exit 2). The database URL is never part
of the config, so a password cannot end up stored with the search.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from nas.errors import MAX_SEED, BadInput

STUDY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")  # fullmatch: no trailing newline slips by
SAMPLERS = ("tpe", "random", "nsga2", "evolution")
OBJECTIVES = ("val_accuracy", "params", "mult_adds", "latency")
PRUNERS = ("none", "median", "sha", "hyperband")
MAX_BUDGET_S = 604_800.0  # --budget-seconds and --rung-seconds: at most a week of training
# What may change when a search is resumed: how it runs, not what it searches.
RUN_FIELDS = frozenset(
    {"trials", "timeout", "cpus_per_trial", "gpus_per_trial", "ray_address", "data",
     "max_retries", "progress"}
)

Sampler = Literal["tpe", "random", "nsga2", "evolution"]
Objective = Literal["val_accuracy", "params", "mult_adds", "latency"]
Pruner = Literal["none", "median", "sha", "hyperband"]


class SearchConfig(BaseModel):
    """Everything that defines a search and how it runs. Units in the comments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study: str = "search"  # study name: letters, digits, _ . -
    preset: str | None = None  # None: cpu-quick without a GPU, gpu-nasnet with one
    trials: StrictInt | None = Field(None, ge=1, le=1_000_000)  # finished trials to reach
    timeout: float | None = Field(None, gt=0, allow_inf_nan=False)  # seconds, then stop
    sampler: Sampler = "tpe"
    objectives: tuple[Objective, ...] = ("val_accuracy",)
    # None: sha on the clock, median otherwise; steps are epochs, or seconds on the clock
    pruner: Pruner | None = None
    # Seconds of training per candidate (the objective: val_accuracy after them); None: the
    # preset's time_budget, if any, else epochs
    budget_seconds: float | None = Field(None, gt=0, le=MAX_BUDGET_S, allow_inf_nan=False)
    rung_seconds: StrictInt | None = Field(None, ge=1, le=int(MAX_BUDGET_S))  # first rung
    reduction_factor: StrictInt | None = Field(None, ge=2, le=100)  # eta; None: the preset's
    max_params: StrictInt | None = Field(None, ge=1)  # parameters; larger ones are pruned
    max_mult_adds: StrictInt | None = Field(None, ge=1)  # multiply-accumulates per image
    gpus_per_trial: float | None = Field(None, ge=0, le=1024, allow_inf_nan=False)  # None: 1
    cpus_per_trial: float = Field(1.0, gt=0, le=4096, allow_inf_nan=False)  # Ray CPUs/trial
    ray_address: str | None = None  # None: start a local cluster with its dashboard
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED)  # study seed; trial seeds derive from it
    population: StrictInt = Field(16, ge=2, le=100_000)  # evolution: population size P
    tournament: StrictInt = Field(4, ge=1, le=100_000)  # evolution: tournament size S
    max_retries: StrictInt = Field(2, ge=0, le=100)  # re-runs of a trial whose worker died
    train_images: StrictInt | None = Field(None, ge=1, le=45_000)  # of the 45k training split
    val_images: StrictInt | None = Field(None, ge=1, le=5_000)  # of the 5k validation split
    # Searched N (normal cells per stack), F (filters) and CIFAR stem stride beside the cell;
    # None: the preset's `macro` range, else the network's one value. "1,2" or [1, 2].
    cells_choices: tuple[StrictInt, ...] | None = None
    filters_choices: tuple[StrictInt, ...] | None = None
    stem_stride_choices: tuple[StrictInt, ...] | None = None
    blocks_choices: tuple[StrictInt, ...] | None = None  # searched B (blocks per cell), 1..5
    # The throughput pre-filter's floor: images a candidate must train in its first rung
    # (None: the preset's `min_rung_images`).
    min_rung_images: StrictInt | None = Field(None, ge=1, le=100_000_000)
    network: dict[str, Any] = Field(default_factory=dict)  # NetworkConfig fields over the preset
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields over the preset
    data: str | None = None  # CIFAR-10 directory; None: env NAS_DATA_DIR
    progress: bool = True  # one line per finished trial on stderr

    @field_validator("study")
    @classmethod
    def _study_name(cls, value: str) -> str:
        if not STUDY_NAME.fullmatch(value):
            raise ValueError(
                f"study name {value!r} may only hold letters, digits, '_', '.' and '-' "
                "(at most 128)"
            )
        return value

    @field_validator("objectives", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("cells_choices", "filters_choices", "stem_stride_choices", "blocks_choices",
                     mode="before")
    @classmethod
    def _int_list(cls, value: Any) -> Any:
        """A flag's "24,32,48" as integers; anything that is not one stays, to be refused."""
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(int(v) if re.fullmatch(r"[+-]?\d{1,12}", v) else v for v in items)
        return value

    @field_validator("cells_choices", "filters_choices", "stem_stride_choices", "blocks_choices")
    @classmethod
    def _non_empty(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and not value:
            raise ValueError("give at least one value, e.g. 1,2")
        return None if value is None else tuple(dict.fromkeys(value))  # repeats dropped

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or value[0] != "val_accuracy":
            raise ValueError("the first objective must be val_accuracy, e.g. val_accuracy,params")
        if len(set(value)) != len(value):
            raise ValueError("an objective is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        if self.tournament > self.population:
            raise ValueError(
                f"tournament {self.tournament} is larger than population {self.population}"
            )
        return self

    @property
    def directions(self) -> list[str]:
        """Optuna directions: maximise accuracy, minimise every cost objective."""
        return ["maximize" if o == "val_accuracy" else "minimize" for o in self.objectives]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _one_line(exc: ValidationError, flags: bool = False) -> str:
    """pydantic's report as one line: where (the flag, for `flags`) and what, per problem."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        if flags and len(err["loc"]) == 1:
            where = f"--{where.replace('_', '-')}"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = ", ".join(SearchConfig.model_fields)
            message = f"unknown key (known keys: {known})"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


class DuplicateKey(ValueError):
    """A mapping that gives one key twice (YAML and JSON would silently keep the last)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKey(repr(key))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise DuplicateKey(repr(key))
    return dict(pairs)


MAX_CONFIG_BYTES = 1_000_000  # a config is a few hundred bytes; refuse to parse anything huge


def read_config_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping; `-` in keys becomes `_` so files may use the flag spelling."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise BadInput(f"config file {path} is {size:,} bytes; a config file is at most "
                           f"{MAX_CONFIG_BYTES:,}")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read config file {path}: {exc}") from None
    try:
        data = (json.loads(text, object_pairs_hook=_unique_keys) if Path(path).suffix == ".json"
                else yaml.load(text, Loader=_UniqueKeyLoader))
    except DuplicateKey as exc:
        raise BadInput(f"config file {path}: key {exc} is given twice; keep one") from None
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise BadInput(f"config file {path} is not valid YAML/JSON: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadInput(f"config file {path} must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def make_config(file: Path | None = None, **flags: Any) -> SearchConfig:
    """The config from a file (if any) with CLI flags on top; flags left unset are None."""
    data = read_config_file(file) if file is not None else {}
    data.update({k: v for k, v in flags.items() if v is not None})
    try:
        return SearchConfig(**data)
    except ValidationError as exc:
        source = f"config file {file}" if file is not None else "search options"
        raise BadInput(f"{source}: {_one_line(exc, flags=file is None)}") from None


def resume_config(stored: dict[str, Any], given: SearchConfig, explicit: set[str]) -> SearchConfig:
    """The stored config of a study being resumed, with the run fields the user gave.

    A search-defining field (sampler, objectives, preset, seed, ...) given with a different
    value is refused: the study's history was produced under the stored one.
    """
    merged = dict(stored)
    for name in explicit:
        value = getattr(given, name)
        old = stored.get(name)
        if name in RUN_FIELDS:
            merged[name] = value
        elif _jsonable(value) != old and name != "study":
            raise BadInput(
                f"study {given.study!r} was created with {name}={old!r}; drop that option to "
                f"resume it, or start a new study with --study"
            )
    try:
        return SearchConfig(**merged)
    except ValidationError as exc:
        raise BadInput(f"stored config of study {given.study!r}: {_one_line(exc)}") from None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, tuple | list | dict) else value


def clock_rungs(first: float, factor: int, budget: float) -> tuple[float, ...]:
    """The seconds of training at which a candidate on the clock is scored: first,
    first*factor, ... below the budget, then the budget itself (the top rung)."""
    rungs: list[float] = []
    rung = float(first)
    while rung < budget:
        rungs.append(rung)
        rung *= factor
    return (*rungs, float(budget))


def objective_text(config: Mapping[str, Any]) -> str:
    """What a stored study ranks by, for `nas status`: the clock budget and its rungs."""
    budget = config.get("budget_seconds")
    if budget is None:
        return f"val_accuracy after the epochs of preset {config.get('preset') or 'default'}"
    rungs = clock_rungs(config.get("rung_seconds") or budget, config.get("reduction_factor") or 3,
                        budget)
    return (f"val_accuracy after {budget:g} s of training; rungs "
            f"{'/'.join(f'{r:g}' for r in rungs)} s ({config.get('pruner') or 'sha'} pruner)")
