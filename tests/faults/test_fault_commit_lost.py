"""A commit that landed but whose acknowledgement was lost (docs/reliability.md, "Idempotent
writes"): the connection drops right after COMMIT, so the client sees a transient error and
runs the unit of work again. The repeat must find its own earlier write, not report a false
"taken by another driver" or write a second row. Real SQLite file and real PostgreSQL
server; the drop closes the real driver connection (faultkit.commit_acknowledgement_lost).
"""

from __future__ import annotations

import uuid

import pytest
from faultkit import commit_acknowledgement_lost

from nas.db import Database, StudyExists, open_database


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
