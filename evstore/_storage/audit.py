"""Reading the log back: one id's history and the global feed, as ``Event`` values.

Reads go in short transactions of a page each, so a long export never pins old pages
that the writer would otherwise reuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from evstore._core.codec import (
    ContainerEventV1,
    EventRecord,
    RecordError,
    SnapshotRecord,
    decode_event,
    decode_snapshot,
    event_key,
    parse_event_key,
    snapshot_key,
)
from evstore._core.events import ENTITY_NAMES, KIND_NAMES, Entity, Event, Kind, changes_dict
from evstore._storage.index import Positions
from evstore._storage.log import Log

PAGE = 1_000
Names = dict[int, tuple[Entity, str]]


def to_event(key: bytes, value: bytes, names: Names) -> Event | None:
    """Decode one log record; None when it is damaged (``verify`` reports those), as is a
    ``created`` without the metadata that names its entry (a fold breaks on either)."""
    try:
        position, eno, seq = parse_event_key(key)
        record = decode_event(key, value)
    except RecordError:
        return None
    if record.kind == Kind.CREATED:
        if record.metadata is None:
            return None
        entity = Entity.CONTAINER if isinstance(record, ContainerEventV1) else Entity.SANDBOX
        names[eno] = (entity, record.metadata.id)
    entity, ident = names.get(eno, (Entity.CONTAINER, f"#{eno}"))
    return Event(
        position=position, entity=ENTITY_NAMES[entity], id=ident, seq=seq, time=record.time,
        type=KIND_NAMES[Kind(record.kind)], changes=changes_dict(record.changes),
    )


def events(log: Log, names: Names, since: int = 0) -> Iterator[Event]:
    """Every event with ``position > since``, in order (damaged records left out)."""
    for page in _raw_pages(log, since):
        yield from _events_of(page, names)


def read_page(log: Log, names: Names, since: int) -> tuple[list[Event], int]:
    """The events of the next page of records after ``since``, and the position reached
    (past damaged records too, so a follower never stalls behind one)."""
    page = next(_raw_pages(log, since), [])
    return _events_of(page, names), _position_of(page[-1][0]) if page else since


def records(log: Log, since: int = 0) -> Iterator[tuple[int, int, EventRecord]]:
    """(position, entry number, record) of every readable event after ``since``, in order.

    The records themselves, for readers that need what ``Event`` leaves out (the metadata a
    ``created`` record carries). Damaged records are skipped, as ``events`` skips them.
    """
    for page in _raw_pages(log, since):
        for key, value in page:
            try:
                position, eno, _seq = parse_event_key(key)
                record = decode_event(key, value)
            except RecordError:
                continue
            yield position, eno, record


def _raw_pages(log: Log, since: int) -> Iterator[list[tuple[bytes, bytes]]]:
    """The log's raw records after ``since``, ``PAGE`` at a time, each page read in its own
    short transaction."""
    start = event_key(since + 1, 0, 0)
    while True:
        with log.reading() as txn:
            cursor = txn.cursor(db=log.dbs[b"events"])
            page = list(islice(cursor, PAGE)) if cursor.set_range(start) else []
        if page:
            yield page
        if len(page) < PAGE:
            return
        start = page[-1][0] + b"\0"  # the next key after the last one, even a malformed one


def _events_of(page: list[tuple[bytes, bytes]], names: Names) -> list[Event]:
    found = []
    for key, value in page:
        event = to_event(key, value, names)
        if event is not None:
            found.append(event)
    return found


def _position_of(key: bytes) -> int:
    return int.from_bytes(key[:8], "big")


def learn_names(log: Log, names: Names) -> None:
    """Read the feed for the ids written after this (read-only) store was opened."""
    for _event in events(log, names):
        pass


def history(log: Log, names: Names, ident: str) -> list[Event]:
    """Every event of ``ident`` (containers and sandboxes alike), oldest first."""
    enos = enos_of(names, ident)
    if not enos:  # perhaps added after this (read-only) store was opened: learn its number
        learn_names(log, names)
        enos = enos_of(names, ident)
    found: list[Event] = []
    with log.reading() as txn:
        positions = Positions(txn, log.dbs)
        for eno in enos:
            found.extend(_entry_events(txn, log, names, positions, eno))
    found.sort(key=lambda event: event.position)
    return found


def _entry_events(
    txn: Any, log: Log, names: Names, positions: Positions, eno: int
) -> list[Event]:
    """``eno``'s events, found through the index. A damaged index record, or one that
    points at no event, makes this read them from the log itself: its keys hold what the
    index does, so history stays exactly what the feed shows (``verify`` names the damage)."""
    try:
        return list(_indexed_events(txn, log, names, positions, eno))
    except RecordError:
        return _scanned_events(txn, log, names, eno)


def _indexed_events(
    txn: Any, log: Log, names: Names, positions: Positions, eno: int
) -> Iterator[Event]:
    events_db = log.dbs[b"events"]
    for seq, position in positions.of(eno, 0):
        ekey = event_key(position, eno, seq)
        raw = txn.get(ekey, db=events_db)
        if raw is None:
            raise RecordError(f"index of event {seq} points at missing position {position}")
        event = to_event(ekey, raw, names)
        if event is not None:
            yield event


def _scanned_events(txn: Any, log: Log, names: Names, eno: int) -> list[Event]:
    found = []
    for key, value in txn.cursor(db=log.dbs[b"events"]):
        if len(key) == 16 and parse_event_key(key)[1] == eno:
            event = to_event(key, value, names)
            if event is not None:
                found.append(event)
    return found


def snapshot_of(log: Log, eno: int) -> SnapshotRecord | None:
    """Entry ``eno``'s snapshot, which ends a break in its fold (``evstore._core.fold``);
    None when it has none or it is damaged (``verify`` names that)."""
    key = snapshot_key(eno)
    with log.reading() as txn:
        raw = txn.get(key, db=log.dbs[b"snapshots"])
    try:
        return decode_snapshot(key, raw) if raw is not None else None
    except RecordError:
        return None


def enos_of(names: Names, ident: str) -> list[int]:
    return [eno for eno, (_entity, name) in list(names.items()) if name == ident]
