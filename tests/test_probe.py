"""The probe's walk in parts: opening reads the store while the child walks the log's tail
and its index, reads each only once the child has walked it, and damage the child finds
leaves nothing open."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from damage import eno_of, event_key_of, flip_byte, rewrite
from test_damage import closed_store, crashed_store

import evstore
from evstore._storage import log, probe
from evstore._store.store import Store


def noting(seen: list[str], what: str, real: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        seen.append(what)
        return real(*args, **kwargs)

    return call


class Reads:
    """A read transaction that notes each cursor on, or read of, the index and the log."""

    def __init__(self, txn: Any, dbs: dict[bytes, Any], seen: list[str]) -> None:
        self._txn, self._seen = txn, seen
        self._names = {id(dbs[b"index"]): "index", id(dbs[b"events"]): "log"}

    def cursor(self, db: Any = None) -> Any:
        self._note(db)
        return self._txn.cursor(db=db)

    def get(self, key: bytes, default: Any = None, db: Any = None) -> Any:
        self._note(db)
        return self._txn.get(key, default, db=db)

    def _note(self, db: Any) -> None:
        if id(db) in self._names:
            self._seen.append(self._names[id(db)])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._txn, name)


def first(seen: list[str], *what: str) -> int:
    return min(seen.index(word) for word in what if word in seen)


@pytest.mark.parametrize("snapshot", ["sound", "damaged"])
def test_open_reads_the_log_and_index_only_once_the_probe_has(
    store_path: Path, monkeypatch: pytest.MonkeyPatch, snapshot: str
) -> None:
    """The caller maps the store once the child has walked what opening reads first, reads
    the log once it has walked the log's tail, and the index (the entries' seeks, or a
    history fold, which the index locates) once the walk has ended."""
    closed_store(store_path)
    if snapshot == "damaged":  # c2 is folded from its history
        key = struct.pack(">I", eno_of(store_path, "c2"))
        rewrite(store_path, b"snapshots", key, flip_byte(-1))
    seen: list[str] = []
    for word in ("opening", "walked", "join"):
        monkeypatch.setattr(probe.Walk, word, noting(seen, word, getattr(probe.Walk, word)))
    monkeypatch.setattr(log.Log, "__init__", noting(seen, "mapped", log.Log.__init__))
    real_reading = log.Log.reading

    @contextmanager
    def reading(self: log.Log) -> Iterator[Any]:
        with real_reading(self) as txn:
            yield Reads(txn, self.dbs, seen)

    monkeypatch.setattr(log.Log, "reading", reading)
    with evstore.open(store_path) as store:
        assert list(store.load_report.unknown) == []
        assert store.containers.get("c2").status.get().pid == 5
    assert seen[:2] == ["opening", "mapped"]
    assert first(seen, "walked", "join") < seen.index("log")
    assert seen.index("join") < seen.index("index")


def test_sound_entries_are_taken_in_while_the_walk_ends(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An open makes the entries whose fold is sound visible before it joins the walk (it
    would otherwise wait for the child idle), and a broken one, marked UNKNOWN, after."""
    crashed_store(store_path)
    eno = eno_of(store_path, "c1")
    rewrite(store_path, b"events", event_key_of(store_path, (eno, 3)), flip_byte(-1))
    seen: list[str] = []
    real_adopt = Store._adopt

    def adopt(self: Store, found: Any) -> None:
        found = list(found)
        seen.extend(f"adopted {f.id}" for f in found)
        real_adopt(self, found)

    monkeypatch.setattr(Store, "_adopt", adopt)
    monkeypatch.setattr(probe.Walk, "join", noting(seen, "joined", probe.Walk.join))
    with evstore.open(store_path) as store:
        assert store.containers.get("c1").status.get().unknown
        assert store.containers.get("c0").status.get().pid == 5
    joined = seen.index("joined")
    assert {"adopted c0", "adopted c4"} <= set(seen[:joined])
    assert "adopted c1" in seen[joined:]


def test_damage_found_in_the_index_walk_leaves_nothing_open(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Damage the child finds after its word (in the index) raises from the open, with the
    log closed and the child ended."""
    closed_store(store_path)
    walks: list[probe.Walk] = []
    closed: list[str] = []

    def failing_join(walk: probe.Walk) -> None:
        walks.append(walk)
        raise evstore.CorruptStoreError("index page damaged")

    monkeypatch.setattr(probe.Walk, "join", failing_join)
    monkeypatch.setattr(log.Log, "close", noting(closed, "closed", log.Log.close))
    with pytest.raises(evstore.CorruptStoreError, match="index page damaged"):
        evstore.open(store_path)
    assert walks and all(walk._child.returncode is not None for walk in walks)
    assert closed == ["closed"]


def test_a_walk_begun_early_is_collected_by_the_open(store_path: Path) -> None:
    closed_store(store_path)
    walk = probe.start(store_path)
    with evstore.open(store_path) as store:
        assert probe._started == {}
        assert walk._child.returncode is not None  # joined, not left running
        assert store.containers.get("c0").status.get().pid == 5


def test_counts_come_after_the_word(store_path: Path) -> None:
    closed_store(store_path)
    counts = probe.probe(store_path)
    assert counts is not None and counts[b"index"] > 0 and counts[b"snapshots"] > 0
    assert probe.Walk(store_path, "load").join() == counts  # joined without waiting for it
