"""Shared fixtures: real databases (SQLite and PostgreSQL), real CIFAR-10, one Ray cluster."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def shared_data() -> Path:
    """Real data beside the checkout (env NAS_SHARED_DATA, default ../shared/data)."""
    root = Path(__file__).resolve().parents[1]
    return Path(os.environ.get("NAS_SHARED_DATA") or root.parent / "shared" / "data")


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    path = shared_data() / "cifar10"
    if not path.is_dir():
        pytest.skip(f"real CIFAR-10 not found at {path} (set NAS_SHARED_DATA)")
    return path


def _postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_pre_ping=True,
                          connect_args={"connect_timeout": 5})  # survives a server restart
    name = f"nas_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc.orig}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL with nothing in it yet: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nas.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster (with its dashboard) for every test of the session that needs it."""
    import ray

    from nas.search.dispatch import start_ray

    start_ray(None, num_cpus=2)
    yield
    ray.shutdown()
