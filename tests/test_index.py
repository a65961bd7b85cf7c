"""The per-entry index is written in bulk: history, repair and verify read the log's tail
after it, across crashes, and stores of the first format (every event indexed) still open."""

from __future__ import annotations

import struct
from pathlib import Path

import msgspec
from damage import eno_of, records, rewrite

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._core.codec import snapshot_key
from evstore._ops.verify import check_in_process
from evstore._store.store import abandon


def _pid(pid: int):  # type: ignore[no-untyped-def]
    return lambda s: msgspec.structs.replace(s, pid=pid)


def _write(store: evstore.Store, containers: int, updates: int, first_pid: int = 1) -> None:
    for n in range(containers):
        if f"c{n}" not in {entry.id for entry in store.containers.list()}:
            store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
    for pid in range(first_pid, first_pid + updates):
        for n in range(containers):
            store.containers.get(f"c{n}").status.update_sync(_pid(pid))


def _indexed(path: Path) -> int:
    (value,) = [v for k, v in records(path, b"meta") if k == b"indexed"]
    return int(struct.unpack(">Q", value)[0])


def _pids(store: evstore.Store, ident: str) -> list[int]:
    return [event.changes["pid"] for event in store.history(ident) if "pid" in event.changes]


def test_tail_is_read_while_open_and_indexed_on_close(store_path: Path) -> None:
    with evstore.open(store_path, index_every=10) as store:
        _write(store, containers=3, updates=6)  # 21 events: two bulk writes, a tail of one
        assert _pids(store, "c1") == [1, 2, 3, 4, 5, 6]
        report = check_in_process(store_path)
        assert report.ok, report.problems
        assert (report.events, report.index_entries) == (21, 20)
    assert _indexed(store_path) == 21
    assert len(records(store_path, b"index")) == 21
    assert check_in_process(store_path).ok


def test_crash_leaves_a_tail_that_reads_and_is_indexed_later(store_path: Path) -> None:
    store = evstore.open(store_path, index_every=50)
    _write(store, containers=4, updates=5)  # 24 events, none indexed
    abandon(store)
    assert _indexed(store_path) == 0
    # only each new entry's first event is indexed, in the commit that created it
    assert [struct.unpack(">II", k)[1] for k, _v in records(store_path, b"index")] == [1] * 4
    with evstore.open(store_path, index_every=50) as store:
        assert store.load_report.unknown == {}
        assert _pids(store, "c3") == [1, 2, 3, 4, 5]
        assert check_in_process(store_path).ok
        _write(store, containers=4, updates=7, first_pid=6)  # 28 more: at 50, the old tail goes
        assert _pids(store, "c0") == list(range(1, 13))
        report = check_in_process(store_path)
        assert report.ok, report.problems
        assert (report.events, report.index_entries) == (52, 50)


def test_damaged_snapshot_is_rebuilt_from_index_and_tail(store_path: Path) -> None:
    store = evstore.open(store_path, index_every=8, snapshot_every=3)
    _write(store, containers=2, updates=9)  # 20 events: 16 indexed, 4 in the tail
    abandon(store)
    assert _indexed(store_path) == 16
    rewrite(store_path, b"snapshots", snapshot_key(eno_of(store_path, "c1")), lambda v: None)
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        status = store.containers.get("c1").status.get()
        assert (status.pid, status.unknown) == (9, False)


def test_first_format_store_opens_and_is_upgraded(store_path: Path) -> None:
    with evstore.open(store_path, index_every=1) as store:  # every event indexed, as v1 did
        _write(store, containers=2, updates=3)
    rewrite(store_path, b"meta", b"format", lambda v: b"evstore/1")
    rewrite(store_path, b"meta", b"indexed", lambda v: None)
    with evstore.open(store_path, readonly=True) as store:
        assert _pids(store, "c0") == [1, 2, 3]
    assert check_in_process(store_path).ok
    before = (store_path / "data.mdb").read_bytes()
    with evstore.open(store_path, index_every=100) as store:
        assert (store_path / "data.mdb").read_bytes() == before  # opening writes nothing
        _write(store, containers=2, updates=2, first_pid=4)
        assert _pids(store, "c1") == [1, 2, 3, 4, 5]
        assert check_in_process(store_path).ok
    meta = dict(records(store_path, b"meta"))
    assert meta[b"format"] == b"evstore/2"
    assert _indexed(store_path) == 12
    assert check_in_process(store_path).ok


def test_verify_names_an_index_short_of_its_mark(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        _write(store, containers=2, updates=2)
    key, _value = records(store_path, b"index")[0]
    rewrite(store_path, b"index", key, lambda v: None)
    assert check_in_process(store_path).problems == [
        "index has 5 entries for 6 events up to position 6"
    ]
