"""Wait for the database server before a driver starts.

Containers and pods start in any order and a database restarts now and then: a driver that
gives up on the first refused connection fails for nothing, one that waits forever hides a
real misconfiguration. So: bounded attempts with a doubling delay, then one clear message.
Which errors are permanent, and the doubling, are the package's one retry policy
(nas.db.retry); only the budget differs: attempts here, NAS_DB_RETRY_S seconds there.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from nas.db.retry import backoff, permanent
from nas.db.urls import normalize_url, redact, scrub
from nas.errors import BadInput

MAX_DELAY_S = 30.0  # the longest single wait between two attempts


class DatabaseUnavailable(Exception):
    """The server did not accept a connection in the attempts given (message: no password)."""


def _first_line(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return scrub(lines[0]) if lines else type(orig).__name__


def wait_for_database(
    url: str,
    attempts: int = 10,
    delay: float = 1.0,
    max_delay: float = MAX_DELAY_S,
    connect_timeout: int = 5,
    log: Callable[[str], None] | None = None,
) -> int:
    """Connect and run `SELECT 1` until it works; return the attempt that succeeded.

    SQLite has no server to wait for: returns 0 without touching the file. A wrong password
    or an unknown database/role raises BadInput at once; running out of attempts raises
    DatabaseUnavailable naming the URL (password hidden) and the last error.
    """
    url = normalize_url(url)
    shown = redact(url)  # the only form of the URL that is ever printed
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise BadInput(f"{shown} is not a database URL; use postgresql+psycopg://USER:"
                       "PASSWORD@HOST:5432/DB, with any @ : / in the password percent-encoded "
                       "(%40 %3A %2F)") from None
    if parsed.get_backend_name() == "sqlite":
        return 0
    try:
        engine = create_engine(url, poolclass=NullPool,
                               connect_args={"connect_timeout": connect_timeout})
    except (ArgumentError, ImportError, ValueError) as exc:
        raise BadInput(f"cannot use database {shown}: {scrub(str(exc))}") from None
    waits = list(itertools.islice(backoff(delay, max_delay), max(attempts - 1, 0)))
    started = time.monotonic()
    last = ""
    try:
        for attempt in range(1, attempts + 1):
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                if log is not None and attempt > 1:
                    log(f"database {shown} is ready (attempt {attempt})")
                return attempt
            except SQLAlchemyError as exc:
                last = _first_line(exc)
                if permanent(exc):
                    raise BadInput(f"database {shown} refused us: {last}; fix the URL, user, "
                                   "password or database name (NAS_STORAGE / --storage)") from None
            engine.dispose()
            if attempt < attempts:
                if log is not None:
                    log(f"database {shown} not ready (attempt {attempt}/{attempts}: {last}); "
                        f"retrying in {waits[attempt - 1]:g}s")
                time.sleep(waits[attempt - 1])
    finally:
        engine.dispose()
    raise DatabaseUnavailable(
        f"database {shown} did not accept connections after {attempts} attempts in "
        f"{time.monotonic() - started:.0f}s (last error: {last}); check that the server is "
        "running and reachable from here"
    )
