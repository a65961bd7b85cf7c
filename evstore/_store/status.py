"""An entry's status: reads from memory without a lock, updates serialised by the entry's lock
and, for a durable one, held until its commit, so memory never shows what the disk will not
have."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol

import msgspec

from evstore._core.errors import InvalidInputError, NotFoundError
from evstore._core.events import Entity, Kind, classify_move, diff
from evstore._core.model import status_state
from evstore._core.states import ContainerState, SandboxState, check_move
from evstore._storage.commit import Batch
from evstore._storage.snapshots import Write
from evstore._store.copies import M, S, clone, keep

if TYPE_CHECKING:
    from evstore._store.entries import Entries


_thread_id = threading.get_ident
_UNKNOWN = (ContainerState.UNKNOWN, SandboxState.UNKNOWN)


class Backend(Protocol):
    """What entries need of their store."""

    def _check_writable(self) -> None: ...
    def _allocate_eno(self, entity: Entity, id: str) -> int: ...
    def _submit(self, write: Write) -> Batch: ...
    def _commit(self, write: Write | None) -> None: ...


class StatusStorage(Generic[S, M]):
    """An entry's status: containerd's ``StatusStorage`` (Get / Update / UpdateSync / Delete),
    and, private, everything an update needs of its entry."""

    __slots__ = (
        "_current", "_damaged", "_deleted", "_eno", "_entries", "_id", "_lock", "_metadata",
        "_owner", "_seq", "_state", "_unsynced",
    )

    def __init__(
        self, entries: Entries[S, M], eno: int, metadata: M, status: S, seq: int,
        damaged: bool,
    ) -> None:
        self._id = metadata.id
        self._metadata = metadata
        self._current = status
        self._state = status_state(status)  # of ``_current``: an update needs it as ``before``
        self._eno = eno
        self._seq = seq
        self._damaged = damaged
        self._deleted = False
        self._unsynced = False  # an ``update`` of it may still be queued, not yet durable
        self._lock = threading.Lock()
        self._owner = 0  # the thread holding ``_lock``, to refuse a call that waits for itself
        self._entries = entries

    def get(self) -> S:
        """A copy of the status: changing it changes nothing in the store."""
        self._check_live()
        return clone(self._current)

    def update(self, fn: Callable[[S], S]) -> S:
        """Apply ``fn`` now; the event is durable within a second or at ``flush``."""
        return self._change(fn, sync=False)

    def update_sync(self, fn: Callable[[S], S]) -> S:
        """Apply ``fn`` and return once the event is durable."""
        return self._change(fn, sync=True)

    def delete(self) -> None:
        self._remove()

    def _check_live(self) -> None:
        if self._deleted:
            raise NotFoundError(f"{self._id}: deleted")

    def _hold(self) -> None:
        """Take ``_lock`` for this thread (see ``_wait_for_lock``)."""
        if not self._lock.acquire(False):
            self._wait_for_lock()
        self._owner = _thread_id()

    def _wait_for_lock(self) -> None:
        """Wait for ``_lock``, held by someone, or raise if this thread holds it: an update
        fn writing its own entry (or a blocking write beside a task of the same event
        loop) would wait for itself forever."""
        if self._owner == _thread_id():
            raise InvalidInputError(
                f"{self._id!r}: this thread is updating the entry already (an update fn"
                " writing its own entry?); waiting would wait for itself forever"
            )
        self._lock.acquire()

    def _claim(self) -> None:
        """Note this thread as the holder of ``_lock``, taken by the caller (see ``_hold``)."""
        self._owner = _thread_id()

    def _let_go(self) -> None:
        self._owner = 0
        self._lock.release()

    def _change(self, fn: Callable[[S], S], *, sync: bool) -> S:
        backend, lock = self._entries._backend, self._lock
        if not lock.acquire(False):  # ``_hold``, inline (and positional: a keyword costs 0.1 us)
            self._wait_for_lock()
        self._owner = _thread_id()
        try:
            change = self._prepare_change(fn, sync=sync)
            if change.write is not None:
                (backend._commit if sync else backend._submit)(change.write)
            elif self._needs_barrier(change):
                backend._commit(None)
            return self._finish_change(change)
        finally:
            self._owner = 0
            lock.release()

    def _prepare_change(self, fn: Callable[[S], S], *, sync: bool) -> Change[S]:
        """Everything an update does before the disk; the caller holds ``self._lock``.

        Written flat, with the common case (no change of state) first: this runs once
        per update and its cost bounds the throughput of every front.
        """
        self._check_live()
        entries = self._entries
        entries._backend._check_writable()
        if not callable(fn):
            raise InvalidInputError(f"the update fn must be callable, not {type(fn).__name__}")
        old = self._current
        new = fn(clone(old))
        if type(new) is not type(old):
            raise InvalidInputError(
                f"update fn returned {type(new).__name__}, not {type(old).__name__}"
            )
        kept = keep(new, old)
        before, state = self._state, status_state(kept)
        kind = Kind.UPDATED
        if state is not before:
            check_move(before, state)
            kind = classify_move(before, state)
        changes = diff(old, kept)
        repair = self._damaged and state not in _UNKNOWN
        if changes is None and not repair:
            return Change(new, kept, state, None, sync)  # only transient fields moved
        write = entries._make_write(self, kind, changes, kept, sync=sync, repair=repair)
        return Change(new, kept, state, write, sync)

    def _needs_barrier(self, change: Change[S]) -> bool:
        """Whether a durable update that writes nothing must still wait for a commit: one
        that makes this entry's queued ``update`` events durable, since the status it
        returns shows them."""
        return change.write is None and change.sync and self._unsynced

    def _finish_change(self, change: Change[S]) -> S:
        """Show a change in memory, once it is written (or queued, for ``update``).

        The caller gets back the object its ``fn`` returned; the store keeps its own copy.
        """
        self._current, self._state = change.kept, change.state
        write = change.write
        if change.sync:
            self._unsynced = False  # written durably, or behind a barrier
        elif write is not None:
            self._unsynced = True
        if write is not None:
            self._seq = write.seq
            if write.repair:
                self._damaged = False
        return change.new

    def _remove(self) -> None:
        self._hold()
        try:
            write = self._prepare_removal()
            if write is not None:
                self._entries._backend._commit(write)
                self._finish_removal(write)
        finally:
            self._let_go()

    def _prepare_removal(self) -> Write | None:
        """The delete event, or None when already deleted; the caller holds ``self._lock``."""
        if self._deleted:
            return None
        self._entries._backend._check_writable()
        return self._entries._make_write(
            self, Kind.DELETED, None, self._current, sync=True, repair=self._damaged, deleted=True
        )

    def _finish_removal(self, write: Write) -> None:
        self._deleted, self._seq = True, write.seq
        self._entries._forget(self)


class Change(msgspec.Struct, Generic[S], gc=False):
    """An update worked out in memory, with the event that records it (None: nothing to)."""

    new: S  # what ``fn`` returned: the caller's
    kept: S  # the store's own copy, shown once the write is done
    state: ContainerState | SandboxState  # of ``kept``
    write: Write | None
    sync: bool  # the caller waits until it is durable
