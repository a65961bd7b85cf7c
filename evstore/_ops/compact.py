"""Compacting a store: optionally drop old history, then write the LMDB file again without
free pages, and swap it in.

LMDB reuses the pages it frees but never shrinks its file. ``compact`` copies the
environment with compaction (``env.copy(..., compact=True)``) to a directory inside the
store, makes the copy durable and renames it over ``data.mdb``. It needs the store to
itself: a writer holding it gives ``StoreLockedError`` (exactly as a second writer would
get), and so does any other process that has the store open, since a reader would go on
seeing the old file after the swap.

By default nothing of the history is dropped. With ``drop_before`` (a wall-clock time in
ns), one transaction first drops every event up to a new floor: the last position before
the first event stamped ``drop_before`` or later, and never beyond the checkpoint, so that
a snapshot covers every event dropped. Each entry that loses events keeps a base (its fold
at the floor); an entry deleted by then with no later event goes entirely, except the
highest-numbered one, whose snapshot and base keep its number taken (new entries are
numbered past every number a record names: see ``recovery``); an entry whose events do not
fold (damage) keeps them all. See ``retention`` for what readers do with it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import struct
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from evstore._core.codec import (
    FloorV1,
    RecordError,
    decode_event,
    event_key,
    index_key,
    parse_event_key,
    snapshot_key,
)
from evstore._core.errors import CorruptStoreError, StoreAccessError, StoreLockedError
from evstore._history.restarts import restart_seed
from evstore._storage.files import fsync_path
from evstore._storage.index import Positions
from evstore._storage.log import Log
from evstore._storage.recovery import Found, as_write, read_checkpoint, start_of_history
from evstore._storage.retention import delete_base, put_base, put_floor, read_floor
from evstore._storage.snapshots import snapshot_record

_MAP_SIZE = 1 << 20  # LMDB maps at least the file's size; this is only the floor
_FLOCK = struct.Struct("hhqqi")  # struct flock: type, whence, start, len, pid


@dataclass(frozen=True)
class DropReport:
    """What retention dropped in one compaction."""

    floor: int  # every event at or before this position is gone (0: none ever)
    floor_time: int  # the latest time among the events dropped so far
    events: int = 0  # events dropped by this compaction
    entries: int = 0  # entries that lost the start of their history (removed ones included)
    removed: list[str] = field(default_factory=list)  # deleted entries gone entirely
    kept: list[str] = field(default_factory=list)  # damaged entries whose history was kept


@dataclass(frozen=True)
class CompactReport:
    """The size of ``data.mdb`` before and after, and what retention dropped (if asked)."""

    before: int
    after: int
    dropped: DropReport | None = None

    @property
    def reclaimed(self) -> int:
        return self.before - self.after


def compact(path: str | os.PathLike[str], drop_before: int | None = None) -> CompactReport:
    """Compact the store at ``path`` in place, first dropping the history before
    ``drop_before`` (ns) that snapshots cover, when given (see the module docstring)."""
    path = Path(path)
    Log(path, readonly=True, map_size=_MAP_SIZE).close()  # not a store: a typed error, no file
    log = Log(path, readonly=False, map_size=_MAP_SIZE)  # a writer has it: StoreLockedError
    probe = os.open(path / "lock.mdb", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _check_alone(path, probe)
            before = (path / "data.mdb").stat().st_size  # the drop itself may grow the file
            dropped = drop_history(log, drop_before) if drop_before is not None else None
            return _copy_and_swap(log, path, before, dropped)
        finally:
            log.close()
    finally:
        # only now: closing any descriptor of lock.mdb drops this process's POSIX locks on
        # it, LMDB's own among them
        os.close(probe)


def _check_alone(path: Path, probe: int) -> None:
    """Raise unless no other process has the environment open.

    Every process with an LMDB environment open holds a shared lock on the first byte of
    its lock file; asking whether an exclusive one could be taken (F_GETLK) ignores this
    process's own locks and takes none.
    """
    request = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0)
    kind, _whence, _start, _len, pid = _FLOCK.unpack(fcntl.fcntl(probe, fcntl.F_GETLK, request))
    if kind != fcntl.F_UNLCK:
        raise StoreLockedError(
            f"{path}: process {pid} has the store open; close it before compacting"
        )


def _copy_and_swap(
    log: Log, path: Path, before: int, dropped: DropReport | None
) -> CompactReport:
    """Swap in a compacted copy of the data file, and a fresh reader table (the old one
    describes the old file; the next open initialises it), each with the mode, owner and
    group of the file it replaces, so that compacting never changes who may read."""
    data = path / "data.mdb"
    scratch = Path(tempfile.mkdtemp(prefix=".compact-", dir=path))  # 0700: private meanwhile
    try:
        log.copy_compacted(scratch)
        copy, table = scratch / "data.mdb", scratch / "lock.mdb"
        os.close(os.open(table, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
        for new, old in ((copy, data), (table, path / "lock.mdb")):
            _same_access(new, old)
        fsync_path(copy)
        os.replace(copy, data)
        os.replace(table, path / "lock.mdb")
        fsync_path(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return CompactReport(before, data.stat().st_size, dropped)


def _same_access(new: Path, old: Path) -> None:
    """Give ``new`` the mode, owner and group of ``old``; refuse if that is not allowed."""
    want, have = old.stat(), new.stat()
    try:
        if (want.st_uid, want.st_gid) != (have.st_uid, have.st_gid):
            os.chown(new, want.st_uid, want.st_gid)
    except PermissionError as exc:
        raise StoreAccessError(
            f"{old}: compacting needs to give the new file its owner and group"
            f" ({want.st_uid}:{want.st_gid}); run it as that owner or as root"
        ) from exc
    os.chmod(new, stat.S_IMODE(want.st_mode))


# --- retention ----------------------------------------------------------------------------


@dataclass
class _Plan:
    """What one retention run folded: entries by number, up to the new floor."""

    floor: FloorV1
    folds: dict[int, Found] = field(default_factory=dict)
    position: int = 0  # the new floor
    time: int = 0

    def kept(self) -> set[int]:
        return {eno for eno, found in self.folds.items() if found.reason is not None}


def drop_history(log: Log, before: int) -> DropReport:
    """Drop the history before ``before`` (ns) that snapshots cover, in one transaction.

    ``log`` must be this process's writable log of a store nobody else has open.
    """
    with log.reading() as txn:
        try:
            floor = read_floor(txn, log.dbs)
        except RecordError as exc:
            raise CorruptStoreError(f"{log.path}: retention floor: {exc}") from exc
        plan = _plan(txn, log.dbs, floor, read_checkpoint(txn, log.dbs), before)
    if plan.position <= floor.position:
        return DropReport(floor.position, floor.time)
    seed = restart_seed(log, floor, plan.position)
    new_floor = FloorV1(plan.position, max(floor.time, plan.time), seed)
    dropped, removed = log.write(partial(_drop, plan, new_floor, log.dbs))
    return DropReport(
        new_floor.position, new_floor.time, dropped, len(plan.folds) - len(plan.kept()),
        removed=sorted(removed), kept=sorted(_name(plan.folds[eno]) for eno in plan.kept()),
    )


def _plan(txn: Any, dbs: dict[bytes, Any], floor: FloorV1, checkpoint: int, before: int) -> _Plan:
    """Fold the events after the old floor up to the new one: the first event stamped
    ``before`` or later, or the checkpoint, stops it."""
    plan = _Plan(floor, position=floor.position)
    cursor = txn.cursor(db=dbs[b"events"])
    if not cursor.set_range(event_key(floor.position + 1, 0, 0)):
        return plan
    for key, value in cursor:
        try:
            pos, eno, seq = parse_event_key(key)
        except RecordError:
            continue  # a damaged key: left where it is, for verify to name
        stamp = _stamp(key, value)
        if pos > checkpoint or stamp >= before:
            break
        found = plan.folds.get(eno)
        if found is None:
            found = plan.folds[eno] = start_of_history(txn, dbs, eno)
        if found.reason is None:
            found.step_record(pos, seq, key, value)
        plan.position, plan.time = pos, max(plan.time, stamp)
    return plan


def _stamp(key: bytes, value: bytes) -> int:
    """An event's time; -1 for an unreadable one, so that damage never stops the floor (its
    entry's fold breaks, and that entry keeps its history)."""
    try:
        return decode_event(key, value).time
    except RecordError:
        return -1


def _drop(plan: _Plan, floor: FloorV1, dbs: dict[bytes, Any], txn: Any) -> tuple[int, list[str]]:
    """The write transaction: events and index entries out, bases and the floor in.
    Returns how many events went, and the ids of the entries that went entirely."""
    kept = plan.kept()
    dropped = 0
    cursor = txn.cursor(db=dbs[b"events"])
    cursor.set_range(event_key(plan.floor.position + 1, 0, 0))
    while cursor.key():
        try:
            pos, eno, seq = parse_event_key(cursor.key())
        except RecordError:
            cursor.next()
            continue
        if pos > floor.position:
            break
        if eno in kept or eno not in plan.folds:
            cursor.next()
            continue
        cursor.delete()
        txn.delete(index_key(eno, seq), db=dbs[b"index"])
        dropped += 1
    removed = []
    positions = Positions(txn, dbs)  # after the deletes: it reads the log as they left it
    top = max(plan.folds)
    for eno, found in plan.folds.items():
        if eno in kept:
            continue
        if eno != top and found.deleted and not _has_events_after(positions, eno, found.seq):
            txn.delete(snapshot_key(eno), db=dbs[b"snapshots"])
            delete_base(txn, dbs, eno)
            removed.append(_name(found))
        else:
            put_base(txn, dbs, eno, snapshot_record(as_write(found), found.pos))
    put_floor(txn, dbs, floor)
    return dropped, removed


def _has_events_after(positions: Positions, eno: int, seq: int) -> bool:
    try:
        return next(positions.of(eno, seq + 1), None) is not None
    except RecordError:
        return True  # a damaged index record: keep the entry, for verify to name


def _name(found: Found) -> str:
    return found.id or f"#{found.eno}"
