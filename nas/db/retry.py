"""Ride out a database that is away for a while: a PostgreSQL restart, a connection the
server dropped, an SQLite writer that kept the lock past busy_timeout.

Why whole calls: a transaction that failed half-way was rolled back by the server, so the
safe repair is to run the whole unit again (one `Database` method, one Optuna call) after
a pause — not to resume inside it. The pauses double from 0.5 s to 8 s and stop after
NAS_DB_RETRY_S seconds (default 120); then the last error goes up as it would have
without retrying. Errors that waiting cannot change (a constraint, a missing table, bad
SQL) go up at once. Nested retried calls retry only at the outermost level.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

log = logging.getLogger("nas.db")
RETRY_ENV = "NAS_DB_RETRY_S"
DEFAULT_RETRY_S = 120.0
_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError)
_PERMANENT_TEXT = ("does not exist", "password authentication failed", "no such table",
                   "no such column", "syntax error")
_state = threading.local()

F = TypeVar("F", bound=Callable[..., Any])


def transient(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, says the database was unreachable
    or busy (so the same call may succeed later)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "transient", False):
            return True
        if isinstance(current, _TRANSIENT):
            text = str(current).lower()
            return not any(p in text for p in _PERMANENT_TEXT)
        current = current.__cause__ or current.__context__
    return False


def retry_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(RETRY_ENV, DEFAULT_RETRY_S)))
    except ValueError:
        return DEFAULT_RETRY_S


def retried(fn: F) -> F:
    """`fn` re-run on transient database errors, within the retry budget."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_state, "active", False):  # an outer call already retries
            return fn(*args, **kwargs)
        _state.active = True
        try:
            deadline = time.monotonic() + retry_seconds()
            wait = 0.5
            while True:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    if not transient(exc) or time.monotonic() + wait > deadline:
                        raise
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    log.warning("database unavailable (%s): %s again in %.1f s",
                                first[:200], fn.__name__, wait)
                    time.sleep(wait)
                    wait = min(2 * wait, 8.0)
        finally:
            _state.active = False

    return wrapper  # type: ignore[return-value]


def retry_methods(cls: type, names: tuple[str, ...]) -> None:
    """Wrap the named methods of `cls` with `retried` (one list, next to the class)."""
    for name in names:
        setattr(cls, name, retried(getattr(cls, name)))
