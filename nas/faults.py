"""Fault injection for the reliability suite (tests/faults), off unless an env var says so.

Why in the product: "kill the driver during a database write" cannot be timed from outside
the process, so the driver calls `point(name)` where such faults matter and the suite sets
`NAS_FAULT_KILL=name[:n]` to have the n-th arrival there SIGKILL the process, exactly as
the kernel's OOM killer or a lost node would. `NAS_FAULT_STUB_TRAIN=SECONDS` replaces a
trial's training (not its build, data hand-off, dispatch or bookkeeping) with a sleep, for
load tests. Both are read from the environment of the process concerned; unset, each costs
one dictionary lookup.
"""

from __future__ import annotations

import hashlib
import os
import signal

KILL_ENV = "NAS_FAULT_KILL"
STUB_ENV = "NAS_FAULT_STUB_TRAIN"
POINTS = ("dispatch", "db-write", "between-trials")  # where the driver may be killed

_arrivals: dict[str, int] = {}


def point(name: str) -> None:
    """SIGKILL this process on the n-th arrival at `name` when NAS_FAULT_KILL=name[:n]."""
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    target, _, count = wanted.partition(":")
    if target != name:
        return
    _arrivals[name] = _arrivals.get(name, 0) + 1
    if _arrivals[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def stub_seconds() -> float | None:
    """The sleep that replaces training when NAS_FAULT_STUB_TRAIN is set, else None."""
    value = os.environ.get(STUB_ENV)
    return float(value) if value else None


def stub_accuracy(key: str) -> float:
    """A stable pseudo-accuracy in [0.3, 0.7) for a genotype key: the sampler still has a
    signal to follow, and the same cell always scores the same."""
    digest = hashlib.sha256(key.encode()).digest()
    return 0.3 + 0.4 * int.from_bytes(digest[:4], "big") / 2**32
