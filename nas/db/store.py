"""The database API: open (and migrate) a URL, write as the one driver, read plain records.

Callers never see ORM rows or driver exceptions: every query runs in `Database.session()`,
which commits, rolls back on error, and turns SQLAlchemy errors into `DatabaseError` whose
message shows the URL without its password. Every public method is one unit of work,
retried as a whole after transient errors (nas.db.retry) and safe to repeat when a commit
landed but its acknowledgement was lost: the study lock recognises its own token, inserts
carry a client-made key (the search's name and driver token, a model's `model_uid`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from nas.db.models import ArchitectureRow, EpochRow, ModelRow, SearchRow, TrialRow
from nas.db.retry import client_key, no_retry, read_only, retry_public_methods, transient
from nas.db.urls import normalize_url, redact, scrub
from search_spaces.errors import package_version
from workers import faults

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "nas_alembic_version"  # ours; Optuna's own history is in alembic_version
SCHEMA_LOCK_KEY = 0x6E61_7364_6200  # pg_advisory_lock key of schema creation ("nasdb")
FINISHED = ("COMPLETE", "PRUNED")  # states that count towards --trials N
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")



# What a trial's end writes into its row, under the same names in `Trial` and `TrialRow`.
_FINISHED_FIELDS = ("state", "val_accuracy", "latency_ms", "duration_s", "train_seconds",
                    "fit_seconds", "worker_node", "device", "error", "duplicate_of",
                    "est_images_per_s")

class DatabaseError(Exception):
    """The database cannot be opened or a query failed; the message never holds a password.

    `transient` says whether waiting may help (the driver error behind it is hidden, so the
    retry policy reads this flag instead)."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(scrub(message))
        self.transient = transient


class StudyExists(DatabaseError):
    """A search of that name is already stored."""


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SearchRecord:
    search_id: int
    name: str
    config: dict[str, Any]
    seed: int
    package_version: str
    data_fingerprint: str | None
    status: str
    created_at: datetime
    updated_at: datetime
    driver_token: str | None
    driver_host: str | None
    driver_pid: int | None
    heartbeat_at: datetime | None


@dataclass(frozen=True)
class Trial:
    """One trial, in the one shape it has from Optuna's ask to our row and back.

    The driver fills it in as the trial moves, with `dataclasses.replace`: asked (number,
    key, genotype, seed, retry_of, N@F), costed (params, mult_adds), started (started_at),
    finished (state, values, metrics, error or duplicate_of, epochs). `start_trial` and
    `finish_trial` write it; `trials()` reads it back for the leaderboard and a resume.
    """

    number: int
    state: str = "RUNNING"  # one of STATES
    key: str | None = None
    genotype: dict[str, Any] | None = None
    seed: int | None = None
    retry_of: int | None = None  # the trial a dead driver left, which this one re-runs
    params: int | None = None
    mult_adds: int | None = None
    values: list[float] | None = None  # what Optuna is told (COMPLETE only)
    val_accuracy: float | None = None
    latency_ms: float | None = None
    duration_s: float | None = None
    train_seconds: float | None = None
    fit_seconds: float | None = None
    worker_node: str | None = None
    device: str | None = None
    error: str | None = None  # why it failed or was pruned
    duplicate_of: int | None = None  # the trial whose result this one reuses
    epochs: int = 0  # epochs trained
    cells: int | None = None  # N of the trial's network (None: a row from before 0004)
    filters: int | None = None  # F of the trial's network
    stem_stride: int | None = None  # its CIFAR stem's stride (None: 1, or a row before 0005)
    est_images_per_s: float | None = None  # the throughput pre-filter's estimate, if any
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # The epoch rows a worker sent back with its result, written by `finish_trial`;
    # `trials()` leaves it empty (read them with `epochs()`).
    epoch_rows: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)

    @property
    def identity(self) -> str | None:
        """What dedupe compares: the cell's key at its N@F and stem stride (the same cell at
        another size is another candidate); None without a key."""
        if self.key is None:
            return None
        stride = "" if (self.stem_stride or 1) == 1 else f"/s{self.stem_stride}"
        return f"{self.key}@{self.cells}x{self.filters}{stride}"


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float | None
    val_accuracy: float | None
    seconds: float | None
    images_per_s: float | None


@dataclass(frozen=True)
class ModelRecord:
    model_id: int
    kind: str
    arch: str
    key: str | None
    layout: str | None
    config: dict[str, Any]
    metrics: dict[str, Any]
    test_accuracy: float | None
    params: int | None
    mult_adds: int | None
    checkpoint: str | None
    created_at: datetime
    model_uid: str | None = None  # the client-made key the row was inserted with
    card: dict[str, Any] | None = None  # workers.card.ModelCard.to_dict(); None: written before


def _search(row: SearchRow) -> SearchRecord:
    return SearchRecord(
        row.search_id, row.name, row.config_json, row.seed, row.package_version,
        row.data_fingerprint, row.status, as_utc(row.created_at), as_utc(row.updated_at),
        row.driver_token, row.driver_host, row.driver_pid, as_utc(row.heartbeat_at),
    )


def _trial(row: TrialRow, arch: ArchitectureRow | None, epochs: int) -> Trial:
    return Trial(
        number=row.number, state=row.state, key=arch.key if arch else None,
        genotype=arch.genotype_json if arch else None, values=row.values_json,
        val_accuracy=row.val_accuracy, params=row.params, mult_adds=row.mult_adds,
        latency_ms=row.latency_ms, duration_s=row.duration_s, train_seconds=row.train_seconds,
        worker_node=row.worker_node, device=row.device, seed=row.seed, error=row.error,
        duplicate_of=row.duplicate_of, retry_of=row.retry_of,
        started_at=as_utc(row.started_at), finished_at=as_utc(row.finished_at), epochs=epochs,
        fit_seconds=row.fit_seconds, cells=row.cells, filters=row.filters,
        stem_stride=row.stem_stride, est_images_per_s=row.est_images_per_s,
    )


def _model(row: ModelRow, key: str | None) -> ModelRecord:
    return ModelRecord(
        row.model_id, row.kind, row.arch, key, row.layout, row.config_json, row.metrics_json,
        row.test_accuracy, row.params, row.mult_adds, row.checkpoint, as_utc(row.created_at),
        row.model_uid, row.card_json,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Wait, don't fail, on locks; enforce foreign keys. (WAL, which lets readers run beside
    the writing driver, is a property of the file, set once by a writing open: setting it
    here would write to databases that reading commands only look at.)"""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@retry_public_methods  # every public method rides out a database that is briefly away
class Database:
    """One database URL: our tables (migrated on open) beside Optuna's."""

    def __init__(self, url: str, engine: Engine) -> None:
        self._url = url  # may hold a password: never print it, use `display_url`
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The full URL, for Optuna's RDBStorage in the same process. Never print it."""
        return self._url

    @property
    def display_url(self) -> str:
        return redact(self._url)

    @no_retry  # the methods that use it are retried whole
    @contextmanager
    def session(self) -> Iterator[Session]:
        """Commit on success, roll back on error, and raise DatabaseError, not driver errors."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise DatabaseError(f"database {self.display_url}: {_first_line(exc)}",
                                transient=transient(exc)) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @no_retry  # only drops the pool
    def close(self) -> None:
        self.engine.dispose()

    # -- searches -------------------------------------------------------------------------

    def search(self, name: str) -> SearchRecord | None:
        with self.session() as s:
            row = s.scalar(select(SearchRow).where(SearchRow.name == name))
            return _search(row) if row else None

    def searches(self) -> list[SearchRecord]:
        """All searches, newest first."""
        with self.session() as s:
            rows = s.scalars(select(SearchRow).order_by(SearchRow.created_at.desc()))
            return [_search(r) for r in rows]

    def create_search(
        self, name: str, config: dict[str, Any], seed: int, package_version: str,
        data_fingerprint: str | None, token: str, host: str, pid: int,
    ) -> SearchRecord:
        """Insert a search locked by the calling driver; StudyExists if the name is taken.

        Safe to repeat: a row of that name holding our `token` is our own earlier attempt
        (committed, acknowledgement lost), returned as if just inserted."""
        moment = now()
        row = SearchRow(
            name=name, config_json=config, seed=seed, package_version=package_version,
            data_fingerprint=data_fingerprint, status="running", created_at=moment,
            updated_at=moment, driver_token=token, driver_host=host, driver_pid=pid,
            heartbeat_at=moment,
        )
        try:
            with self.session() as s:
                s.add(row)
        except DatabaseError as exc:
            found = self.search(name)
            if found is not None and found.driver_token == token:
                return found
            if found is not None:
                raise StudyExists(f"study {name!r} already exists") from None
            raise exc
        return _search(row)

    def acquire(self, search: SearchRecord, token: str, host: str, pid: int) -> bool:
        """Compare-and-set the driver lock from the holder `search` shows to us.

        Atomic on both SQLite and PostgreSQL: of two drivers racing from the same state, one
        UPDATE matches the old token and the other matches nothing. A lock that already holds
        our `token` is ours (an earlier attempt committed, its acknowledgement was lost).
        """
        old = SearchRow.driver_token
        match = old.is_(None) if search.driver_token is None else old == search.driver_token
        match = match | (old == token)
        moment = now()
        with self.session() as s:
            result = s.execute(
                update(SearchRow)
                .where(SearchRow.search_id == search.search_id, match)
                .values(driver_token=token, driver_host=host, driver_pid=pid,
                        heartbeat_at=moment, updated_at=moment, status="running")
            )
            return result.rowcount == 1

    def heartbeat(self, search_id: int, token: str) -> bool:
        """Refresh our lock; False if another driver has taken it."""
        with self.session() as s:
            result = s.execute(
                update(SearchRow)
                .where(SearchRow.search_id == search_id, SearchRow.driver_token == token)
                .values(heartbeat_at=now())
            )
            return result.rowcount == 1

    def release(self, search_id: int, token: str, status: str) -> None:
        """Give up the lock and record how the run ended (finished, interrupted, failed)."""
        with self.session() as s:
            s.execute(
                update(SearchRow)
                .where(SearchRow.search_id == search_id, SearchRow.driver_token == token)
                .values(driver_token=None, driver_host=None, driver_pid=None, status=status,
                        updated_at=now())
            )

    def update_search(self, search_id: int, **fields: Any) -> None:
        """Change stored fields (config_json, data_fingerprint, package_version, status)."""
        with self.session() as s:
            s.execute(
                update(SearchRow)
                .where(SearchRow.search_id == search_id)
                .values(**fields, updated_at=now())
            )

    # -- architectures and trials ---------------------------------------------------------

    def upsert_architecture(
        self, key: str, genotype: dict[str, Any], params: int | None, mult_adds: int | None,
        network: dict[str, Any] | None,
    ) -> int:
        """The architecture's id, inserting it the first time its key is seen."""
        with self.session() as s:
            found = s.scalar(select(ArchitectureRow.architecture_id).where(
                ArchitectureRow.key == key))
            if found is not None:
                return found
        try:
            with self.session() as s:
                row = ArchitectureRow(key=key, genotype_json=genotype, params=params,
                                      mult_adds=mult_adds, network_json=network,
                                      created_at=now())
                s.add(row)
                s.flush()
                return row.architecture_id
        except DatabaseError:  # another process inserted it between our two sessions
            with self.session() as s:
                found = s.scalar(select(ArchitectureRow.architecture_id).where(
                    ArchitectureRow.key == key))
                if found is None:
                    raise
                return found

    def start_trial(self, search_id: int, trial: Trial, architecture_id: int | None) -> None:
        """Record `trial` as RUNNING with its cost, seed and retry_of (or reset a stale row of
        the same number to RUNNING); `architecture_id` links its key and genotype."""
        with self.session() as s:
            row = s.scalar(select(TrialRow).where(
                TrialRow.search_id == search_id, TrialRow.number == trial.number))
            if row is None:
                row = TrialRow(search_id=search_id, number=trial.number)
                s.add(row)
            row.architecture_id = architecture_id
            row.state = "RUNNING"
            row.params, row.mult_adds = trial.params, trial.mult_adds
            row.seed, row.retry_of = trial.seed, trial.retry_of
            row.cells, row.filters, row.stem_stride = trial.cells, trial.filters, trial.stem_stride
            row.started_at = now()
            row.finished_at = None

    def finish_trial(self, search_id: int, trial: Trial) -> None:
        """Write a trial's end state, metrics and epoch rows in one transaction (what
        `start_trial` wrote, its cost and seed, stays)."""
        with self.session() as s:
            number = trial.number
            row = s.scalar(select(TrialRow).where(
                TrialRow.search_id == search_id, TrialRow.number == number))
            if row is None:
                raise DatabaseError(f"trial {number} of search {search_id} was never started")
            row.values_json = trial.values
            for name in _FINISHED_FIELDS:
                setattr(row, name, getattr(trial, name))
            row.finished_at = now()
            _upsert_epochs(s, row.search_trial_id, trial.epoch_rows)
            faults.point("db-write")  # the reliability suite's "killed mid-transaction"

    def add_epochs(self, search_id: int, number: int, epochs: Sequence[dict[str, Any]]) -> None:
        """Store streamed epoch reports; a retried attempt overwrites the same epoch numbers."""
        with self.session() as s:
            trial_id = s.scalar(select(TrialRow.search_trial_id).where(
                TrialRow.search_id == search_id, TrialRow.number == number))
            if trial_id is None:
                raise DatabaseError(f"trial {number} of search {search_id} was never started")
            _upsert_epochs(s, trial_id, epochs)

    def trials(self, search_id: int, states: Sequence[str] | None = None) -> list[Trial]:
        """A search's trials in number order, with key, genotype and epoch count."""
        counts = (
            select(EpochRow.search_trial_id, func.count().label("n"))
            .group_by(EpochRow.search_trial_id)
            .subquery()
        )
        query = (
            select(TrialRow, ArchitectureRow, counts.c.n)
            .outerjoin(ArchitectureRow, TrialRow.architecture_id == ArchitectureRow.architecture_id)
            .outerjoin(counts, counts.c.search_trial_id == TrialRow.search_trial_id)
            .where(TrialRow.search_id == search_id)
            .order_by(TrialRow.number)
        )
        if states is not None:
            query = query.where(TrialRow.state.in_(list(states)))
        with self.session() as s:
            return [_trial(t, a, n or 0) for t, a, n in s.execute(query)]

    def trial(self, search_id: int, number: int) -> Trial | None:
        return next((t for t in self.trials(search_id) if t.number == number), None)

    def epochs(self, search_id: int, number: int) -> list[EpochRecord]:
        query = (
            select(EpochRow)
            .join(TrialRow, TrialRow.search_trial_id == EpochRow.search_trial_id)
            .where(TrialRow.search_id == search_id, TrialRow.number == number)
            .order_by(EpochRow.epoch)
        )
        with self.session() as s:
            return [
                EpochRecord(e.epoch, e.train_loss, e.val_accuracy, e.seconds, e.images_per_s)
                for e in s.scalars(query)
            ]

    def state_counts(self, search_id: int) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(
                select(TrialRow.state, func.count())
                .where(TrialRow.search_id == search_id)
                .group_by(TrialRow.state)
            )
            return {state: n for state, n in rows}

    def best_trial(self, search_id: int) -> Trial | None:
        """The COMPLETE trial with the highest validation accuracy (lowest number on ties)."""
        done = [t for t in self.trials(search_id, ["COMPLETE"]) if t.val_accuracy is not None]
        return max(done, key=lambda t: (t.val_accuracy, -t.number), default=None)

    # -- models ---------------------------------------------------------------------------

    @client_key("model_uid")
    def record_model(
        self, kind: str, arch: str, config: dict[str, Any], metrics: dict[str, Any],
        genotype: dict[str, Any] | None = None, key: str | None = None,
        layout: str | None = None, test_accuracy: float | None = None,
        params: int | None = None, mult_adds: int | None = None,
        checkpoint: str | None = None, model_uid: str | None = None,
        card: dict[str, Any] | None = None,
    ) -> ModelRecord:
        """Store a final training; a genotype links it to its architecture row; `card` is
        the model card (`ModelCard.to_dict()`), the record readers use.

        `model_uid` (a uuid4, made before the first attempt when not given) is the row's
        client-made key: a repeated insert of it finds our earlier attempt's row and returns
        that, so a retry never writes a second row."""
        architecture_id = None
        if genotype is not None and key is not None:
            architecture_id = self.upsert_architecture(key, genotype, None, None, None)
        row = ModelRow(
            kind=kind, arch=arch, architecture_id=architecture_id, layout=layout,
            config_json=config, metrics_json=metrics, test_accuracy=test_accuracy,
            params=params, mult_adds=mult_adds, checkpoint=checkpoint, card_json=card,
            created_at=now(), model_uid=model_uid,
        )
        try:
            with self.session() as s:
                s.add(row)
        except DatabaseError:
            if model_uid is None:
                raise
            with self.session() as s:
                found = s.scalar(select(ModelRow).where(ModelRow.model_uid == model_uid))
            if found is None:
                raise
            return _model(found, key)
        return _model(row, key)

    def models(self, kind: str | None = None) -> list[ModelRecord]:
        query = (
            select(ModelRow, ArchitectureRow.key)
            .outerjoin(ArchitectureRow, ModelRow.architecture_id == ArchitectureRow.architecture_id)
            .order_by(ModelRow.model_id)
        )
        if kind is not None:
            query = query.where(ModelRow.kind == kind)
        with self.session() as s:
            return [_model(m, k) for m, k in s.execute(query)]


def _upsert_epochs(s: Session, trial_id: int, epochs: Sequence[dict[str, Any]]) -> None:
    rows = s.scalars(select(EpochRow).where(EpochRow.search_trial_id == trial_id))
    existing = {e.epoch: e for e in rows}
    for report in epochs:
        row = existing.get(int(report["epoch"]))
        if row is None:
            row = EpochRow(search_trial_id=trial_id, epoch=int(report["epoch"]))
            s.add(row)
            existing[row.epoch] = row
        row.train_loss = _num(report.get("train_loss"))
        row.val_accuracy = _num(report.get("val_accuracy"))
        row.seconds = _num(report.get("seconds"))
        row.images_per_s = _num(report.get("images_per_s"))


def _num(value: Any) -> float | None:
    """Floats as stored: NaN/inf (a diverged loss) become NULL, which every backend accepts."""
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _first_line(exc: BaseException) -> str:
    """The driver's own first line, scrubbed (SQLAlchemy's and psycopg's messages may quote
    the URL, or pieces of a password that a misparse put into host or port)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return scrub(text.splitlines()[0]) if text else type(exc).__name__


URL_HELP = ("use sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB, with any "
            "@ : / in the password percent-encoded (%40 %3A %2F)")
READ_ONLY_HELP = ("check the permissions of the file and of its directory (SQLite creates "
                  "FILE-wal and FILE-shm beside it, even to read), mode=ro in the URL, or "
                  "the server's default_transaction_read_only")


def _sqlite_file(parsed: URL) -> Path | None:
    """The file of an SQLite URL (also `sqlite:///file:X?mode=ro&uri=true`); None: memory."""
    path = parsed.database
    if not path or path == ":memory:":
        return None
    if parsed.query.get("uri") == "true" and path.startswith("file:"):
        path = path[len("file:"):].split("?", 1)[0]
    return Path(path)


def open_database(url: str, create: bool = True) -> Database:
    """Connect, check the server answers, and check (`create=False`) or bring (`create=True`)
    our schema to the newest revision.

    With `create=False`, for the commands that only read, nothing is ever written: a missing
    file or a database without our tables is "no nas database", an older schema says how to
    upgrade it. Either way a database that is not ours, or from a newer nas, is refused by
    name, and a writing open probes that the database takes writes (a read-only one fails
    here, at once, not after the work).
    """
    url = normalize_url(url)
    shown = redact(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise DatabaseError(f"{shown} is not a database URL; {URL_HELP}") from None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    sqlite_file = _sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    if sqlite_file is not None:
        if not create and not sqlite_file.exists():
            raise DatabaseError(f"no nas database at {shown}: run `nas search` first")
        if sqlite_file.is_dir():
            raise DatabaseError(f"{shown} names the directory {sqlite_file}, not an SQLite "
                                "file; use sqlite:///DIR/nas.db")
        if not sqlite_file.parent.exists():
            raise DatabaseError(f"{shown}: directory {sqlite_file.parent} does not exist")
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    elif parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(url, **kwargs)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise DatabaseError(f"cannot use database {shown}: {_first_line(exc)}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        if not create:
            _check_schema(engine, shown, reading=True)
        else:
            with _schema_lock(engine, None if sqlite_file is None else str(sqlite_file)):
                _check_schema(engine, shown, reading=False)
                if engine.dialect.name == "sqlite":
                    with engine.connect() as connection:
                        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
                with engine.begin() as connection:
                    config = _alembic_config()
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                _create_optuna_schema(engine, url)
            _probe_write(engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        if read_only(exc):
            raise DatabaseError(f"database {shown} is read-only or cannot be opened "
                                f"({_first_line(exc)}); "
                                f"{READ_ONLY_HELP}") from None
        raise DatabaseError(f"cannot open database {shown}: {_first_line(exc)}",
                            transient=transient(exc)) from None
    except DatabaseError:
        engine.dispose()
        raise
    return Database(url, engine)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _check_schema(engine: Engine, shown: str, reading: bool) -> None:
    """Refuse, by name and before anything is written, a database that is not ours or
    from a newer nas; for reading also an empty one and an older schema (reading commands
    never migrate: a migration is a write, and the ORM queries need the newest columns)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    head = script.get_current_head()
    with engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
        revisions = set()
        if VERSION_TABLE in tables:
            revisions = set(connection.execute(
                text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())
    if revisions - known:
        raise DatabaseError(
            f"the nas database at {shown} has schema revision "
            f"{', '.join(sorted(revisions - known))}, which this nas ({package_version()}, "
            f"newest revision {head}) does not know: a newer nas wrote it; upgrade nas")
    if reading and revisions and revisions != {head}:
        raise DatabaseError(
            f"the nas database at {shown} has an older schema (revision "
            f"{', '.join(sorted(revisions))}; this nas writes {head}): run `nas search` "
            "(or any writing command) once to upgrade it")
    if reading and not revisions:
        if not tables:
            raise DatabaseError(f"no nas database at {shown}: run `nas search` first")
        others = ", ".join(sorted(tables)[:5]) + ("…" if len(tables) > 5 else "")
        raise DatabaseError(
            f"{shown} is not a nas database (it holds {len(tables)} other tables: {others}); "
            "point --storage at the database `nas search` wrote")
    if "alembic_version" in tables and "studies" not in tables:
        # Optuna keeps its history in alembic_version: one without Optuna's tables is
        # another application's, and Optuna would fail on it with a misleading error.
        raise DatabaseError(
            f"{shown} is not a nas database: its alembic_version table belongs to another "
            "application (Optuna's tables are missing); use a database of its own for nas")


def _probe_write(engine: Engine) -> None:
    """A write that is rolled back: a read-only database fails here, before any work."""
    with engine.connect() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = version_num"))
        connection.rollback()


@contextmanager
def _schema_lock(engine: Engine, sqlite_path: str | None) -> Iterator[None]:
    """One process at a time creates or migrates the schema: drivers that start together on
    a new database would otherwise both create the same tables and one would fail.
    PostgreSQL: an advisory lock; SQLite: flock on FILE.lock beside the database (never on
    the database file itself: closing any descriptor of it would drop SQLite's own POSIX
    locks in this process)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as c:
            c.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
            try:
                yield
            finally:
                c.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK_KEY})
                c.commit()
        return
    if engine.dialect.name == "sqlite" and sqlite_path and sqlite_path != ":memory:":
        import fcntl

        try:
            handle = open(f"{sqlite_path}.lock", "ab")  # noqa: SIM115 (closed by `with` below)
        except OSError as exc:  # a directory we may not write: read-only, permanently
            raise DatabaseError(f"cannot create {sqlite_path}.lock ({exc.strerror}): the "
                                f"database's directory is read-only; {READ_ONLY_HELP}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    yield


def _create_optuna_schema(engine: Engine, url: str) -> None:
    """Optuna's tables, created under the same lock (Optuna creates them on first use, and
    two first uses at once collide)."""
    if inspect(engine).has_table("studies"):
        return
    import optuna

    storage = optuna.storages.RDBStorage(url)
    storage.engine.dispose()


def record_model(storage: str, **fields: Any) -> ModelRecord:
    """For `nas train` and friends: open `storage`, store one trained model, close."""
    db = open_database(storage)
    try:
        return db.record_model(**fields)
    finally:
        db.close()


def host_name() -> str:
    return os.uname().nodename


__all__ = [
    "FINISHED",
    "STATES",
    "Database",
    "DatabaseError",
    "EpochRecord",
    "ModelRecord",
    "SearchRecord",
    "StudyExists",
    "Trial",
    "host_name",
    "normalize_url",
    "open_database",
    "package_version",
    "record_model",
    "redact",
    "scrub",
]
