"""The database on SQLite and on the real PostgreSQL server: schema, lock, trials, models."""

from __future__ import annotations

import inspect

import optuna
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError, OperationalError

from nas.db import (
    Database,
    DatabaseError,
    StudyExists,
    Trial,
    normalize_url,
    open_database,
    record_model,
    redact,
    scrub,
)
from nas.db.retry import (
    client_key,
    is_opted_out,
    is_retried,
    retried,
    retry_public_methods,
    transient,
)
from search_spaces import PUBLISHED

# The only public Database methods that are not retried, and why: they open no unit of work.
NOT_RETRIED = {"session", "close"}


def _search(db, name="s1", token="tok-a"):
    return db.create_search(name, {"sampler": "tpe"}, 7, "0.1.0", "fp123", token, "host", 11)


def test_schema_is_migrated_beside_optunas(db_url: str) -> None:
    db = open_database(db_url)
    study = optuna.create_study(storage=db.url, study_name="s1")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    db.close()
    db = open_database(db_url)  # opening again migrates nothing and breaks nothing
    tables = set(sa_inspect(db.engine).get_table_names())
    assert {"searches", "architectures", "search_trials", "epochs", "models"} <= tables
    assert {"nas_alembic_version", "alembic_version", "studies", "trials"} <= tables
    assert optuna.load_study(storage=db.url, study_name="s1").best_value == 0.5
    db.close()


def test_search_lock_is_compare_and_set(db_url: str) -> None:
    db = open_database(db_url)
    search = _search(db)
    assert search.driver_token == "tok-a" and search.status == "running"
    with pytest.raises(StudyExists):  # another driver's token: the name is taken
        _search(db, token="tok-x")
    assert _search(db) == search  # our own token: our earlier attempt, safe to repeat
    # Two drivers that both read the same holder race; exactly one wins.
    assert db.acquire(search, "tok-b", "host", 12) is True
    assert db.acquire(search, "tok-c", "host", 13) is False
    assert db.heartbeat(search.search_id, "tok-b") is True
    assert db.heartbeat(search.search_id, "tok-a") is False
    db.release(search.search_id, "tok-b", "finished")
    after = db.search("s1")
    assert after.driver_token is None and after.status == "finished"
    assert db.acquire(after, "tok-d", "host", 14) is True
    db.close()


def test_trials_epochs_and_leaderboard_records(db_url: str) -> None:
    db = open_database(db_url)
    search = _search(db)
    genotype = PUBLISHED["nasnet-a"]
    key = genotype.key()
    arch = db.upsert_architecture(key, genotype.to_dict(), 1000, 2000, {"cells": 1})
    assert db.upsert_architecture(key, genotype.to_dict(), 1, 2, None) == arch
    db.start_trial(search.search_id, Trial(0, params=1000, mult_adds=2000, seed=5), arch)
    db.add_epochs(search.search_id, 0, [{"epoch": 1, "train_loss": 2.0, "val_accuracy": 0.3,
                                         "seconds": 1.5, "images_per_s": 100.0}])
    db.finish_trial(search.search_id, Trial(
        0, "COMPLETE", values=[0.5], val_accuracy=0.5, duration_s=3.0, device="cpu",
        epoch_rows=({"epoch": 1, "train_loss": 1.9, "val_accuracy": 0.31},
                    {"epoch": 2, "train_loss": float("nan"), "val_accuracy": 0.5}),
    ))
    db.start_trial(search.search_id, Trial(1, params=1000, mult_adds=2000, seed=6), arch)
    db.finish_trial(search.search_id, Trial(
        1, "COMPLETE", values=[0.5], val_accuracy=0.5, duplicate_of=0))
    db.start_trial(search.search_id, Trial(2, seed=7), None)

    trials = db.trials(search.search_id)
    assert [t.number for t in trials] == [0, 1, 2]
    first = trials[0]
    assert (first.state, first.key, first.epochs, first.seed) == ("COMPLETE", key, 2, 5)
    assert first.genotype == genotype.to_dict()
    epochs = db.epochs(search.search_id, 0)
    assert [e.epoch for e in epochs] == [1, 2]
    assert epochs[0].train_loss == 1.9  # the final result overwrote the streamed report
    assert epochs[1].train_loss is None  # a diverged loss is stored as NULL
    assert trials[1].duplicate_of == 0 and trials[1].epochs == 0
    assert db.state_counts(search.search_id) == {"COMPLETE": 2, "RUNNING": 1}
    assert db.best_trial(search.search_id).number == 0
    assert [t.number for t in db.trials(search.search_id, ["RUNNING"])] == [2]
    with pytest.raises(DatabaseError, match="never started"):
        db.add_epochs(search.search_id, 99, [{"epoch": 1}])
    db.close()


def test_a_trial_comes_back_as_the_driver_wrote_it(db_url: str) -> None:
    """One record from dispatch to the database and back: what the driver fills in as the
    trial moves (asked, costed, finished) is what `trials()` returns to the leaderboard
    and a resume; only the database's clock and the epoch count are added."""
    from dataclasses import replace

    db = open_database(db_url)
    search = _search(db)
    genotype = PUBLISHED["nasnet-a"]
    asked = Trial(3, key=genotype.key(), genotype=genotype.to_dict(), seed=11, retry_of=1)
    costed = replace(asked, params=1000, mult_adds=2000)
    arch = db.upsert_architecture(costed.key, costed.genotype, 1000, 2000, None)
    db.start_trial(search.search_id, costed, arch)
    assert replace(db.trial(search.search_id, 3), started_at=None) == costed
    rows = ({"epoch": 1, "train_loss": 1.5, "val_accuracy": 0.4},
            {"epoch": 2, "train_loss": 1.2, "val_accuracy": 0.45})
    done = replace(costed, state="PRUNED", val_accuracy=0.45, latency_ms=2.5, duration_s=4.0,
                   train_seconds=3.0, fit_seconds=2.5, worker_node="n1", device="cpu",
                   error="pruned by the median pruner after epoch 2", epochs=len(rows),
                   epoch_rows=rows)
    db.finish_trial(search.search_id, done)
    back = db.trial(search.search_id, 3)
    assert back.started_at is not None and back.finished_at >= back.started_at
    assert back.epoch_rows == () and [e.val_accuracy for e in db.epochs(search.search_id, 3)] \
        == [0.4, 0.45]
    assert replace(back, started_at=None, finished_at=None) == done  # epoch_rows not compared
    db.close()


def test_record_model_links_architecture(db_url: str) -> None:
    genotype = PUBLISHED["darts-v2"]
    record = record_model(
        db_url, kind="train", arch="s1:best", config={"epochs": 1},
        metrics={"train_seconds": 2.0}, genotype=genotype.to_dict(), key=genotype.key(),
        layout="cifar", test_accuracy=0.41, params=123, mult_adds=456, checkpoint="m.safetensors",
    )
    assert record.model_id > 0 and record.key == genotype.key()
    db = open_database(db_url)
    models = db.models("train")
    assert [(m.arch, m.test_accuracy, m.checkpoint) for m in models] == [
        ("s1:best", 0.41, "m.safetensors")
    ]
    assert db.models("baseline") == []
    db.close()


def test_password_never_shown() -> None:
    url = "postgresql://nas:s3cret-pw@127.0.0.1:1/nas"
    assert normalize_url(url).startswith("postgresql+psycopg://")
    assert "s3cret-pw" not in redact(url)
    with pytest.raises(DatabaseError) as info:
        open_database(url)  # nothing listens on port 1
    assert "s3cret-pw" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


# (URL as typed, how it must be shown): the password goes whether or not the URL parses.
REDACTED = [
    ("postgresql://nas:pw-1x@db:5432/nas", "postgresql://nas:***@db:5432/nas"),
    ("postgresql//nas:pw-1x@db:5432/nas", "postgresql//nas:***@db:5432/nas"),
    ("postgresql://nas:pw@1x@db/nas", "postgresql://nas:***@db/nas"),
    ("postgresql://nas:pw:1x/y@db/nas", "postgresql://nas:***@db/nas"),
    ("postgresql://nas@db:pw-1x/nas", "postgresql://nas@db:***/nas"),
    ("postgresql://nas@db/nas?sslmode=require&password=pw-1x",
     "postgresql://nas@db/nas?sslmode=require&password=***"),
    ("postgresql://nas@db/nas#password=pw-1x", "postgresql://nas@db/nas#password=***"),
    ("postgresql://nas:pw-1x@db/pw-1x", "postgresql://nas:***@db/***"),
    ("postgresql://nas:pw%401x@db/nas", "postgresql://nas:***@db/nas"),
    ("sqlite:///runs/nas.db", "sqlite:///runs/nas.db"),
    ("postgresql://nas@[::1]:5432/nas", "postgresql://nas@[::1]:5432/nas"),
]


@pytest.mark.parametrize(("url", "shown"), REDACTED)
def test_redact_does_not_need_a_parse(url: str, shown: str) -> None:
    assert redact(url) == shown
    if "pw-1x" in url:  # a driver's message may quote the URL or the password's pieces
        assert "pw-1x" not in scrub(f"connection to {url} failed: database pw-1x", url)


def test_missing_sqlite_file_is_not_created(tmp_path) -> None:
    path = tmp_path / "absent.db"
    with pytest.raises(DatabaseError, match="run `nas search` first"):
        open_database(f"sqlite:///{path}", create=False)
    assert not path.exists()
    with pytest.raises(DatabaseError, match="not a database URL"):
        open_database("no-such-scheme")


def test_every_public_database_method_is_retried() -> None:
    """A method added to Database later is covered by the class decorator, or fails here
    until it is marked no_retry on purpose."""
    methods = {name: fn for name, fn in inspect.getmembers(Database, inspect.isfunction)
               if not name.startswith("_")}
    assert {"create_search", "acquire", "record_model", "heartbeat"} <= methods.keys()
    assert {n for n, fn in methods.items() if is_opted_out(fn)} == NOT_RETRIED
    assert [n for n, fn in methods.items() if n not in NOT_RETRIED and not is_retried(fn)] == []

    @retry_public_methods
    class Later:
        def new_write(self) -> None: ...

        def _helper(self) -> None: ...

    assert is_retried(Later.new_write) and not is_retried(Later._helper)


def test_which_errors_are_transient() -> None:
    lost = OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
    assert transient(lost)
    assert not transient(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")))
    assert not transient(OperationalError("SELECT", {}, Exception("no such table: models")))
    assert transient(DatabaseError("db: gone", transient=True))
    assert not transient(DatabaseError("db: UNIQUE constraint failed"))
    # Raised while handling a lost connection, "the name is taken" is still an answer.
    try:
        try:
            raise DatabaseError("db: gone", transient=True)
        except DatabaseError:
            raise StudyExists("study 's1' already exists") from None
    except StudyExists as exc:
        assert not transient(exc)


def test_a_client_key_is_made_once_for_all_attempts() -> None:
    """The key is made before the first attempt, so a retried insert repeats the same key."""
    seen: list[str] = []

    @retried
    @client_key("uid")
    def write(value: int, uid: str | None = None) -> str:
        seen.append(uid)
        if len(seen) == 1:
            raise DatabaseError("db: the connection is closed", transient=True)
        return uid

    assert write(1) == seen[0] == seen[1] and len(seen) == 2
    assert write(2, uid="mine") == "mine"
