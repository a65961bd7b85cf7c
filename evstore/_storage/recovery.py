"""Opening a store: rebuild every entry from its snapshot and the log after the checkpoint.

Damage stays local. A record that fails its checksum, has an unknown format version or
is missing from its entry's sequence breaks that entry's fold (the one rule every reader
follows: ``evstore._core.fold``): the entry loads as UNKNOWN with the last good fold and a
reason, and every other entry loads exactly. A damaged or lost snapshot falls back to
folding the entry's whole history (from its base, when retention dropped the start of it:
see ``retention``). Nothing here writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from evstore._core.codec import (
    Pair,
    RecordError,
    SnapshotRecord,
    decode_snapshot,
    event_key,
    index_key,
    parse_event_key,
    parse_index_key,
    parse_snapshot_key,
    unpack_u64,
)
from evstore._core.fold import Fold, mark_unknown, snapshot_fields
from evstore._storage.index import Positions, unindexed
from evstore._storage.log import Log
from evstore._storage.probe import Walk
from evstore._storage.retention import NO_FLOOR, base_enos, read_base, read_floor
from evstore._storage.snapshots import Dirty, Write

_LAST_ENO = 2**32 - 1  # entry numbers are 32-bit in keys


class LoadReport(msgspec.Struct):
    """What the last open did."""

    loaded: int = 0
    unknown: dict[str, str] = {}
    events_replayed: int = 0
    snapshots_used: int = 0
    seconds: float = 0.0


class Found(Fold):
    """One entry as rebuilt so far: its fold (``evstore._core.fold``) and its number."""

    __slots__ = ("eno", "first_replayed")

    def __init__(self, *fold: Any, eno: int = 0, first_replayed: int | None = None) -> None:
        super().__init__(*fold)
        self.eno = eno
        self.first_replayed = first_replayed


class Recovered(msgspec.Struct):
    entries: dict[int, Found]
    report: LoadReport
    last_pos: int
    checkpoint: int
    snap_seq: dict[int, int] = msgspec.field(default_factory=dict)
    unindexed: list[Pair] = msgspec.field(default_factory=list)  # index records not written yet
    dirty: dict[int, Dirty] = msgspec.field(default_factory=dict)


def load(
    log: Log, walk: Walk | None = None,
    meanwhile: Callable[[dict[int, Found]], object] | None = None,
) -> Recovered:
    """Rebuild every entry. With the probe's ``walk`` (``probe``), begun and heard to have
    walked what opening reads first, this reads the log once the child has walked it too,
    and the index once the walk has ended: opening reads the rest meanwhile. ``meanwhile``
    runs just before the index is read, with the entries rebuilt so far, so that the caller
    may take in those whose fold is sound while the walk ends: nothing after changes them
    (the index only names entries that lost their snapshot, and only broken folds are
    marked UNKNOWN)."""
    started = time.perf_counter()
    report = LoadReport()
    before_index = walk.join if walk is not None else None
    with log.reading() as txn:
        dbs = log.dbs
        checkpoint = read_checkpoint(txn, dbs)
        entries, bad = _read_snapshots(txn, dbs[b"snapshots"], report)
        snap_seq = {eno: found.seq for eno, found in entries.items()}
        positions = Positions(txn, dbs, before_index)
        for eno, reason in bad.items():
            entries[eno] = _fold_history(txn, dbs, positions, eno, reason)
        if walk is not None:
            walk.walked()
        _replay(txn, dbs, positions, entries, bad, checkpoint, report)
        last_pos = last_position(txn, dbs, report)
        tail = unindexed(txn, dbs)
        if meanwhile is not None:
            meanwhile(entries)
        if before_index is not None:
            before_index()
        for eno in sorted(_unknown_named(txn, dbs, tail, entries)):
            bad[eno] = "snapshot missing"
            entries[eno] = _fold_history(txn, dbs, positions, eno, bad[eno])
    recovered = Recovered(entries, report, last_pos, checkpoint, snap_seq, tail)
    recovered.dirty = _dirty(entries, bad, checkpoint)
    _finish_report(recovered)
    report.seconds = time.perf_counter() - started
    return recovered


def _unknown_named(
    txn: Any, dbs: dict[bytes, Any], tail: list[Pair], known: dict[int, Found]
) -> set[int]:
    """Every entry number not in ``known`` that an index record, a log record of the
    unindexed tail or a retention base names. An entry that neither a snapshot nor the
    replay brought back lost its snapshot (its events all lie before the checkpoint), and
    is rebuilt from these: every entry is named by two records from its first commit on
    (see ``index``), so no single lost record hides it, and its number stays taken. The
    index is sought once per unknown number and once past each run of known ones: two
    seeks for a sound store, whatever its size."""
    named = {parse_index_key(key)[0] for key, _position in tail}
    named.update(base_enos(txn, dbs))
    cursor = txn.cursor(db=dbs[b"index"])
    more = cursor.first()
    while more:
        try:
            eno = parse_index_key(cursor.key())[0]
        except RecordError:  # a damaged key, for verify to name
            more = cursor.next()
            continue
        if eno in known:
            while eno in known:  # a lookup per known entry, not a seek and a parse
                eno += 1
        else:
            named.add(eno)
            eno += 1
        more = eno <= _LAST_ENO and cursor.set_range(index_key(eno, 0))
    return named - known.keys()


def read_checkpoint(txn: Any, dbs: dict[bytes, Any]) -> int:
    """The checkpoint; 0 (replay everything, which is always safe) if missing or damaged."""
    raw = txn.get(b"checkpoint", db=dbs[b"meta"])
    try:
        return unpack_u64(raw) if raw else 0
    except RecordError:
        return 0


def last_position(txn: Any, dbs: dict[bytes, Any], report: LoadReport | None = None) -> int:
    """The last position ever written: the log's last key, or, when retention dropped the
    newest events too, the checkpoint or floor, so that positions never repeat."""
    cursor = txn.cursor(db=dbs[b"events"])
    last = parse_event_key(cursor.key())[0] if cursor.last() else 0
    try:
        floor = read_floor(txn, dbs).position
    except RecordError as exc:
        if report is not None:
            report.unknown["retention floor"] = str(exc)
        floor = NO_FLOOR.position
    return max(last, read_checkpoint(txn, dbs), floor)


def _read_snapshots(
    txn: Any, db: Any, report: LoadReport
) -> tuple[dict[int, Found], dict[int, str]]:
    entries: dict[int, Found] = {}
    bad: dict[int, str] = {}
    for key, value in txn.cursor(db=db):
        try:
            eno = parse_snapshot_key(key)
        except RecordError as exc:
            report.unknown[f"snapshot {key.hex()}"] = str(exc)
            continue
        try:
            record = decode_snapshot(key, value)
        except RecordError as exc:
            bad[eno] = f"snapshot: {exc}"
            continue
        entries[eno] = from_snapshot(eno, record)
        report.snapshots_used += 1
    return entries, bad


def from_snapshot(eno: int, record: SnapshotRecord) -> Found:
    """An entry as a snapshot (or a retention base) records it."""
    return Found(*snapshot_fields(record), eno=eno)


def start_of_history(txn: Any, dbs: dict[bytes, Any], eno: int) -> Found:
    """Where a fold of ``eno``'s history starts: empty, or its base when retention dropped
    the start of it (broken off when that base is unreadable)."""
    try:
        base = read_base(txn, dbs, eno)
    except RecordError as exc:
        found = Found(eno=eno)
        found.break_off(f"base: {exc}")
        return found
    return Found(eno=eno) if base is None else from_snapshot(eno, base)


def _fold_history(
    txn: Any, dbs: dict[bytes, Any], positions: Positions, eno: int, reason: str
) -> Found:
    """Rebuild an entry whose snapshot is damaged or gone from every event it still has,
    starting from its base when retention dropped the start of it."""
    found = start_of_history(txn, dbs, eno)
    if found.reason is not None:
        found.reason = f"{reason}; {found.reason}"
        return found
    try:
        for seq, pos in positions.of(eno, found.seq + 1):
            ekey = event_key(pos, eno, seq)
            found.step_record(pos, seq, ekey, txn.get(ekey, db=dbs[b"events"]))
            if found.reason is not None:
                break
    except RecordError as exc:
        found.break_off(str(exc))
    if found.reason is not None:
        found.reason = f"{reason}; {found.reason}"
    elif found.seq == 0:
        found.break_off(f"{reason}; no history to rebuild from")
    return found


def _replay(
    txn: Any, dbs: dict[bytes, Any], positions: Positions, entries: dict[int, Found],
    bad: dict[int, str], checkpoint: int, report: LoadReport,
) -> None:
    cursor = txn.cursor(db=dbs[b"events"])
    if not cursor.set_range(event_key(checkpoint + 1, 0, 0)):
        return
    replayed = 0  # counted here, set once: this loop runs once per event
    for key, value in cursor:
        try:
            pos, eno, seq = parse_event_key(key)
        except RecordError as exc:
            report.unknown[f"log record {key.hex()}"] = str(exc)
            continue
        found = entries.get(eno)
        if found is None and seq != 1:  # its snapshot is gone: rebuild from its history
            bad[eno] = "snapshot missing"
            found = entries[eno] = _fold_history(txn, dbs, positions, eno, bad[eno])
        elif found is None:
            found = entries[eno] = Found(eno=eno)
        if pos <= found.pos:
            continue
        if found.reason is not None:
            found.max_seq = max(found.max_seq, seq)
            continue
        if found.first_replayed is None:
            found.first_replayed = pos
        found.step_record(pos, seq, key, value)
        replayed += 1
    report.events_replayed += replayed


def _dirty(entries: dict[int, Found], bad: dict[int, str], checkpoint: int) -> dict[int, Dirty]:
    """Which entries the log holds beyond their snapshot, oldest first, for the policy."""
    dirty: list[tuple[int, int, Dirty]] = []
    for eno, found in entries.items():
        first = found.first_replayed or checkpoint + 1
        if found.reason is not None:  # replay must keep starting before its damage
            dirty.append((first, eno, Dirty(first, None, 0, pinned=True)))
        elif found.first_replayed is not None or eno in bad:
            dirty.append((first, eno, Dirty(first, as_write(found), found.pos)))
    dirty.sort(key=lambda item: item[0])
    return {eno: entry for _first, eno, entry in dirty}


def as_write(found: Found) -> Write:
    """A snapshot-to-be of ``found`` as it stands (its ``payload`` unused)."""
    assert found.entity is not None and found.metadata is not None and found.status is not None
    return Write(
        entity=found.entity, eno=found.eno, seq=found.seq, time=found.time, payload=b"",
        metadata=found.metadata, status=found.status, deleted=found.deleted,
    )


def _finish_report(recovered: Recovered) -> None:
    report = recovered.report
    for found in recovered.entries.values():
        if found.reason is not None:
            report.unknown[found.id or f"#{found.eno}"] = found.reason
            if found.status is not None:
                found.status = mark_unknown(found.status)
                found.deleted = False
        if found.status is not None and not found.deleted:
            report.loaded += 1
