"""The in-memory side: collections of entries, each with a status that folds its events.

Reads (``get``, ``list``, ``status.get``) touch only memory and take no lock, so they never
wait on a commit. Writes to one entry are serialised by that entry's lock; a durable
write holds it until its commit, so memory never shows what the disk will not have.
"""

from __future__ import annotations

import bisect
import builtins
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import msgspec

from evstore._core import inputs
from evstore._core.codec import EVENT_TYPES, encode_payload
from evstore._core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from evstore._core.events import Entity, Kind, classify_move, diff, no_changes
from evstore._core.model import (
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    SandboxMetadata,
    SandboxStatus,
    durable_part,
    status_state,
)
from evstore._core.states import ContainerState, SandboxState, check_move
from evstore._history import ids
from evstore._storage.commit import Batch
from evstore._storage.snapshots import Write

S = TypeVar("S", bound=ContainerStatus | SandboxStatus)
M = TypeVar("M", bound=ContainerMetadata | SandboxMetadata)
MAX_ID_BYTES = 256

_encoder = msgspec.msgpack.Encoder()
_thread_id = threading.get_ident
_UNKNOWN = (ContainerState.UNKNOWN, SandboxState.UNKNOWN)
# what encoding a wrongly typed value raises: TypeError, OverflowError (an int past 64
# bits), ValueError (UnicodeEncodeError); decoding it back, msgspec's DecodeError (a
# ValueError only in newer msgspec releases)
_UNSTORABLE = (TypeError, ValueError, OverflowError, msgspec.DecodeError)
# where a decoding error points in an event record: the changes and the metadata
_RECORD_PARTS = (("`$[3]", "`status"), ("`$[4]", "`metadata"))


class Backend(Protocol):
    """What entries need of their store."""

    def _check_writable(self) -> None: ...
    def _allocate_eno(self, entity: Entity, id: str) -> int: ...
    def _submit(self, write: Write) -> Batch: ...
    def _commit(self, write: Write | None) -> None: ...


def clone(status: S) -> S:
    """A private copy, so neither the caller nor ``fn`` can alter what the store holds."""
    copy = msgspec.structs.replace(status)
    if isinstance(copy, ContainerStatus) and copy.resources is not None:
        copy.resources = _copy_resources(copy.resources)
    return copy


def _keep(new: S, old: S) -> S:
    """A private copy of what ``fn`` returned, sharing its resources with ``old`` when they
    are equal: what the store holds is never changed in place, so sharing is safe and
    spares a deep copy on every update that leaves them alone."""
    kept = msgspec.structs.replace(new)
    if isinstance(kept, ContainerStatus):
        if kept.resources is not None:
            previous = old.resources  # type: ignore[union-attr]
            if kept.resources == previous:
                kept.resources = previous
            else:
                kept.resources = _copy_resources(kept.resources)
    elif type(kept.state) is not SandboxState:
        kept.state = _sandbox_state(kept.state)
    return kept


def _sandbox_state(value: object) -> SandboxState:
    """A sandbox's state as the enum (an int that names one is taken): the store's copy
    must hold what moves are checked and events named by."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return SandboxState(value)
        except ValueError:
            pass
    raise InvalidInputError(f"status cannot be stored: state must be a SandboxState, not {value!r}")


def _copy_resources(resources: ContainerResources) -> ContainerResources:
    """A deep copy; only the Linux part holds mutable containers."""
    try:
        return _copy_resource_parts(resources)
    except TypeError as exc:  # a part that is no struct (a dict, say)
        raise InvalidInputError(f"status cannot be stored: resources: {exc}") from exc


def _copy_resource_parts(resources: ContainerResources) -> ContainerResources:
    copy = msgspec.structs.replace(resources)
    linux = copy.linux
    if linux is not None:
        linux = copy.linux = msgspec.structs.replace(linux)
        linux.unified = dict(linux.unified)
        limits = linux.hugepage_limits
        linux.hugepage_limits = [msgspec.structs.replace(h) for h in limits] if limits else []
    if copy.windows is not None:
        copy.windows = msgspec.structs.replace(copy.windows)
    return copy


def _clone_metadata(metadata: M) -> M:
    try:
        decoded: M = msgspec.msgpack.decode(_encoder.encode(metadata), type=type(metadata))
    except _UNSTORABLE as exc:
        where = str(exc).replace("`$", "`metadata")
        raise InvalidInputError(f"{metadata.id}: metadata cannot be stored: {where}") from exc
    return decoded


def _readable(exc: Exception) -> str:
    """A decoding error, pointing at the status or metadata instead of the record."""
    text = str(exc)
    for internal, public in _RECORD_PARTS:
        text = text.replace(internal, public)
    return text


class Entry(Generic[S, M]):
    """One live container or sandbox: its ``id``, ``metadata`` (a copy) and ``status``.

    Read-only: what changes lives behind ``status``, in private slots, so that nothing
    reached through an entry can change the store without an event. Plain slots, not
    properties: reading ``entry.status`` costs no more than an attribute.
    """

    __slots__ = ("id", "status")
    id: str
    status: StatusStorage[S, M]

    def __init__(
        self, entries: Entries[S, M], eno: int, metadata: M, status: S, seq: int,
        damaged: bool = False,
    ) -> None:
        storage = StatusStorage(entries, eno, metadata, status, seq, damaged)
        object.__setattr__(self, "id", metadata.id)
        object.__setattr__(self, "status", storage)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} cannot be set")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} cannot be deleted")

    def __repr__(self) -> str:
        return f"<{type(self.status._current).__name__} entry {self.id!r}>"

    @property
    def metadata(self) -> M:
        """A copy: metadata is immutable after add."""
        return _clone_metadata(self.status._metadata)


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
        kept = _keep(new, old)
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


class Entries(Generic[S, M]):
    """``store.containers`` or ``store.sandboxes``: containerd's store (Add/Get/List/Delete)."""

    def __init__(
        self, backend: Backend, entity: Entity, metadata_type: type[M], status_type: type[S]
    ) -> None:
        self._backend = backend
        self._entity = entity
        self._metadata_type = metadata_type
        self._status_type = status_type
        self._event_type = EVENT_TYPES[entity]
        self._check_record = msgspec.msgpack.Decoder(self._event_type).decode
        self._live: dict[str, Entry[S, M]] = {}
        self._ids: builtins.list[str] = []  # sorted, for prefix lookup
        self._known: dict[str, tuple[int, int]] = {}  # id -> (eno, last seq), deleted included
        self._adding: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._live)

    def add(self, metadata: M, status: S) -> Entry[S, M]:
        """Add an entry; durable on return."""
        entry, write = self._prepare_add(metadata, status)
        try:
            self._backend._commit(write)
        except BaseException:
            self._abort_add(entry)
            raise
        return self._finish_add(entry, write)

    def _prepare_add(self, metadata: M, status: S) -> tuple[Entry[S, M], Write]:
        """Check, reserve the id, and build the created event (not yet visible)."""
        self._check_input(metadata, status)
        self._backend._check_writable()
        metadata, blank = _clone_metadata(metadata), self._status_type()
        status = _keep(status, blank)
        eno, seq = self._reserve(metadata.id)
        entry = Entry(self, eno, metadata, status, seq)
        changes = diff(blank, status)
        try:
            return entry, self._make_write(entry.status, Kind.CREATED, changes, status, sync=True)
        except InvalidInputError:
            self._abort_add(entry)
            raise

    def _abort_add(self, entry: Entry[S, M]) -> None:
        with self._lock:
            self._adding.discard(entry.id)

    def _finish_add(self, entry: Entry[S, M], write: Write) -> Entry[S, M]:
        entry.status._seq = write.seq
        self._adopt(entry)
        return entry

    def get(self, id_or_prefix: str) -> Entry[S, M]:
        """An exact id wins; else a unique prefix."""
        entry = self._live.get(id_or_prefix)
        if entry is not None:
            return entry
        matches = self._matches(inputs.text("id", id_or_prefix))
        entry = self._live.get(ids.choose(id_or_prefix, matches, self._kind_name))
        if entry is None:  # reserved by an add that has not finished
            raise NotFoundError(f"{id_or_prefix!r}: no such {self._kind_name}")
        return entry

    def list(self) -> builtins.list[Entry[S, M]]:
        return list(self._live.values())

    def delete(self, id: str) -> None:
        """Delete the entry of exactly this ``id``, durably; silent if there is none (as
        containerd's Delete), so a retry is harmless. Destructive calls never resolve a
        prefix: one of a live id raises ``InvalidInputError`` naming what it matches."""
        entry = self._to_delete(id)
        if entry is not None:
            entry.status._remove()

    def _to_delete(self, ident: str) -> Entry[S, M] | None:
        """The live entry of exactly ``ident``; None if there is none and ``ident`` is not
        the prefix of a live id (an id deleted before is an exact one: a retry)."""
        entry = self._live.get(inputs.text("id", ident))
        if entry is not None or ident in self._known:
            return entry
        matches = self._matches(ident, limit=3)
        if matches:
            shown = ", ".join(repr(match) for match in matches[:2])
            more = ", ..." if len(matches) > 2 else ""
            raise InvalidInputError(
                f"{ident!r}: no {self._kind_name} has this id, and delete takes a whole id"
                f" (it is a prefix of {shown}{more})"
            )
        return None

    @property
    def _kind_name(self) -> str:
        return "container" if self._entity is Entity.CONTAINER else "sandbox"

    def _matches(self, prefix: str, limit: int = 2) -> builtins.list[str]:
        """Up to ``limit`` live ids that start with ``prefix``."""
        if not prefix:
            return []
        ids = self._ids
        start = bisect.bisect_left(ids, prefix)
        found: builtins.list[str] = []
        for candidate in ids[start : start + limit]:
            if candidate.startswith(prefix):
                found.append(candidate)
        return found

    def _check_input(self, metadata: M, status: S) -> None:
        if not isinstance(metadata, self._metadata_type):
            raise InvalidInputError(f"metadata must be {self._metadata_type.__name__}")
        if not isinstance(status, self._status_type):
            raise InvalidInputError(f"status must be {self._status_type.__name__}")
        inputs.entry_id(metadata.id, MAX_ID_BYTES)

    def _reserve(self, ident: str) -> tuple[int, int]:
        with self._lock:
            if ident in self._live or ident in self._adding:
                raise AlreadyExistsError(f"{ident}: a live {self._kind_name} has this id")
            self._adding.add(ident)
            known = self._known.get(ident)
        if known is not None:
            return known
        try:  # the store refuses an id the other kind holds
            return self._backend._allocate_eno(self._entity, ident), 0
        except BaseException:
            with self._lock:
                self._adding.discard(ident)
            raise

    def _holds(self, ident: str) -> bool:
        """Whether ``ident`` is live, being added, or has a history here."""
        return ident in self._known or ident in self._adding

    def _adopt(self, entry: Entry[S, M]) -> None:
        """Make an entry visible (after its add is durable, or at load)."""
        with self._lock:
            self._live[entry.id] = entry
            bisect.insort(self._ids, entry.id)
            self._adding.discard(entry.id)
            self._known[entry.id] = (entry.status._eno, entry.status._seq)

    def _remember(self, ident: str, eno: int, seq: int) -> None:
        """Record a deleted id, so adding it again continues its history."""
        self._known[ident] = (eno, seq)

    def _forget(self, storage: StatusStorage[S, M]) -> None:
        ident = storage._id
        with self._lock:
            live = self._live.get(ident)
            if live is not None and live.status is storage:
                del self._live[ident]
                index = bisect.bisect_left(self._ids, ident)
                del self._ids[index]
            self._known[ident] = (storage._eno, storage._seq)

    def _make_write(
        self, storage: StatusStorage[S, M], kind: Kind, changes: msgspec.Struct | None,
        status: S, *, sync: bool, repair: bool = False, deleted: bool = False,
    ) -> Write:
        now = time.time_ns()
        metadata = storage._metadata
        record = self._event_type(  # positional: this runs once per update
            now, int(kind), changes or no_changes(self._entity),
            metadata if kind is Kind.CREATED else None,  # type: ignore[arg-type]
        )
        try:  # a wrongly typed value fails here, before anything is written or shown,
            # instead of leaving a record no reader can decode (its entry UNKNOWN at open)
            payload = encode_payload(record)
            self._check_record(payload)
        except _UNSTORABLE as exc:
            raise InvalidInputError(
                f"{storage._id}: status cannot be stored: {_readable(exc)}"
            ) from exc
        return Write(
            self._entity, storage._eno, storage._seq + 1, now, payload, metadata,
            durable_part(status), deleted, sync, repair,
        )
