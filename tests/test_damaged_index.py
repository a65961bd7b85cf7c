"""One damaged index record: every read path answers as the log says, none raises an
internal error type. The index is derived from the log's keys, so nothing is lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lmdb
import msgspec
import pytest
from damage import eno_of, records
from test_ship import assert_shipped

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._core.codec import index_key
from evstore._fleet.shipping import ship
from evstore._history.replay import states_at
from evstore._ops.verify import verify


def build(path: Path) -> None:
    """c0..c2, each created and then given pid 1..4 (five events), indexed by a clean close."""
    with evstore.open(path) as store:
        for n in range(3):
            entry = store.containers.add(
                ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1)
            )
            for pid in range(1, 5):
                entry.status.update(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))


def _alter(path: Path, body: Callable[[lmdb.Transaction, object, bytes, bytes], None]) -> None:
    """Run ``body(txn, index_db, key, value)`` on c1's index record of its event 3."""
    key = index_key(eno_of(path, "c1"), 3)
    assert key in dict(records(path, b"index"))
    env = lmdb.open(str(path), max_dbs=8, map_size=1 << 30)
    try:
        db = env.open_db(b"index")
        with env.begin(write=True, db=db) as txn:
            body(txn, db, key, txn.get(key))
    finally:
        env.close()


DAMAGE = {
    "truncated position": lambda txn, db, key, value: txn.put(key, value[:3]),
    "wrong position": lambda txn, db, key, value: txn.put(key, value[:-1] + b"\x7f"),
    "malformed key": lambda txn, db, key, value: (txn.delete(key), txn.put(key + b"!", value)),
}


@pytest.fixture(params=list(DAMAGE))
def damaged(request: pytest.FixtureRequest, store_path: Path) -> Path:
    build(store_path)
    _alter(store_path, DAMAGE[request.param])
    return store_path


def test_history_and_status_at_answer_as_the_feed(damaged: Path) -> None:
    with evstore.open(damaged, readonly=True) as store:
        feed = [event for event in store.events() if event.id == "c1"]
        assert [event.seq for event in feed] == [1, 2, 3, 4, 5]
        assert store.history("c1") == feed
        assert store.status_at("c1", seq=3).pid == 2
        live = {state.id: state.status for state in states_at(store, position=15)}
        assert store.status_at("c1", seq=5) == live["c1"] == store.containers.get("c1").status.get()


def test_verify_names_the_damage(damaged: Path) -> None:
    report = verify(damaged)
    assert len(report.problems) >= 1 and all("index" in p for p in report.problems)


def test_ship_carries_every_event(damaged: Path, pg_dsn: str) -> None:
    report = ship(damaged, pg_dsn, "n1")
    assert report.shipped == 15
    assert_shipped(pg_dsn, "n1", damaged)
