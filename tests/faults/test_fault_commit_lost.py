"""A commit that landed but whose acknowledgement was lost (docs/reliability.md, "Idempotent
writes"): the connection drops right after COMMIT, so the client sees a transient error and
runs the unit of work again. The repeat must find its own earlier write, not report a false
"taken by another driver" or write a second row. Real SQLite file and real PostgreSQL
server; the drop closes the real driver connection (faultkit.commit_acknowledgement_lost).
"""

from __future__ import annotations

import inspect
import uuid

import pytest
from faultkit import commit_acknowledgement_lost
from sqlalchemy import func, select

from nas.db import Database, StudyExists, Trial, open_database
from nas.db.models import ArchitectureRow
from nas.db.retry import is_retried


@pytest.fixture
def db(db_url: str) -> Database:
    database = open_database(db_url)
    yield database
    database.close()


def _create(db: Database, token: str = "tok-a"):
    return db.create_search("s1", {"sampler": "tpe"}, 7, "0.1.0", "fp", token, "host", 11)


def test_create_search_after_a_lost_acknowledgement(db: Database) -> None:
    with commit_acknowledgement_lost(db.engine) as fired:
        search = _create(db)
    assert fired, "the fault never fired"
    assert search.name == "s1" and search.driver_token == "tok-a"
    assert [s.search_id for s in db.searches()] == [search.search_id]
    with pytest.raises(StudyExists):  # another driver is still refused
        _create(db, token="tok-other")


def test_acquire_after_a_lost_acknowledgement(db: Database) -> None:
    _create(db)
    stale = db.search("s1")
    db.release(stale.search_id, "tok-a", "interrupted")
    free = db.search("s1")
    assert free.driver_token is None
    with commit_acknowledgement_lost(db.engine) as fired:
        assert db.acquire(free, "tok-b", "host", 12) is True
    assert fired, "the fault never fired"
    held = db.search("s1")
    assert (held.driver_token, held.driver_pid, held.status) == ("tok-b", 12, "running")
    # The lock stays exclusive: a driver that read the same free state still loses.
    assert db.acquire(free, "tok-c", "host", 13) is False
    assert db.search("s1").driver_token == "tok-b"


def test_record_model_after_a_lost_acknowledgement(db: Database) -> None:
    fields = {"kind": "train", "arch": "nasnet-a", "config": {"epochs": 1},
              "metrics": {"train_seconds": 2.0}, "layout": "cifar", "test_accuracy": 0.4}
    with commit_acknowledgement_lost(db.engine) as fired:
        record = db.record_model(**fields)  # its key is made before the first attempt
    assert fired, "the fault never fired"
    models = db.models()
    assert len(models) == 1, "a retried insert wrote a second row"
    assert [(m.model_id, m.model_uid) for m in models] == [(record.model_id, record.model_uid)]
    assert uuid.UUID(record.model_uid).version == 4
    # A caller that repeats the call with the key it chose gets the same row back.
    uid = str(uuid.uuid4())
    first = db.record_model(**fields, model_uid=uid)
    again = db.record_model(**fields, model_uid=uid)
    assert again.model_id == first.model_id and again.model_uid == uid
    assert len(db.models()) == 2


# The other writes are safe to repeat by their shape (an UPDATE keyed by our token, an
# upsert, an overwrite); each case runs one under the fault and checks the single outcome.
def _heartbeat(db: Database, sid: int) -> None:
    assert db.heartbeat(sid, "tok-a") is True


def _release(db: Database, sid: int) -> None:
    db.release(sid, "tok-a", "finished")
    after = db.search("s1")
    assert (after.driver_token, after.status) == (None, "finished")


def _update_search(db: Database, sid: int) -> None:
    db.update_search(sid, data_fingerprint="fp2")
    assert db.search("s1").data_fingerprint == "fp2"


def _upsert_architecture(db: Database, sid: int) -> None:
    first = db.upsert_architecture("key-new", {"cell": 2}, 1, 2, None)
    assert db.upsert_architecture("key-new", {"cell": 2}, 1, 2, None) == first
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ArchitectureRow)) == 2


def _start_trial(db: Database, sid: int) -> None:
    db.start_trial(sid, Trial(1, seed=2), None)
    assert [(t.number, t.state) for t in db.trials(sid)] == [(0, "RUNNING"), (1, "RUNNING")]


def _finish_trial(db: Database, sid: int) -> None:
    db.finish_trial(sid, Trial(0, "COMPLETE", values=[0.5], val_accuracy=0.5, epochs=1,
                               epoch_rows=({"epoch": 1, "val_accuracy": 0.5},)))
    (trial,) = db.trials(sid)
    assert (trial.state, trial.val_accuracy, trial.epochs) == ("COMPLETE", 0.5, 1)


def _add_epochs(db: Database, sid: int) -> None:
    db.add_epochs(sid, 0, [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5}])
    assert [(e.epoch, e.train_loss) for e in db.epochs(sid, 0)] == [(1, 2.0), (2, 1.5)]


OTHER_WRITES = {f.__name__.lstrip("_"): f for f in (
    _heartbeat, _release, _update_search, _upsert_architecture, _start_trial, _finish_trial,
    _add_epochs)}
READS = {"search", "searches", "trials", "trial", "epochs", "state_counts", "best_trial",
         "models"}


def test_every_write_has_a_lost_acknowledgement_case() -> None:
    """A write method added to Database fails here until it gets a case below."""
    public = {name for name, fn in inspect.getmembers(Database, inspect.isfunction)
              if is_retried(fn)}
    assert public - READS == {"create_search", "acquire", "record_model", *OTHER_WRITES}


@pytest.mark.parametrize("write", sorted(OTHER_WRITES))
def test_other_writes_after_a_lost_acknowledgement(db: Database, write: str) -> None:
    search = _create(db)
    arch = db.upsert_architecture("key-0", {"cell": 1}, 1, 2, None)
    db.start_trial(search.search_id, Trial(0, params=1, mult_adds=2, seed=1), arch)
    with commit_acknowledgement_lost(db.engine) as fired:
        OTHER_WRITES[write](db, search.search_id)
    assert fired, "the fault never fired"
