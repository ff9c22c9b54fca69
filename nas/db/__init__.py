"""The database: searches, architectures, trials, epochs and models beside Optuna's tables.

SQLAlchemy 2 ORM, schema through Alembic (migrated on open), SQLite (WAL) by default and
PostgreSQL through `postgresql+psycopg://`. Callers get plain records, never ORM rows.
"""

from nas.db.store import (
    FINISHED,
    STATES,
    Database,
    DatabaseError,
    EpochRecord,
    ModelRecord,
    SearchRecord,
    StudyExists,
    TrialOutcome,
    TrialRecord,
    host_name,
    normalize_url,
    open_database,
    package_version,
    record_model,
    redact,
)

__all__ = [
    "FINISHED",
    "STATES",
    "Database",
    "DatabaseError",
    "EpochRecord",
    "ModelRecord",
    "SearchRecord",
    "StudyExists",
    "TrialOutcome",
    "TrialRecord",
    "host_name",
    "normalize_url",
    "open_database",
    "package_version",
    "record_model",
    "redact",
]
