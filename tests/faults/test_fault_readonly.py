"""Commands that only read never write, and a read-only database is a permanent error
(issue 17, classes 3 and 6; guarantees "reading writes nothing" and "a read-only database
fails at once" of docs/reliability.md).

Real databases on SQLite and PostgreSQL (`db_url`) are put into the states a user may point
a read command at: empty, another application's, another application's `alembic_version`,
a nas database from a newer nas, and one from an older nas. Every read command is run on
each; the table list, every table's row count and (SQLite) the file's bytes are compared
before and after. Then databases that refuse writes (SQLite `mode=ro`, an immutable file
or directory, PostgreSQL `default_transaction_read_only`) are opened by writing commands:
one line, exit 2, in seconds rather than the 120 s retry budget, while reading them still
works.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from faultkit import record
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from nas.cli import main
from nas.db import DatabaseError, open_database
from nas.db.retry import transient
from nas.db.store import MIGRATIONS, VERSION_TABLE

# Every command that only reads, with the arguments that make it read the database.
READ_COMMANDS = [
    ["status"], ["leaderboard"], ["compare"], ["show", "x:1"], ["inspect", "x:1"],
    ["export", "x:1", "--out", "{tmp}/export"], ["train", "x:1", "--out", "{tmp}/ckpt"],
]


def _engine(url: str) -> Any:
    return create_engine(url.replace("file:", "").split("?")[0] if "mode=ro" in url else url)


def _execute(url: str, *statements: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as c:
            for statement in statements:
                c.execute(text(statement))
    finally:
        engine.dispose()


def _nas_at(url: str, revision: str) -> None:
    """A real nas database whose schema stops at `revision` (an older nas wrote it)."""
    engine = _engine(url)
    try:
        with engine.begin() as c:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = c
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _newer(url: str) -> None:
    open_database(url).close()
    _execute(url, f"UPDATE {VERSION_TABLE} SET version_num = '9999_from_the_future'")


def _empty(url: str) -> None:
    file = _sqlite_file(url)
    if file is not None:
        file.touch()  # an empty file: what `touch nas.db` or a failed copy leaves


# (state, how to make it, what a read command must say)
STATES: list[tuple[str, Callable[[str], None], str]] = [
    ("empty", _empty, "no nas database at"),
    ("foreign", lambda u: _execute(u, "CREATE TABLE customers (id INTEGER PRIMARY KEY)",
                                   "INSERT INTO customers VALUES (1)"), "is not a nas database"),
    ("foreign-alembic", lambda u: _execute(
        u, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
        "INSERT INTO alembic_version VALUES ('ae1027a6acf')",
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY)"), "is not a nas database"),
    ("newer-nas", _newer, "a newer nas wrote it"),
    ("older-nas", lambda u: _nas_at(u, "0002"), "run `nas search` (or any writing command)"),
]


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)  # sqlite:///file:X?mode=ro&uri=true names X too
    if parsed.get_backend_name() != "sqlite":
        return None
    return Path(parsed.database.removeprefix("file:"))


def snapshot(url: str) -> dict[str, Any]:
    """What a write would change: tables, their row counts, and the SQLite file's bytes."""
    file = _sqlite_file(url)
    state: dict[str, Any] = {}
    if file is not None:
        state["file"] = hashlib.sha256(file.read_bytes()).hexdigest() if file.exists() else None
    # SQLite: read as immutable, which creates no -wal/-shm (and works in a read-only dir)
    engine = _engine(url) if file is None else create_engine(
        f"sqlite:///file:{file}?immutable=1&uri=true")
    try:
        with engine.connect() as c:
            for table in sorted(inspect(c).get_table_names()):
                state[table] = c.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar()
    finally:
        engine.dispose()
    return state


@pytest.mark.parametrize(("state", "make", "says"), STATES, ids=[s[0] for s in STATES])
def test_read_commands_write_nothing(
    state: str, make: Callable[[str], None], says: str, db_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make(db_url)
    before = snapshot(db_url)
    for words in READ_COMMANDS:
        args = [w.format(tmp=tmp_path) for w in words]
        code = main([*args, "--storage", db_url])
        _, err = capsys.readouterr()
        assert code == 2, f"nas {args[0]} on a {state} database: {err}"
        assert err.count("\n") == 1 and says in err, f"nas {args[0]}: {err}"
        assert snapshot(db_url) == before, f"nas {args[0]} wrote to a {state} database"
    assert not (tmp_path / "export").exists() and not (tmp_path / "ckpt").exists()
    record(f"readonly-{state}-{make_url(db_url).get_backend_name()}",
           {"commands": len(READ_COMMANDS), "tables": len(before) - ("file" in before),
            "changed": 0})


def test_missing_sqlite_file_is_not_created(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    for words in READ_COMMANDS:
        assert main([*(w.format(tmp=tmp_path) for w in words), "--storage", url]) == 2
        assert "no nas database at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no file, no .lock, no -wal


@pytest.mark.parametrize("state", ["foreign-alembic", "newer-nas"])
def test_writing_commands_refuse_what_is_not_ours(
    state: str, db_url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """A writing command migrates its own database, never someone else's or a newer one."""
    make = next(m for s, m, _ in STATES if s == state)
    make(db_url)
    before = snapshot(db_url)
    with pytest.raises(DatabaseError, match=r"not a nas database|a newer nas wrote it"):
        open_database(db_url)
    assert main(["search", "--storage", db_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("not a nas database" in err or "newer nas" in err), err
    assert snapshot(db_url) == before


@pytest.mark.parametrize("state", ["foreign", "older-nas"])
def test_a_writing_open_makes_it_readable(state: str, db_url: str) -> None:
    """What the refusals promise: a writing command adds nas's tables beside another
    application's (and leaves those alone), or upgrades an older nas schema."""
    make = next(m for s, m, _ in STATES if s == state)
    make(db_url)
    before = snapshot(db_url)
    open_database(db_url).close()
    after = snapshot(db_url)
    assert {k: v for k, v in after.items() if k in before and k != "file"} == {
        k: v for k, v in before.items() if k != "file"}
    assert {"searches", "models", "studies"} <= set(after)
    open_database(db_url, create=False).close()  # now a reading command reads it


def test_read_commands_read_a_current_database(db_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The check refuses only what it must: a database `nas search` wrote is read."""
    db = open_database(db_url)
    db.create_search("s1", {"sampler": "tpe"}, 7, "0.1.0", None, "tok", "host", 1)
    db.release(db.search("s1").search_id, "tok", "finished")
    db.close()
    before = snapshot(db_url)
    assert main(["status", "--storage", db_url, "--json"]) == 0
    assert '"study": "s1"' in capsys.readouterr().out
    assert snapshot(db_url) == before


# -- a read-only database is a permanent error (issue 17, class 6) ----------------------------


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@contextmanager
def read_only(how: str, db_url: str) -> Iterator[str]:
    """`db_url` made to refuse every write, the way `how` says; the URL to reach it.

    Tests run as root, which ignores permission bits, so the SQLite file (or its directory)
    is made immutable with chattr +i, which binds root too."""
    file = _sqlite_file(db_url)
    if how == "postgresql-read-only":
        name = make_url(db_url).database
        _execute(db_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        yield db_url
    elif how == "sqlite-mode-ro":
        yield f"sqlite:///file:{file}?mode=ro&uri=true"
    else:
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not available")
        target = [file] if how == "sqlite-immutable-file" else [file.parent]
        try:
            _chattr("+i", *target)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"chattr +i does not work here: {exc.stderr.strip()}")
        try:
            yield db_url
        finally:
            _chattr("-i", *target)


# (backend, how it refuses writes); `db_url` is made on that backend only.
READ_ONLY = [("sqlite", "sqlite-mode-ro"), ("sqlite", "sqlite-immutable-file"),
             ("sqlite", "sqlite-immutable-dir"),
             pytest.param("postgresql", "postgresql-read-only", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("schema", ["nas", "empty"])
@pytest.mark.parametrize(("db_url", "how"), READ_ONLY, indirect=["db_url"],
                         ids=["sqlite-mode-ro", "sqlite-immutable-file", "sqlite-immutable-dir",
                              "postgresql-read-only"])
def test_read_only_database_fails_at_once(
    how: str, schema: str, db_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NAS_DB_RETRY_S", "120")  # the default budget: must not be spent
    if schema == "nas":
        db = open_database(db_url)
        db.create_search("s1", {"sampler": "tpe"}, 7, "0.1.0", None, "tok", "host", 1)
        db.close()
    else:
        _empty(db_url)
    with read_only(how, db_url) as url:
        before = snapshot(url)
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="read-only") as refused:
            open_database(url)  # a writing open probes that writes are taken
        assert not refused.value.transient
        assert main(["search", "--storage", url]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "read-only" in err, err
        if schema == "nas" and how == "sqlite-immutable-dir":
            # SQLite cannot read a WAL database without creating FILE-shm beside it
            assert main(["status", "--storage", url]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "read-only" in err, err
        elif schema == "nas":
            # reading still works, and a write through a reading handle is not retried
            assert main(["status", "--storage", url, "--json"]) == 0
            assert '"study": "s1"' in capsys.readouterr().out
            db = open_database(url, create=False)
            try:
                with pytest.raises(DatabaseError, match="read") as write:
                    db.create_search("s2", {}, 1, "0.1.0", None, "tok2", "host", 1)
                assert not write.value.transient and not transient(write.value)
            finally:
                db.close()
        seconds = time.monotonic() - started
        assert seconds < 20, f"a read-only database took {seconds:.0f}s to refuse"
        assert snapshot(url) == before
    record(f"readonly-database-{how}-{schema}",
           {"seconds_to_refuse": round(seconds, 2), "retry_budget_s": 120})
