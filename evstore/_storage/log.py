"""The LMDB environment behind a store: opening it, growing it, and its transactions.

One environment per path per process (LMDB's rule), shared by every ``Store`` open on it
in this process; one writer per store across processes, enforced with ``flock`` on a
lock file beside the data (``files``), since LMDB itself would just queue a second writer.
"""

from __future__ import annotations

import os
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
    EvstoreError,
    StoreClosedError,
    StoreLockedError,
    WriteError,
)
from evstore._storage.files import (
    ACCESS_ERRNOS,
    DATA_FILE,
    DB_NAMES,
    NEW_STORE_MODE,
    STORE_ID,
    Modes,
    access_error,
    check_path,
    create,
    first_commit,
    make_reader_table,
    take_writer_lock,
    write_error,
)

T = TypeVar("T")

DEFAULT_MAP_SIZE = 1 << 30  # address space only: LMDB files grow as pages are written


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
        self._key = check_path(self.path, readonly, Modes(mode))  # first: EACCES is ours
        # an existing store's new files (its reader table, say) get its data file's mode
        modes = Modes.of(self.path) if (self.path / DATA_FILE).exists() else Modes(mode)
        if not readonly:
            self._lock_fd = take_writer_lock(self.path, modes)
        try:
            if not readonly:
                create(self.path, modes)
            make_reader_table(self.path, modes)
            self._shared = _attach(self._key, self.path, readonly, map_size)
        except BaseException:
            self._release_lock()
            raise
        try:
            self.dbs, magic = _open_dbs(self._shared.env, self.path, readonly)
            self.store_id = _identity(self._shared.env, self.dbs, readonly=True)
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

    def claim_identity(self) -> None:
        """Give a store made before identities existed its identity, at a writable open
        once the probe's walk has ended (opening writes nothing before): from then on its
        writer ships it as itself."""
        if self.store_id is None and not self.readonly:
            self.store_id = _identity(self._shared.env, self.dbs, readonly=False)

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
                raise write_error(exc, self.path) from exc
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
        for code in ACCESS_ERRNOS:  # py-lmdb gives the reason only as text
            if str(exc).endswith(os.strerror(code)):
                raise access_error(path, code) from exc
        raise _corrupt(path, exc) from exc
    try:
        env.reader_check()  # clear reader slots of processes that died holding them
    except lmdb.Error as exc:
        env.close()
        raise _corrupt(path, exc) from exc
    return env


def _open_dbs(env: Any, path: Path, readonly: bool) -> tuple[dict[bytes, Any], bytes]:
    try:
        if readonly or not _is_empty(env):
            dbs = {name: env.open_db(name, create=False) for name in DB_NAMES}
        else:  # left by a creation of an earlier evstore that died before its first commit
            with env.begin(write=True) as txn:
                dbs = first_commit(env, txn)
        with env.begin() as txn:
            magic = txn.get(b"format", db=dbs[b"meta"])
    except lmdb.NotFoundError as exc:
        raise CorruptStoreError(f"{path}: not an evstore store (missing databases)") from exc
    except lmdb.Error as exc:
        raise _corrupt(path, exc) from exc
    if magic not in (STORE_MAGIC, STORE_MAGIC_V1):
        raise CorruptStoreError(f"{path}: not an evstore store of a known format ({magic!r})")
    return dbs, magic


def _identity(env: Any, dbs: dict[bytes, Any], readonly: bool) -> str | None:
    """The store's identity (a UUID, as text). A store made before identities existed gets
    one at its first writable open, so its writer ships it as itself from then on (a
    read-only open, or a full disk, leaves it without: None). A damaged one (not 16 bytes)
    is None too, and is never replaced: the store would pass for another."""
    meta = dbs[b"meta"]
    try:
        with env.begin() as txn:
            raw = txn.get(STORE_ID, db=meta)
        if raw is None and not readonly:
            raw = uuid.uuid4().bytes
            with env.begin(write=True) as txn:
                txn.put(STORE_ID, raw, db=meta)
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


def _corrupt(path: Path, exc: BaseException) -> EvstoreError:
    return CorruptStoreError(f"{path}: store file is damaged or unreadable ({exc})")
