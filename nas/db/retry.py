"""The one retry policy of the package: which database errors are worth waiting out, the
back-off between attempts, and the decorator that applies both to every unit of work.

Why whole calls: a transaction that failed half-way was rolled back by the server, so the
safe repair is to run the whole unit again (one `Database` method, one Optuna call) after
a pause — not to resume inside it. A commit whose acknowledgement was lost did land, so
every retried write must be safe to repeat (docs/reliability.md, "idempotent writes").
The pauses double from 0.5 s to 8 s and stop after NAS_DB_RETRY_S seconds (default 120);
then the last error goes up as it would have without retrying. Errors that waiting cannot
change (a constraint, a missing table, bad SQL, a wrong password, a read-only database)
go up at once; `nas wait-db` stops at once on the same permanent errors. Nested retried
calls retry only at the outermost level.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from nas.db.urls import scrub

log = logging.getLogger("nas.db")
RETRY_ENV = "NAS_DB_RETRY_S"
DEFAULT_RETRY_S = 120.0
FIRST_WAIT_S, LONGEST_WAIT_S = 0.5, 8.0  # the back-off of retried calls
_TRANSIENT = (OperationalError, InterfaceError, DisconnectionError)
# A database that refuses writes: SQLite (file, directory or mode=ro) and PostgreSQL
# (default_transaction_read_only, a hot standby). Permanent: no retry helps.
_READ_ONLY_TEXT = ("attempt to write a readonly database", "read-only transaction",
                   "readonly database", "read-only file system", "unable to open database file")
# Server answers that waiting cannot change, though they arrive as OperationalError.
_PERMANENT_TEXT = ("password authentication failed", "no pg_hba.conf entry",
                   "does not exist",  # database "x" / role "x" / relation "x" does not exist
                   "no such table", "no such column", "syntax error", *_READ_ONLY_TEXT)
_RETRIED = "__nas_retried__"  # attribute set on every wrapper made by `retried`
_NO_RETRY = "__nas_no_retry__"  # attribute set by `no_retry`
_CLIENT_KEY = "__nas_client_key__"  # attribute set by `client_key`
_state = threading.local()

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors it was raised from (cause, else an unsuppressed context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or context


def permanent(exc: BaseException) -> bool:
    """True when the server's answer says waiting cannot help (wrong password, unknown
    database or table, bad SQL)."""
    return any(p in str(e).lower() for e in _chain(exc) for p in _PERMANENT_TEXT)


def read_only(exc: BaseException) -> bool:
    """True when the database refused a write because it is read-only (permanent)."""
    return any(p in str(e).lower() for e in _chain(exc) for p in _READ_ONLY_TEXT)


def transient(exc: BaseException) -> bool:
    """True when `exc`, or an error it was raised from, says the database was unreachable,
    dropped the connection or was busy (so the same call may succeed later).

    An error that states its own `transient` flag (our DatabaseError) is taken at its word:
    an error raised while handling a transient one (StudyExists) is not itself transient.
    """
    if permanent(exc):
        return False
    for current in _chain(exc):
        flag = getattr(current, "transient", None)
        if flag is not None:
            return bool(flag)
        # The dialect recognised a lost connection (SQLite: "closed database").
        if isinstance(current, _TRANSIENT) or getattr(current, "connection_invalidated", False):
            return True
    return False


def retry_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(RETRY_ENV, DEFAULT_RETRY_S)))
    except ValueError:
        return DEFAULT_RETRY_S


def backoff(first: float, longest: float) -> Iterator[float]:
    """The waits between attempts: first, 2*first, 4*first, ... each at most `longest`."""
    return (min(first * 2**i, longest) for i in itertools.count())


def client_key(param: str) -> Callable[[F], F]:
    """Mark `param` as the call's client-made key: left None by the caller, it becomes one
    uuid4 before the first attempt, so every retried attempt writes the same key."""

    def mark(fn: F) -> F:
        setattr(fn, _CLIENT_KEY, param)
        return fn

    return mark


def no_retry(fn: F) -> F:
    """Opt a method out of `retry_public_methods` (it opens no transaction of its own)."""
    setattr(fn, _NO_RETRY, True)
    return fn


def is_retried(fn: Any) -> bool:
    return bool(getattr(fn, _RETRIED, False))


def is_opted_out(fn: Any) -> bool:
    return bool(getattr(fn, _NO_RETRY, False))


def retried(fn: F) -> F:
    """`fn` re-run on transient database errors, within the retry budget."""
    key = getattr(fn, _CLIENT_KEY, None)
    signature = inspect.signature(fn) if key else None

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if signature is not None:  # made once, here: every attempt below reuses it
            bound = signature.bind(*args, **kwargs)
            if bound.arguments.get(key) is None:
                bound.arguments[key] = str(uuid.uuid4())
            args, kwargs = bound.args, bound.kwargs
        if getattr(_state, "active", False):  # an outer call already retries
            return fn(*args, **kwargs)
        _state.active = True
        try:
            deadline = time.monotonic() + retry_seconds()
            waits = backoff(FIRST_WAIT_S, LONGEST_WAIT_S)
            while True:
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    wait = next(waits)
                    if not transient(exc) or time.monotonic() + wait > deadline:
                        raise
                    first = scrub((str(exc).strip().splitlines() or [type(exc).__name__])[0])
                    log.warning("database unavailable (%s): %s again in %.1f s",
                                first[:200], fn.__name__, wait)
                    time.sleep(wait)
        finally:
            _state.active = False

    setattr(wrapper, _RETRIED, True)
    return wrapper  # type: ignore[return-value]


def retry_public_methods(cls: C) -> C:
    """Class decorator: every public method of `cls` defined in its body is `retried`,
    unless marked `no_retry`, so a method added later cannot silently miss the policy."""
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(value) or is_opted_out(value):
            continue
        setattr(cls, name, retried(value))
    return cls


def retry_methods(cls: type, names: tuple[str, ...]) -> None:
    """Wrap the named methods of `cls` with `retried` (for classes that cannot use the
    class decorator, such as the controller's explicit list of Optuna calls)."""
    for name in names:
        setattr(cls, name, retried(getattr(cls, name)))
