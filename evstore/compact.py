"""Compacting a store: write its LMDB file again without free pages, and swap it in.

LMDB reuses the pages it frees but never shrinks its file. ``compact`` copies the
environment with compaction (``env.copy(..., compact=True)``) to a directory inside the
store, makes the copy durable and renames it over ``data.mdb``. Nothing of the history is
dropped. It needs the store to itself: a writer holding it gives ``StoreLockedError``
(exactly as a second writer would get), and so does any other process that has the store
open, since a reader would go on seeing the old file after the swap.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import lmdb

from .errors import StoreLockedError, WriteError
from .log import Log

_MAP_SIZE = 1 << 20  # LMDB maps at least the file's size; this is only the floor
_FLOCK = struct.Struct("hhqqi")  # struct flock: type, whence, start, len, pid


@dataclass(frozen=True)
class CompactReport:
    """The size of ``data.mdb`` before and after."""

    before: int
    after: int

    @property
    def reclaimed(self) -> int:
        return self.before - self.after


def compact(path: str | os.PathLike[str]) -> CompactReport:
    """Compact the store at ``path`` in place (see the module docstring)."""
    path = Path(path)
    Log(path, readonly=True, map_size=_MAP_SIZE).close()  # not a store: a typed error, no file
    log = Log(path, readonly=False, map_size=_MAP_SIZE)  # a writer has it: StoreLockedError
    probe = os.open(path / "lock.mdb", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _check_alone(path, probe)
            return _copy_and_swap(log, path)
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


def _copy_and_swap(log: Log, path: Path) -> CompactReport:
    data = path / "data.mdb"
    before = data.stat().st_size
    scratch = Path(tempfile.mkdtemp(prefix=".compact-", dir=path))
    try:
        try:
            log.env.copy(str(scratch), compact=True)
        except lmdb.Error as exc:
            raise WriteError(f"{path}: compacted copy failed: {exc}") from None
        copy = scratch / "data.mdb"
        _fsync(copy, os.O_RDONLY)
        os.replace(copy, data)
        _fsync(path, os.O_RDONLY | os.O_DIRECTORY)
        # the lock file describes the old file; the next open starts a fresh one
        (path / "lock.mdb").unlink(missing_ok=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return CompactReport(before, data.stat().st_size)


def _fsync(target: Path, flags: int) -> None:
    fd = os.open(target, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
