"""Checking a store end to end: every record, every sequence, every snapshot.

``verify`` reads what ``open`` reads and more: checksums and format versions of all
records, each entry's sequence without gaps, global positions in order and without
holes, the index against the log, the checkpoint against the snapshots, and each
snapshot against the fold of the events it covers (the one fold: ``evstore._core.fold``;
each break is a problem, and the records up to its end are checked one by one). After
retention (``retention``) an entry's fold starts from its base, and positions up to the
floor may be missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from evstore._core.codec import (
    RecordError,
    SnapshotRecord,
    decode_event,
    decode_snapshot,
    event_key,
    pack_u64,
    parse_event_key,
    parse_index_key,
    parse_snapshot_key,
    unpack_u64,
)
from evstore._core.errors import CorruptStoreError
from evstore._storage.index import read_indexed
from evstore._storage.log import Log
from evstore._storage.probe import probe
from evstore._storage.recovery import Found, from_snapshot, read_checkpoint
from evstore._storage.retention import NO_FLOOR, read_bases, read_floor

Progress = Callable[[int], None]
MAX_PROBLEMS = 1_000


@dataclass
class VerifyReport:
    """What ``verify`` found; the store is sound when ``problems`` is empty."""

    events: int = 0
    entries: int = 0
    snapshots: int = 0
    index_entries: int = 0
    bases: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)


def verify(path: str | os.PathLike[str], progress: Progress | None = None) -> VerifyReport:
    """Check the store at ``path`` (read-only, beside any writer). Every page is walked in a
    child process first (``probe``), so a store damaged badly enough to crash its reader
    gives ``CorruptStoreError`` instead."""
    count_events(path)
    return check_in_process(path, progress)


def count_events(path: str | os.PathLike[str]) -> int:
    """How many events the store holds (to size a progress bar), as the probe counted them
    in its child: this process maps nothing of the store here."""
    counts = probe(path, "all")
    if counts is None:  # LMDB would not open it in the child: nor here, and Log says why, typed
        Log(path, readonly=True, map_size=1 << 20).close()
        raise CorruptStoreError(f"{path}: store file is damaged or unreadable")
    if b"events" not in counts:
        raise CorruptStoreError(f"{path}: not an evstore store (missing databases)")
    return counts[b"events"]


def check_in_process(
    path: str | os.PathLike[str], progress: Progress | None = None
) -> VerifyReport:
    """``verify`` in this process, for a caller that has just probed the store (with
    ``count_events``): the checking itself, reading every record."""
    log = Log(path, readonly=True, map_size=1 << 20)
    try:
        with log.reading() as txn:
            return _check(txn, log.dbs, progress)
    finally:
        log.close()


def _check(txn: Any, dbs: dict[bytes, Any], progress: Progress | None) -> VerifyReport:
    report = VerifyReport()
    checkpoint = read_checkpoint(txn, dbs)
    snapshots = _snapshots(txn, dbs[b"snapshots"], report)
    floor = _floor(txn, dbs, checkpoint, report)
    folds = _bases(txn, dbs, snapshots, report)
    before = _events(txn, dbs, snapshots, (checkpoint, floor), folds, report, progress)
    report.entries = len(folds)
    for eno, snapshot in snapshots.items():
        found = folds.get(eno)
        if found is None or found.max_seq < snapshot.seq:
            report.problem(f"entry #{eno}: snapshot at seq {snapshot.seq} beyond its events")
    for eno, pos in before.items():
        covered = snapshots[eno].position if eno in snapshots else 0
        if covered < pos:
            name = _name(folds[eno], snapshots.get(eno))
            report.problem(f"entry {name}: event at {pos} before checkpoint {checkpoint} "
                           "not covered by a snapshot")
    _check_index(txn, dbs, report)
    return report


def _snapshots(txn: Any, db: Any, report: VerifyReport) -> dict[int, SnapshotRecord]:
    found: dict[int, SnapshotRecord] = {}
    for key, value in txn.cursor(db=db):
        report.snapshots += 1
        try:
            eno = parse_snapshot_key(key)
        except RecordError as exc:
            report.problem(f"snapshot: {exc}")
            continue
        try:
            found[eno] = decode_snapshot(key, value)
        except RecordError as exc:
            report.problem(f"entry #{eno}: snapshot: {exc}")
    return found


def _floor(txn: Any, dbs: dict[bytes, Any], checkpoint: int, report: VerifyReport) -> int:
    try:
        floor = read_floor(txn, dbs).position
    except RecordError as exc:
        report.problem(f"retention floor: {exc}")
        return NO_FLOOR.position
    if floor > checkpoint:
        report.problem(f"retention floor {floor} beyond checkpoint {checkpoint}")
    return floor


def _bases(
    txn: Any, dbs: dict[bytes, Any], snapshots: dict[int, SnapshotRecord], report: VerifyReport
) -> dict[int, Found]:
    """The folds of the entries whose history starts at a base, as far as the base goes."""
    bases, damaged = read_bases(txn, dbs)
    report.bases = len(bases) + len(damaged)
    for eno, reason in damaged.items():
        report.problem(f"entry #{eno}: {reason}")
    folds = {eno: from_snapshot(eno, base) for eno, base in bases.items()}
    for eno, found in folds.items():
        _compare_snapshot(found, snapshots.get(eno), report)
    return folds


def _events(
    txn: Any, dbs: dict[bytes, Any], snapshots: dict[int, SnapshotRecord],
    bounds: tuple[int, int], folds: dict[int, Found], report: VerifyReport,
    progress: Progress | None,
) -> dict[int, int]:
    """Fold every entry on from ``folds``; return each entry's last position at or before
    the checkpoint. ``bounds`` is (checkpoint, retention floor)."""
    checkpoint, floor = bounds
    before: dict[int, int] = {}
    expected = 1
    for key, value in txn.cursor(db=dbs[b"events"]):
        report.events += 1
        if progress is not None and report.events % 10_000 == 0:
            progress(10_000)
        if len(key) != 16:
            report.problem(f"log key of {len(key)} bytes: {key.hex()}")
            continue
        pos, eno, seq = parse_event_key(key)
        first = max(expected, floor + 1) if pos > expected else expected
        if pos != expected and first < pos:  # retention dropped those up to the floor
            report.problem(f"positions {first}..{pos - 1} missing")
        expected = pos + 1
        if pos <= checkpoint:
            before[eno] = pos
        found = folds.setdefault(eno, Found(eno=eno))
        if found.reason is not None:  # a snapshot past the break ends it, as for every reader
            found.heal(snapshots.get(eno), pos - 1)
        if found.reason is None:
            found.step_record(pos, seq, key, value)
            if found.reason is not None:
                report.problem(f"entry {_name(found, snapshots.get(eno))}: {found.reason}")
            else:
                _compare_snapshot(found, snapshots.get(eno), report)
        else:
            _check_record(key, value, pos, seq, _name(found, snapshots.get(eno)), found, report)
    if progress is not None:
        progress(report.events % 10_000)
    return before


def _check_record(
    key: bytes, value: bytes, pos: int, seq: int, name: str, found: Found, report: VerifyReport
) -> None:
    """After an entry's fold broke, still check each later record on its own."""
    found.max_seq = max(found.max_seq, seq)
    try:
        decode_event(key, value)
    except RecordError as exc:
        report.problem(f"entry {name}: event {seq} at position {pos}: {exc}")


def _compare_snapshot(found: Found, snapshot: SnapshotRecord | None, report: VerifyReport) -> None:
    if snapshot is None or snapshot.seq != found.seq:
        return
    fold = (found.pos, found.deleted, found.metadata, found.status)
    kept = (snapshot.position, snapshot.deleted, snapshot.metadata, snapshot.status)
    if fold != kept:
        report.problem(
            f"entry {_name(found)}: snapshot at seq {snapshot.seq} differs from the fold of its"
            f" events: {msgspec.to_builtins(kept)} != {msgspec.to_builtins(fold)}"
        )


def _check_index(txn: Any, dbs: dict[bytes, Any], report: VerifyReport) -> None:
    """Each index record points at its event, and the index holds every event up to the
    position it reaches (later ones wait in the writer's memory: see ``index``)."""
    events = dbs[b"events"]
    indexed = read_indexed(txn, dbs)
    ahead = 0  # new entries' first events, indexed with them
    for key, value in txn.cursor(db=dbs[b"index"]):
        report.index_entries += 1
        try:
            (eno, seq), pos = parse_index_key(key), unpack_u64(value)
        except RecordError as exc:
            report.problem(f"index: {exc}")
            continue
        if txn.get(event_key(pos, eno, seq), db=events) is None:
            report.problem(f"index: entry #{eno} seq {seq} points at missing position {pos}")
        ahead += pos > indexed
    covered = report.events - _events_after(txn, events, indexed)
    if report.index_entries - ahead != covered:
        report.problem(f"index has {report.index_entries} entries for {covered} events"
                       f" up to position {indexed}")


def _events_after(txn: Any, events: Any, position: int) -> int:
    """How many log records lie after ``position``: counting only the short unindexed tail
    spares a second pass over the whole log."""
    cursor = txn.cursor(db=events)
    if position >= 2**64 - 1 or not cursor.set_range(pack_u64(position + 1)):
        return 0
    return sum(1 for _key in cursor.iternext(keys=True, values=False))


def _name(found: Found, snapshot: SnapshotRecord | None = None) -> str:
    """The id, from the fold or else from the snapshot; ``#n`` when neither has it."""
    if found.id is None and snapshot is not None:
        return snapshot.metadata.id
    return found.id or f"#{found.eno}"
