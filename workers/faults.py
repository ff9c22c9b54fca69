"""Fault injection for the reliability suite (tests/faults), off unless an env var says so.

Why in the product: "kill the driver during a database write" cannot be timed from outside
the process, so the driver calls `point(name)` where such faults matter and the suite sets
`NAS_FAULT_KILL=name[:n]` to have the n-th arrival there SIGKILL the process, exactly as
the kernel's OOM killer or a lost node would. `NAS_FAULT_STUB_TRAIN=SECONDS` replaces a
trial's training (not its build, data hand-off, dispatch or bookkeeping) with a sleep, for
load tests. `NAS_FAULT_OP_ERROR=CLASS[:TRIAL]` makes every operation module of that class
(e.g. SepConv) raise in forward, in every trial or in trial number TRIAL only, as a bug in
an operation would. `NAS_FAULT_INTERRUPT=name[:n]` raises KeyboardInterrupt there instead,
as a Ctrl-C that lands at that moment would. All are read from the
environment of the process concerned; unset, each costs one dictionary lookup.
"""

from __future__ import annotations

import hashlib
import os
import signal
from typing import Any

KILL_ENV = "NAS_FAULT_KILL"
STUB_ENV = "NAS_FAULT_STUB_TRAIN"
OP_ENV = "NAS_FAULT_OP_ERROR"
INTERRUPT_ENV = "NAS_FAULT_INTERRUPT"
# Where the driver may be killed: after an ask, inside the transaction that ends a trial,
# between that commit and Optuna's tell, and after a trial has fully ended.
POINTS = ("dispatch", "db-write", "after-db-write", "between-trials")

_arrivals: dict[str, int] = {}


def point(name: str) -> None:
    """On the n-th arrival at `name`: SIGKILL this process when NAS_FAULT_KILL=name[:n],
    raise KeyboardInterrupt when NAS_FAULT_INTERRUPT=name[:n]."""
    for env in (KILL_ENV, INTERRUPT_ENV):
        wanted = os.environ.get(env)
        if not wanted:
            continue
        target, _, count = wanted.partition(":")
        if target != name:
            continue
        key = f"{env}:{name}"
        _arrivals[key] = _arrivals.get(key, 0) + 1
        if _arrivals[key] == int(count or 1):
            if env == KILL_ENV:
                os.kill(os.getpid(), signal.SIGKILL)
            raise KeyboardInterrupt(f"injected at {name}")


def break_op(model: Any, trial: int) -> None:
    """Make the operations named by NAS_FAULT_OP_ERROR raise when the network runs."""
    wanted = os.environ.get(OP_ENV)
    if not wanted:
        return
    name, _, number = wanted.partition(":")
    if number and int(number) != trial:
        return

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"injected fault in operation {name}")

    for module in model.modules():
        if type(module).__name__ == name:
            module.forward = broken


def stub_seconds() -> float | None:
    """The sleep that replaces training when NAS_FAULT_STUB_TRAIN is set, else None."""
    value = os.environ.get(STUB_ENV)
    return float(value) if value else None


def stub_accuracy(key: str) -> float:
    """A stable pseudo-accuracy in [0.3, 0.7) for a genotype key: the sampler still has a
    signal to follow, and the same cell always scores the same."""
    digest = hashlib.sha256(key.encode()).digest()
    return 0.3 + 0.4 * int.from_bytes(digest[:4], "big") / 2**32
