"""The per-entry index: where each entry's events lie in the log, written in bulk.

The log is ordered by position; an entry's history needs (entry, seq) -> position. One
index record per event put in every commit copied a second B-tree path (a leaf picked by
the entry, and its branches) into every synced commit: one writer ran at 1.23x the
per-file baseline with it and 1.53x without (full ``evstore bench`` runs). So the writer
keeps the index records of recent events in memory and puts them together, every
``index_every`` events and on a clean close, with meta's ``indexed``: every event at or
before that position has its index record. Readers take the events after it from the log
itself: that tail is short (about ``index_every`` events) and its keys already hold
everything an index record does. After it, only a new entry's first event has its index
record already, put in the same commit: so from its first commit on every entry is named by
two records, and losing either one neither hides it nor frees its number for another
entry (see ``recovery``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from evstore._core.codec import (
    STORE_MAGIC,
    STORE_MAGIC_V1,
    Pair,
    RecordError,
    event_key,
    index_key,
    index_record,
    pack_u64,
    parse_event_key,
    parse_index_key,
    unpack_u64,
)

_EVERYTHING = 2**64 - 1


def read_indexed(txn: Any, dbs: dict[bytes, Any]) -> int:
    """How far the index reaches. A first-format store indexed every event as it was
    written; a missing or damaged mark means 0, since reading more of the log is always
    correct."""
    meta = dbs[b"meta"]
    raw = txn.get(b"indexed", db=meta)
    if raw is None:
        return _EVERYTHING if txn.get(b"format", db=meta) == STORE_MAGIC_V1 else 0
    try:
        return unpack_u64(raw)
    except RecordError:
        return 0


def put_indexed(txn: Any, dbs: dict[bytes, Any], position: int) -> None:
    """Say how far the index reaches (and so that the store is of the second format)."""
    meta = dbs[b"meta"]
    txn.put(b"indexed", pack_u64(position), db=meta)
    txn.put(b"format", STORE_MAGIC, db=meta, overwrite=True)


def unindexed(txn: Any, dbs: dict[bytes, Any]) -> list[Pair]:
    """The index records the index does not hold yet: those of the log's tail."""
    return [index_record(key) for key in _tail_keys(txn, dbs, read_indexed(txn, dbs))]


def _tail_keys(txn: Any, dbs: dict[bytes, Any], indexed: int) -> Iterator[bytes]:
    if indexed >= _EVERYTHING:
        return
    cursor = txn.cursor(db=dbs[b"events"])
    if not cursor.set_range(event_key(indexed + 1, 0, 0)):
        return
    for key in cursor.iternext(keys=True, values=False):
        if len(key) == 16:  # a damaged key is left for verify to name
            yield key


class Positions:
    """Finds entries' events in one read transaction: the index, then the log's tail
    (read once, on first need, however many entries are looked up). ``before_index`` runs
    before each look-up reads the index (opening waits there for the probe's walk of it)."""

    def __init__(
        self, txn: Any, dbs: dict[bytes, Any], before_index: Callable[[], object] | None = None
    ) -> None:
        self._txn = txn
        self._dbs = dbs
        self._tail: dict[int, list[tuple[int, int]]] | None = None
        self._before_index = before_index

    def of(self, eno: int, first_seq: int) -> Iterator[tuple[int, int]]:
        """(seq, position) of each of ``eno``'s events from ``first_seq`` on, in order.

        Raises ``RecordError`` at a damaged index record."""
        if self._before_index is not None:
            self._before_index()
        last = first_seq - 1
        cursor = self._txn.cursor(db=self._dbs[b"index"])
        if cursor.set_range(index_key(eno, first_seq)):
            for key, value in cursor:
                key_eno, seq = parse_index_key(key)
                if key_eno != eno:
                    break
                try:
                    position = unpack_u64(value)
                except RecordError as exc:
                    raise RecordError(f"index of event {seq}: {exc}") from exc
                last = seq
                yield seq, position
        for seq, position in self._tail_of(eno):
            if seq > last:
                yield seq, position

    def _tail_of(self, eno: int) -> list[tuple[int, int]]:
        if self._tail is None:
            self._tail = {}
            for key in _tail_keys(self._txn, self._dbs, read_indexed(self._txn, self._dbs)):
                position, key_eno, seq = parse_event_key(key)
                self._tail.setdefault(key_eno, []).append((seq, position))
        return self._tail.get(eno, [])
