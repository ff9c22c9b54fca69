"""`nas wait-db`: a driver started before PostgreSQL waits (bounded, with back-off), then
connects or exits with a clear message. Runs against the real server at 127.0.0.1:5432."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from nas.cli import main
from nas.db.retry import backoff, permanent, transient
from nas.db.wait import DatabaseUnavailable, wait_for_database
from nas.errors import BadInput

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextmanager
def late_postgres(after_s: float) -> Iterator[int]:
    """A port where PostgreSQL starts answering only after `after_s` seconds: a TCP relay to
    the real server that begins listening late, like a database container still starting."""
    port = _free_port()
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(after_s):
            return
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(("127.0.0.1", 5432))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert list(itertools.islice(backoff(1.0, 5.0), 5)) == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert list(itertools.islice(backoff(0.5, 8.0), 6)) == [0.5, 1, 2, 4, 8, 8]  # README


@pytest.mark.postgres
def test_wait_db_and_the_retried_calls_share_one_list_of_permanent_errors() -> None:
    """An unknown database is permanent for `nas wait-db` (exit 2 at once) and for the
    retried Database methods alike (no pointless 120 s of retries); a refused connection
    is transient for both."""
    engine = create_engine(PG.replace("/test", "/no_such_db_nas"), poolclass=NullPool)
    with pytest.raises(OperationalError) as unknown:
        engine.connect()
    assert permanent(unknown.value) and not transient(unknown.value)
    engine = create_engine(f"postgresql+psycopg://nas@127.0.0.1:{_free_port()}/nas",
                           poolclass=NullPool)
    with pytest.raises(OperationalError) as refused:
        engine.connect()
    assert transient(refused.value) and not permanent(refused.value)


def test_sqlite_has_no_server_to_wait_for(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    assert wait_for_database(url, attempts=1) == 0
    assert not (tmp_path / "nas.db").exists()


def test_no_server_gives_up_after_the_attempts_with_a_clear_message() -> None:
    url = f"postgresql+psycopg://nas:s3cret@127.0.0.1:{_free_port()}/nas"
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as info:
        wait_for_database(url, attempts=3, delay=0.2, log=lines.append)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed >= 0.2 + 0.4
    assert "after 3 attempts" in message and "Connection refused" in message
    assert "nas:***@127.0.0.1" in message and "s3cret" not in message
    assert len(lines) == 2 and "retrying in 0.4s" in lines[1]


@pytest.mark.postgres
def test_a_server_that_starts_late_is_waited_for() -> None:
    with late_postgres(after_s=1.0) as port:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
        attempt = wait_for_database(url, attempts=8, delay=0.25, connect_timeout=2)
    assert 2 <= attempt <= 8


@pytest.mark.postgres
def test_an_unknown_database_fails_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(BadInput, match='database "no_such_db_nas" does not exist'):
        wait_for_database(PG.replace("/test", "/no_such_db_nas"), attempts=5, delay=2.0)
    assert time.monotonic() - started < 2.0


@pytest.mark.postgres
def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wait-db", "--storage", PG, "--attempts", "2"]) == 0
    dead = f"postgresql://nas:pw@127.0.0.1:{_free_port()}/nas"
    assert main(["wait-db", "--storage", dead, "--attempts", "2", "--delay", "0"]) == 1
    err = capsys.readouterr().err
    assert "did not accept connections after 2 attempts" in err and ":pw@" not in err
