"""A store's files on disk, before and around LMDB: where they are and their modes, the
writer lock, a new store's creation (whole or not at all), the checks made before LMDB maps
a file, and what an ``OSError`` of them means for the caller. ``log`` opens the environment
over what this module made and checked."""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import stat
import struct
from pathlib import Path
from typing import Any

import lmdb

from evstore._core.errors import (
    CorruptStoreError,
    DiskFullError,
    EvstoreError,
    StoreAccessError,
    StoreLockedError,
    StoreNotFoundError,
    WriteError,
)

DB_NAMES = (b"events", b"index", b"snapshots", b"meta")
DATA_FILE = "data.mdb"
_LOCK_FILE = "writer.lock"
_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
ACCESS_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
_READER_TABLE = "lock.mdb"  # LMDB's, where even a read-only process registers its readers
_SCRATCH = ".creating"  # where a new store's data file is made (see ``create``)
_CREATION_LEFTOVERS = {_LOCK_FILE, _SCRATCH}  # what a creation cut short leaves
NEW_STORE_MODE = 0o600  # private to the owner unless the caller asks otherwise

STORE_ID = b"store_id"  # 16 bytes of a random UUID, put when the store is created



class Modes:
    """Permission bits of a store's files: ``data.mdb`` and ``writer.lock`` get ``mode``;
    LMDB's reader table also write wherever it may be read (a reader writes it); the
    directory search wherever read. The data file, reader table and directory get them
    exactly, whatever the umask, since the caller asked for them."""

    def __init__(self, mode: int) -> None:
        self.file = mode
        self.readers = mode | (mode & 0o444) >> 1
        self.directory = mode | (mode & 0o444) >> 2

    @classmethod
    def of(cls, path: Path) -> Modes:
        return cls(stat.S_IMODE((path / DATA_FILE).stat().st_mode))


def check_path(path: Path, readonly: bool, modes: Modes) -> str:
    try:
        return _checked_path(path, readonly, modes)
    except PermissionError as exc:  # a directory or data file this process may not read
        raise access_error(path, exc.errno or errno.EACCES) from exc


def _checked_path(path: Path, readonly: bool, modes: Modes) -> str:
    if path.exists() and not path.is_dir():
        raise CorruptStoreError(f"{path}: not an evstore store (not a directory)")
    has_data = (path / DATA_FILE).exists()
    if readonly and not has_data:
        raise StoreNotFoundError(f"{path}: no evstore store there")
    if not has_data and path.exists() and set(os.listdir(path)) - _CREATION_LEFTOVERS:
        raise CorruptStoreError(f"{path}: not an evstore store (directory has other files)")
    if has_data:
        check_size(path)
    if not readonly:
        _make_dirs(path, modes.directory)
    return os.path.realpath(path)


def _make_dirs(path: Path, mode: int) -> None:
    """Create ``path`` (and its missing parents), each made durable in its parent."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        if directory == missing[0]:
            os.chmod(directory, mode)
        fsync_path(directory.parent)


def create(path: Path, modes: Modes) -> None:
    """Write a new store's first commit in a scratch directory and rename its data file in,
    so that a crash leaves either no ``data.mdb`` or a whole one (never an empty one); then
    make the name durable, before any write can be acknowledged. Caller holds the writer
    lock. Nothing to do when the store exists."""
    if (path / DATA_FILE).exists():
        return
    import shutil  # here, not with the module (see ``first_commit``)

    scratch = path / _SCRATCH
    try:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        _first_data_file(scratch)
        os.chmod(scratch / DATA_FILE, modes.file)
        os.replace(scratch / DATA_FILE, path / DATA_FILE)
        fsync_path(path)
    except (lmdb.Error, OSError) as exc:  # a full disk, most likely
        raise write_error(exc, path) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _first_data_file(directory: Path) -> None:
    """A data file holding a new store's first commit, synced, in ``directory``."""
    env = lmdb.open(
        str(directory), map_size=1 << 20, max_dbs=len(DB_NAMES), lock=False,
        sync=True, metasync=True,
    )
    try:
        with env.begin(write=True) as txn:
            first_commit(env, txn)
    finally:
        env.close()


def make_reader_table(path: Path, modes: Modes) -> None:
    """Create LMDB's reader table with its mode, where it is missing (LMDB would give it the
    data file's mode, and a reader needs to write it)."""
    try:
        fd = os.open(path / _READER_TABLE, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    except OSError:  # there already, or not ours to create: LMDB says what is wrong
        return
    try:
        os.fchmod(fd, modes.readers)
    finally:
        os.close(fd)


def fsync_path(target: Path) -> None:
    """fsync a file or directory by name (a directory's, to make names in it durable)."""
    fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def take_writer_lock(path: Path, modes: Modes) -> int:
    try:
        fd = os.open(path / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, modes.file)
    except OSError as exc:
        if exc.errno in ACCESS_ERRNOS:
            raise access_error(path, exc.errno) from exc
        raise CorruptStoreError(
            f"{path}: cannot open its lock file {_LOCK_FILE}: {exc.strerror}"
            f"{' (it must be a regular file)' if exc.errno == errno.EISDIR else ''}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StoreLockedError(f"{path}: another writer has this store open") from exc
    return fd


def first_commit(env: Any, txn: Any) -> dict[bytes, Any]:
    """A new store's databases and format marks."""
    # the record format (msgspec with it) and what only creation needs load here, not with
    # this module: a reading command begins its probe, which needs this module, before
    # any of them has loaded
    import uuid

    from evstore._core.codec import STORE_MAGIC
    from evstore._storage.index import put_indexed

    dbs = {name: env.open_db(name, txn=txn) for name in DB_NAMES}
    txn.put(b"format", STORE_MAGIC, db=dbs[b"meta"])
    txn.put(STORE_ID, uuid.uuid4().bytes, db=dbs[b"meta"])
    put_indexed(txn, dbs, 0)
    return dbs


def write_error(exc: BaseException, path: Path) -> EvstoreError:
    text = str(exc)
    full = any(os.strerror(code) in text for code in _FULL_ERRNOS)
    # a write cut short by a full disk or a file-size limit reaches LMDB as EIO
    if full or (os.strerror(errno.EIO) in text and _no_room(path)):
        return DiskFullError(f"commit failed, no room to write: {text}")
    return WriteError(f"commit failed: {text}")


def _no_room(path: Path) -> bool:
    stats = os.statvfs(path)
    if stats.f_bavail * stats.f_frsize < 1 << 20:
        return True
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    size = (path / DATA_FILE).stat().st_size
    return limit != resource.RLIM_INFINITY and size + (1 << 20) > limit


def access_error(path: Path, code: int) -> StoreAccessError:
    """Say what access is missing: even a read-only open writes LMDB's reader table."""
    return StoreAccessError(
        f"{path}: {os.strerror(code)}: opening a store needs read access to {DATA_FILE} and"
        f" write access to {_READER_TABLE} (LMDB registers readers there, even read-only"
        " ones); writing also needs write access to the directory and its other files"
    )


_META = struct.Struct("<II")  # magic, version at the start of an LMDB meta page's body
_META_LAST = struct.Struct("<QQ")  # last page number, transaction id (64-bit layout)
_LMDB_MAGIC = 0xBEEFC0DE


def check_size(path: Path) -> None:
    """Refuse a data file shorter than its newest meta page says, before LMDB maps it.

    LMDB trusts its page numbers; reading a page past the end of the file would kill the
    process with SIGBUS, so a truncated file must be caught here.
    """
    data_file = path / DATA_FILE
    with open(data_file, "rb") as handle:
        head = handle.read(2 * 4096)
    size = data_file.stat().st_size
    metas = []
    for offset in (0, _page_size(head)):
        if len(head) >= offset + 152 and _META.unpack_from(head, offset + 16)[0] == _LMDB_MAGIC:
            last_page, txnid = _META_LAST.unpack_from(head, offset + 136)
            metas.append((txnid, last_page))
    if not metas:
        if size == 0:  # evstore renames a data file in only once it holds a commit
            raise CorruptStoreError(
                f"{path}: {DATA_FILE} is empty (0 bytes): its contents were lost or it was"
                " never a store; restore it from a copy, or remove the directory to start anew"
            )
        raise CorruptStoreError(f"{path}: not an evstore store (no LMDB header)")
    _txnid, last_page = max(metas)
    needed = (last_page + 1) * _page_size(head)
    if size < needed:
        raise CorruptStoreError(f"{path}: store file is truncated ({size} of {needed} bytes)")


def _page_size(head: bytes) -> int:
    """The page size LMDB recorded (in the free list's pad field of the first meta page)."""
    if len(head) >= 44:
        size = int(struct.unpack_from("<I", head, 40)[0])
        if size in (4096, 8192, 16384, 32768, 65536):
            return size
    return 4096
