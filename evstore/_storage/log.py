"""The LMDB environment behind a store: opening, locking, growing, and its transactions.

One environment per path per process (LMDB's rule), shared by every ``Store`` open on it
in this process; one writer per store across processes, enforced with ``flock`` on a
lock file beside the data, since LMDB itself would just queue a second writer.
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import shutil
import stat
import struct
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from evstore._core.codec import STORE_MAGIC, STORE_MAGIC_V1
from evstore._core.errors import (
    CorruptStoreError,
    DiskFullError,
    EvstoreError,
    StoreAccessError,
    StoreClosedError,
    StoreLockedError,
    StoreNotFoundError,
    WriteError,
)
from evstore._storage.index import put_indexed

T = TypeVar("T")

DEFAULT_MAP_SIZE = 1 << 30  # address space only: LMDB files grow as pages are written
DB_NAMES = (b"events", b"index", b"snapshots", b"meta")
_DATA_FILE = "data.mdb"
_LOCK_FILE = "writer.lock"
_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_ACCESS_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
_READER_TABLE = "lock.mdb"  # LMDB's, where even a read-only process registers its readers
_SCRATCH = ".creating"  # where a new store's data file is made (see ``_create``)
_CREATION_LEFTOVERS = {_LOCK_FILE, _SCRATCH}  # what a creation cut short leaves
NEW_STORE_MODE = 0o600  # private to the owner unless the caller asks otherwise


class _Shared:
    """An environment and how many stores in this process use it."""

    def __init__(self, env: Any, writable: bool) -> None:
        self.env = env
        self.writable = writable
        self.users = 0
        self.readers = 0
        self.cond = threading.Condition()


_registry: dict[str, _Shared] = {}
_registry_lock = threading.Lock()


class Log:
    """Transactions on one store's databases; writes come only from the committer thread."""

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool, map_size: int,
        mode: int = NEW_STORE_MODE,
    ) -> None:
        """``mode``: the permission bits of a store created here (see ``Modes``)."""
        self.path = Path(path)
        self.readonly = readonly
        self._lock_fd: int | None = None
        self._key = _check_path(self.path, readonly, Modes(mode))  # first: EACCES is ours
        # an existing store's new files (its reader table, say) get its data file's mode
        modes = Modes.of(self.path) if (self.path / _DATA_FILE).exists() else Modes(mode)
        if not readonly:
            self._lock_fd = _take_writer_lock(self.path, modes)
        try:
            if not readonly:
                _create(self.path, modes)
            _make_reader_table(self.path, modes)
            self._shared = _attach(self._key, self.path, readonly, map_size)
        except BaseException:
            self._release_lock()
            raise
        try:
            self.dbs, magic = _open_dbs(self._shared.env, self.path, readonly)
            self.store_id = _identity(self._shared.env, self.dbs, readonly)
        except BaseException:  # not a store after all: let go of its environment too
            _detach(self._key)
            self._release_lock()
            raise
        self._closed = False
        # a first-format store, which the writer marks as the second with its first commit
        self.first_format = magic == STORE_MAGIC_V1

    @property
    def env(self) -> Any:
        return self._shared.env

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """A read transaction; the map cannot be resized, nor the environment closed, under
        it. Once this log is closed, a read raises ``StoreClosedError``: LMDB would call the
        closed environment an invalid object, which must not read as a damaged store."""
        shared = self._shared
        with shared.cond:
            if self._closed:
                raise StoreClosedError(f"{self.path}: store is closed")
            shared.readers += 1
        try:
            txn = _begin(shared.env, write=False)
            try:
                yield txn
            finally:
                txn.abort()
        except lmdb.Error as exc:
            raise _corrupt(self.path, exc) from exc
        finally:
            with shared.cond:
                shared.readers -= 1
                shared.cond.notify_all()

    def write(self, body: Callable[[Any], T]) -> T:
        """Run ``body`` in one synced write transaction, growing the map when it fills."""
        while True:
            txn = _begin(self.env, write=True)
            try:
                result = body(txn)
                txn.commit()
                return result
            except lmdb.MapFullError:
                txn.abort()
                self._grow()
            except (lmdb.Error, OSError) as exc:
                txn.abort()
                raise _write_error(exc, self.path) from exc
            except BaseException:
                txn.abort()
                raise

    def _grow(self) -> None:
        shared = self._shared
        with shared.cond:
            while shared.readers:
                shared.cond.wait()
            shared.env.set_mapsize(shared.env.info()["map_size"] * 2)

    def copy_compacted(self, directory: Path) -> None:
        """Write a compacted copy of the data file into ``directory`` (LMDB's own copy,
        which leaves out free pages)."""
        try:
            self.env.copy(str(directory), compact=True)
        except lmdb.Error as exc:
            raise WriteError(f"{self.path}: compacted copy failed: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        with self._shared.cond:
            self._closed = True  # no read begins after this
        _detach(self._key)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None


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
        return cls(stat.S_IMODE((path / _DATA_FILE).stat().st_mode))


def _check_path(path: Path, readonly: bool, modes: Modes) -> str:
    try:
        return _checked_path(path, readonly, modes)
    except PermissionError as exc:  # a directory or data file this process may not read
        raise _access_error(path, exc.errno or errno.EACCES) from exc


def _checked_path(path: Path, readonly: bool, modes: Modes) -> str:
    if path.exists() and not path.is_dir():
        raise CorruptStoreError(f"{path}: not an evstore store (not a directory)")
    has_data = (path / _DATA_FILE).exists()
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


def _create(path: Path, modes: Modes) -> None:
    """Write a new store's first commit in a scratch directory and rename its data file in,
    so that a crash leaves either no ``data.mdb`` or a whole one (never an empty one); then
    make the name durable, before any write can be acknowledged. Caller holds the writer
    lock. Nothing to do when the store exists."""
    if (path / _DATA_FILE).exists():
        return
    scratch = path / _SCRATCH
    try:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        _first_data_file(scratch)
        os.chmod(scratch / _DATA_FILE, modes.file)
        os.replace(scratch / _DATA_FILE, path / _DATA_FILE)
        fsync_path(path)
    except (lmdb.Error, OSError) as exc:  # a full disk, most likely
        raise _write_error(exc, path) from exc
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
            _first_commit(env, txn)
    finally:
        env.close()


def _make_reader_table(path: Path, modes: Modes) -> None:
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


_META = struct.Struct("<II")  # magic, version at the start of an LMDB meta page's body
_META_LAST = struct.Struct("<QQ")  # last page number, transaction id (64-bit layout)
_LMDB_MAGIC = 0xBEEFC0DE


def check_size(path: Path) -> None:
    """Refuse a data file shorter than its newest meta page says, before LMDB maps it.

    LMDB trusts its page numbers; reading a page past the end of the file would kill the
    process with SIGBUS, so a truncated file must be caught here.
    """
    data_file = path / _DATA_FILE
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
                f"{path}: {_DATA_FILE} is empty (0 bytes): its contents were lost or it was"
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


def _take_writer_lock(path: Path, modes: Modes) -> int:
    try:
        fd = os.open(path / _LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, modes.file)
    except OSError as exc:
        if exc.errno in _ACCESS_ERRNOS:
            raise _access_error(path, exc.errno) from exc
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


def _attach(key: str, path: Path, readonly: bool, map_size: int) -> _Shared:
    with _registry_lock:
        shared = _registry.get(key)
        if shared is None:
            shared = _Shared(_open_env(path, readonly, map_size), writable=not readonly)
            _registry[key] = shared
        elif not readonly and not shared.writable:
            raise StoreLockedError(
                f"{path}: open read-only in this process; close it before opening it to write"
            )
        shared.users += 1
        return shared


def _detach(key: str) -> None:
    with _registry_lock:
        shared = _registry[key]
        shared.users -= 1
        if shared.users == 0:
            del _registry[key]
            with shared.cond:  # reads under way end before their environment does
                while shared.readers:
                    shared.cond.wait()
            shared.env.close()


def _open_env(path: Path, readonly: bool, map_size: int) -> Any:
    try:
        env = lmdb.open(
            str(path),
            map_size=map_size,
            max_dbs=len(DB_NAMES),
            readonly=readonly,
            create=not readonly,
            sync=True,
            metasync=True,
            max_readers=512,
        )
    except lmdb.Error as exc:
        for code in _ACCESS_ERRNOS:  # py-lmdb gives the reason only as text
            if str(exc).endswith(os.strerror(code)):
                raise _access_error(path, code) from exc
        raise _corrupt(path, exc) from exc
    try:
        env.reader_check()  # clear reader slots of processes that died holding them
    except lmdb.Error as exc:
        env.close()
        raise _corrupt(path, exc) from exc
    return env


def _first_commit(env: Any, txn: Any) -> dict[bytes, Any]:
    """A new store's databases and format marks."""
    dbs = {name: env.open_db(name, txn=txn) for name in DB_NAMES}
    txn.put(b"format", STORE_MAGIC, db=dbs[b"meta"])
    txn.put(_STORE_ID, uuid.uuid4().bytes, db=dbs[b"meta"])
    put_indexed(txn, dbs, 0)
    return dbs


def _open_dbs(env: Any, path: Path, readonly: bool) -> tuple[dict[bytes, Any], bytes]:
    try:
        if readonly or not _is_empty(env):
            dbs = {name: env.open_db(name, create=False) for name in DB_NAMES}
        else:  # left by a creation of an earlier evstore that died before its first commit
            with env.begin(write=True) as txn:
                dbs = _first_commit(env, txn)
        with env.begin() as txn:
            magic = txn.get(b"format", db=dbs[b"meta"])
    except lmdb.NotFoundError as exc:
        raise CorruptStoreError(f"{path}: not an evstore store (missing databases)") from exc
    except lmdb.Error as exc:
        raise _corrupt(path, exc) from exc
    if magic not in (STORE_MAGIC, STORE_MAGIC_V1):
        raise CorruptStoreError(f"{path}: not an evstore store of a known format ({magic!r})")
    return dbs, magic


_STORE_ID = b"store_id"  # 16 bytes of a random UUID, put when the store is created


def _identity(env: Any, dbs: dict[bytes, Any], readonly: bool) -> str | None:
    """The store's identity (a UUID, as text). A store made before identities existed gets
    one at its first writable open, so its writer ships it as itself from then on (a
    read-only open, or a full disk, leaves it without: None). A damaged one (not 16 bytes)
    is None too, and is never replaced: the store would pass for another."""
    meta = dbs[b"meta"]
    try:
        with env.begin() as txn:
            raw = txn.get(_STORE_ID, db=meta)
        if raw is None and not readonly:
            raw = uuid.uuid4().bytes
            with env.begin(write=True) as txn:
                txn.put(_STORE_ID, raw, db=meta)
    except lmdb.Error:  # no room for it (or damage, which loading reports): go on without
        return None
    return str(uuid.UUID(bytes=raw)) if raw is not None and len(raw) == 16 else None


def _is_empty(env: Any) -> bool:
    """True for a data file left by a creation that died before its first commit."""
    return int(env.stat()["entries"]) == 0


def _begin(env: Any, *, write: bool) -> Any:
    try:
        return env.begin(write=write)
    except lmdb.MapResizedError:
        env.set_mapsize(0)  # another process grew the map: adopt its size
        return env.begin(write=write)


def _write_error(exc: BaseException, path: Path) -> EvstoreError:
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
    size = (path / _DATA_FILE).stat().st_size
    return limit != resource.RLIM_INFINITY and size + (1 << 20) > limit


def _access_error(path: Path, code: int) -> StoreAccessError:
    """Say what access is missing: even a read-only open writes LMDB's reader table."""
    return StoreAccessError(
        f"{path}: {os.strerror(code)}: opening a store needs read access to {_DATA_FILE} and"
        f" write access to {_READER_TABLE} (LMDB registers readers there, even read-only"
        " ones); writing also needs write access to the directory and its other files"
    )


def _corrupt(path: Path, exc: BaseException) -> EvstoreError:
    return CorruptStoreError(f"{path}: store file is damaged or unreadable ({exc})")
