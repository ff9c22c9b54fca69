"""Alembic environment: run programmatically by `nas.db.open_database` on a given connection.

Our version table is `nas_alembic_version`, because Optuna's RDBStorage, which shares the
database, keeps its own Alembic history in `alembic_version`.
"""

from __future__ import annotations

from alembic import context

from nas.db.models import Base

VERSION_TABLE = "nas_alembic_version"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
