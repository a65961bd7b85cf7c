"""Losing any single record never hides an entry, and never lets a new entry take an old
entry's number (and with it the old entry's history)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import msgspec
import pytest
from damage import records, rewrite

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxStatus
from evstore._ops.compact import compact
from evstore._storage.retention import base_key
from evstore._store.store import abandon

FEW_SNAPSHOTS = {"snapshot_every": 1_000_000, "checkpoint_every": 1_000_000_000}
# the live entries when the store is left, with their pids
EXPECTED = {"c0": 3, "c1": 5, "c2": 3, "c3": 0, "s0": 42}


def _pid(entry: evstore._store.store.Entry, pid: int) -> None:  # type: ignore[name-defined]
    entry.status.update_sync(lambda s: msgspec.structs.replace(s, pid=pid))


def build(path: Path, *, crash: bool) -> None:
    """c0..c2 and s0, snapshotted and indexed by a clean close; then, unsnapshotted, two
    more updates of c1 and a newest entry c3 with nothing but its created event. Left by a
    clean close or by a crash (which loses the index records still in memory)."""
    with evstore.open(path, index_every=4) as store:
        for n in range(3):
            entry = store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus())
            for pid in range(1, 4):
                _pid(entry, pid)
        sandbox = store.sandboxes.add(SandboxMetadata(id="s0"), SandboxStatus())
        _pid(sandbox, 42)
    store = evstore.open(path, index_every=1_000, **FEW_SNAPSHOTS)
    for pid in (4, 5):
        _pid(store.containers.get("c1"), pid)
    store.containers.add(ContainerMetadata(id="c3"), ContainerStatus())
    if crash:
        abandon(store)
    else:
        store.close()


def enos(path: Path) -> dict[int, list[tuple[int, bytes]]]:
    """Each entry number's events: (seq, key)."""
    found: dict[int, list[tuple[int, bytes]]] = {}
    for key, _value in records(path, b"events"):
        _pos, eno, seq = struct.unpack(">QII", key)
        found.setdefault(eno, []).append((seq, key))
    return found


def eno_by_id(path: Path) -> dict[str, int]:
    """Read before any damage: the first event of each entry has its id."""
    with evstore.open(path, readonly=True) as store:
        positions = {
            store.history(ident)[0].position: ident for ident in EXPECTED
        }
    return {
        positions[struct.unpack(">QII", key)[0]]: struct.unpack(">QII", key)[1]
        for key, _value in records(path, b"events")
        if struct.unpack(">QII", key)[0] in positions
    }


def record_of(path: Path, kind: str, eno: int) -> tuple[bytes, bytes] | None:
    """(database, key) of one record of ``kind`` for entry ``eno``; None if it has none."""
    events = sorted(enos(path)[eno])
    index = [key for key, _ in records(path, b"index") if struct.unpack(">II", key)[0] == eno]
    meta = dict(records(path, b"meta"))
    snapshot = struct.pack(">I", eno)
    choices = {
        "created event": (b"events", events[0][1]),
        "last event": (b"events", events[-1][1]),
        "snapshot": (b"snapshots", snapshot) if snapshot in dict(records(path, b"snapshots"))
        else None,
        "first index": (b"index", index[0]) if index else None,
        "last index": (b"index", index[-1]) if index else None,
        "checkpoint": (b"meta", b"checkpoint") if b"checkpoint" in meta else None,
        "indexed mark": (b"meta", b"indexed") if b"indexed" in meta else None,
    }
    return choices[kind]


KINDS = ["created event", "last event", "snapshot", "first index", "last index",
         "checkpoint", "indexed mark"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target", ["c3", "c1"], ids=["newest", "older"])
@pytest.mark.parametrize("crash", [False, True], ids=["closed", "crashed"])
def test_one_lost_record_hides_no_entry(
    store_path: Path, kind: str, target: str, crash: bool
) -> None:
    build(store_path, crash=crash)
    numbers = eno_by_id(store_path)
    record = record_of(store_path, kind, numbers[target])
    if record is None:
        pytest.skip(f"{target} has no {kind} record here")
    rewrite(store_path, record[0], record[1], lambda value: None)
    with evstore.open(store_path) as store:
        unknown = store.load_report.unknown
        for ident, pid in EXPECTED.items():
            entries = store.sandboxes if ident.startswith("s") else store.containers
            listed = ident in unknown or f"#{numbers[ident]}" in unknown
            if listed:
                continue
            assert ident in [entry.id for entry in entries.list()], (ident, unknown)
            if "event" not in kind:  # a lost event may take an update with it; nothing else may
                assert entries.get(ident).status.get().pid == pid
        store.containers.add(ContainerMetadata(id="new"), ContainerStatus(pid=7))
        events = store.history("new")
        assert [(e.id, e.seq, e.type) for e in events] == [("new", 1, "created")]
    assert eno_by_id_after(store_path) not in numbers.values()


def eno_by_id_after(path: Path) -> int:
    """The entry number the container ``new`` got."""
    with evstore.open(path, readonly=True) as store:
        position = store.history("new")[0].position
    return next(
        struct.unpack(">QII", key)[1] for key, _value in records(path, b"events")
        if struct.unpack(">QII", key)[0] == position
    )


@pytest.mark.parametrize("lost", [None, "snapshot", "base"])
def test_retention_frees_no_entry_number(store_path: Path, lost: str | None) -> None:
    with evstore.open(store_path) as store:
        store.containers.add(ContainerMetadata(id="a"), ContainerStatus())
        store.containers.add(ContainerMetadata(id="b"), ContainerStatus())
        store.containers.delete("b")
    numbers = {struct.unpack(">QII", key)[1] for key, _value in records(store_path, b"events")}
    compact(store_path, drop_before=time.time_ns())
    if lost == "snapshot":
        rewrite(store_path, b"snapshots", struct.pack(">I", max(numbers)), lambda value: None)
    elif lost == "base":
        rewrite(store_path, b"meta", base_key(max(numbers)), lambda value: None)
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        assert [entry.id for entry in store.containers.list()] == ["a"]
        store.containers.add(ContainerMetadata(id="new"), ContainerStatus())
    assert eno_by_id_after(store_path) > max(numbers)
