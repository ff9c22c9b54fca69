"""The database: searches, architectures, trials, epochs and models beside Optuna's tables.

SQLAlchemy 2 ORM, schema through Alembic (migrated on open), SQLite (WAL) by default and
PostgreSQL through `postgresql+psycopg://`. Callers get plain records, never ORM rows.
"""

from nas.db.lock import STALE_S as STALE_S
from nas.db.lock import lock_holder as lock_holder
from nas.db.store import *  # noqa: F403  (the public names are store's __all__)
from nas.db.store import __all__ as _store_all

__all__ = [*_store_all, "STALE_S", "lock_holder"]
