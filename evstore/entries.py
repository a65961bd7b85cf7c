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
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from . import ids, inputs
from .codec import EVENT_TYPES, encode_payload
from .commit import Batch
from .errors import AlreadyExistsError, InvalidInputError, NotFoundError
from .events import Entity, Kind, classify_move, diff, no_changes
from .model import (
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    SandboxMetadata,
    SandboxStatus,
    durable_part,
    status_state,
)
from .snapshots import Write
from .states import ContainerState, SandboxState, check_move

S = TypeVar("S", bound=ContainerStatus | SandboxStatus)
M = TypeVar("M", bound=ContainerMetadata | SandboxMetadata)
MAX_ID_BYTES = 256

_encoder = msgspec.msgpack.Encoder()
_UNKNOWN = (ContainerState.UNKNOWN, SandboxState.UNKNOWN)
# what encoding a wrongly typed value raises: TypeError, OverflowError (an int past 64
# bits), ValueError (UnicodeEncodeError); decoding it back, msgspec's DecodeError (a
# ValueError only in newer msgspec releases)
_UNSTORABLE = (TypeError, ValueError, OverflowError, msgspec.DecodeError)
# where a decoding error points in an event record: the changes and the metadata
_RECORD_PARTS = (("`$[3]", "`status"), ("`$[4]", "`metadata"))


class Backend(Protocol):
    """What entries need of their store."""

    def check_writable(self) -> None: ...
    def allocate_eno(self, entity: Entity, id: str) -> int: ...
    def submit(self, write: Write) -> Batch: ...
    def commit(self, write: Write | None) -> None: ...


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


class StatusStorage(Generic[S]):
    """An entry's status: containerd's ``StatusStorage`` (Get / Update / UpdateSync / Delete)."""

    __slots__ = ("_entry",)

    def __init__(self, entry: Entry[S, Any]) -> None:
        self._entry: Entry[S, Any] = entry

    def get(self) -> S:
        entry = self._entry
        entry.check_live()
        return clone(entry.current)

    def update(self, fn: Callable[[S], S]) -> S:
        """Apply ``fn`` now; the event is durable within a second or at ``flush``."""
        return self._entry.change(fn, sync=False)

    def update_sync(self, fn: Callable[[S], S]) -> S:
        """Apply ``fn`` and return once the event is durable."""
        return self._entry.change(fn, sync=True)

    def delete(self) -> None:
        self._entry.remove()


class Entry(Generic[S, M]):
    """One live container or sandbox."""

    def __init__(
        self, entries: Entries[S, M], eno: int, metadata: M, status: S, seq: int,
        damaged: bool = False,
    ) -> None:
        self.id = metadata.id
        self._metadata = metadata
        self.current = status
        self.state = status_state(status)  # of ``current``: an update needs it as ``before``
        self.eno = eno
        self.seq = seq
        self.damaged = damaged
        self.deleted = False
        self.unsynced = False  # an ``update`` of it may still be queued, not yet durable
        self.lock = threading.Lock()
        self._entries = entries
        self.status: StatusStorage[S] = StatusStorage(self)

    def __repr__(self) -> str:
        return f"<{type(self.current).__name__} entry {self.id!r}>"

    @property
    def metadata(self) -> M:
        """A copy: metadata is immutable after add."""
        return _clone_metadata(self._metadata)

    def check_live(self) -> None:
        if self.deleted:
            raise NotFoundError(f"{self.id}: deleted")

    def change(self, fn: Callable[[S], S], *, sync: bool) -> S:
        backend = self._entries.backend
        with self.lock:
            change = self.prepare_change(fn, sync=sync)
            if change.write is not None:
                (backend.commit if sync else backend.submit)(change.write)
            elif self.needs_barrier(change):
                backend.commit(None)
            return self.finish_change(change)

    def prepare_change(self, fn: Callable[[S], S], *, sync: bool) -> Change[S]:
        """Everything an update does before the disk; the caller holds ``self.lock``.

        Written flat, with the common case (no change of state) first: this runs once
        per update and its cost bounds the throughput of every front.
        """
        self.check_live()
        entries = self._entries
        entries.backend.check_writable()
        if not callable(fn):
            raise InvalidInputError(f"the update fn must be callable, not {type(fn).__name__}")
        old = self.current
        new = fn(clone(old))
        if type(new) is not type(old):
            raise InvalidInputError(
                f"update fn returned {type(new).__name__}, not {type(old).__name__}"
            )
        kept = _keep(new, old)
        before, state = self.state, status_state(kept)
        kind = Kind.UPDATED
        if state is not before:
            check_move(before, state)
            kind = classify_move(before, state)
        changes = diff(old, kept)
        repair = self.damaged and state not in _UNKNOWN
        if changes is None and not repair:
            return Change(new, kept, state, None, sync)  # only transient fields moved
        write = entries.make_write(self, kind, changes, kept, sync=sync, repair=repair)
        return Change(new, kept, state, write, sync)

    def needs_barrier(self, change: Change[S]) -> bool:
        """Whether a durable update that writes nothing must still wait for a commit: one
        that makes this entry's queued ``update`` events durable, since the status it
        returns shows them."""
        return change.write is None and change.sync and self.unsynced

    def finish_change(self, change: Change[S]) -> S:
        """Show a change in memory, once it is written (or queued, for ``update``).

        The caller gets back the object its ``fn`` returned; the store keeps its own copy.
        """
        self.current, self.state = change.kept, change.state
        write = change.write
        if change.sync:
            self.unsynced = False  # written durably, or behind a barrier
        elif write is not None:
            self.unsynced = True
        if write is not None:
            self.seq = write.seq
            if write.repair:
                self.damaged = False
        return change.new

    def remove(self) -> None:
        with self.lock:
            write = self.prepare_removal()
            if write is not None:
                self._entries.backend.commit(write)
                self.finish_removal(write)

    def prepare_removal(self) -> Write | None:
        """The delete event, or None when already deleted; the caller holds ``self.lock``."""
        if self.deleted:
            return None
        self._entries.backend.check_writable()
        return self._entries.make_write(
            self, Kind.DELETED, None, self.current, sync=True, repair=self.damaged, deleted=True
        )

    def finish_removal(self, write: Write) -> None:
        self.deleted, self.seq = True, write.seq
        self._entries.forget(self)


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
        self.backend = backend
        self.entity = entity
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
        entry, write = self.prepare_add(metadata, status)
        try:
            self.backend.commit(write)
        except BaseException:
            self.abort_add(entry)
            raise
        return self.finish_add(entry, write)

    def prepare_add(self, metadata: M, status: S) -> tuple[Entry[S, M], Write]:
        """Check, reserve the id, and build the created event (not yet visible)."""
        self._check_input(metadata, status)
        self.backend.check_writable()
        metadata, blank = _clone_metadata(metadata), self._status_type()
        status = _keep(status, blank)
        eno, seq = self._reserve(metadata.id)
        entry = Entry(self, eno, metadata, status, seq)
        changes = diff(blank, status)
        try:
            return entry, self.make_write(entry, Kind.CREATED, changes, status, sync=True)
        except InvalidInputError:
            self.abort_add(entry)
            raise

    def abort_add(self, entry: Entry[S, M]) -> None:
        with self._lock:
            self._adding.discard(entry.id)

    def finish_add(self, entry: Entry[S, M], write: Write) -> Entry[S, M]:
        entry.seq = write.seq
        self.adopt(entry)
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

    def delete(self, id_or_prefix: str) -> None:
        """Delete durably; silent if there is no such entry."""
        try:
            entry = self.get(id_or_prefix)
        except NotFoundError:
            return
        entry.remove()

    @property
    def _kind_name(self) -> str:
        return "container" if self.entity is Entity.CONTAINER else "sandbox"

    def _matches(self, prefix: str) -> builtins.list[str]:
        if not prefix:
            return []
        ids = self._ids
        start = bisect.bisect_left(ids, prefix)
        found: builtins.list[str] = []
        for candidate in ids[start : start + 2]:
            if candidate.startswith(prefix):
                found.append(candidate)
        return found

    def _check_input(self, metadata: M, status: S) -> None:
        if not isinstance(metadata, self._metadata_type):
            raise InvalidInputError(f"metadata must be {self._metadata_type.__name__}")
        if not isinstance(status, self._status_type):
            raise InvalidInputError(f"status must be {self._status_type.__name__}")
        ident = metadata.id
        if not isinstance(ident, str) or not ident or len(ident.encode()) > MAX_ID_BYTES:
            raise InvalidInputError(f"id must be a non-empty string of <= {MAX_ID_BYTES} bytes")

    def _reserve(self, ident: str) -> tuple[int, int]:
        with self._lock:
            if ident in self._live or ident in self._adding:
                raise AlreadyExistsError(f"{ident}: a live {self._kind_name} has this id")
            self._adding.add(ident)
            known = self._known.get(ident)
        return known if known is not None else (self.backend.allocate_eno(self.entity, ident), 0)

    def adopt(self, entry: Entry[S, M]) -> None:
        """Make an entry visible (after its add is durable, or at load)."""
        with self._lock:
            self._live[entry.id] = entry
            bisect.insort(self._ids, entry.id)
            self._adding.discard(entry.id)
            self._known[entry.id] = (entry.eno, entry.seq)

    def remember(self, ident: str, eno: int, seq: int) -> None:
        """Record a deleted id, so adding it again continues its history."""
        self._known[ident] = (eno, seq)

    def forget(self, entry: Entry[S, M]) -> None:
        with self._lock:
            if self._live.get(entry.id) is entry:
                del self._live[entry.id]
                index = bisect.bisect_left(self._ids, entry.id)
                del self._ids[index]
            self._known[entry.id] = (entry.eno, entry.seq)

    def make_write(
        self, entry: Entry[S, M], kind: Kind, changes: msgspec.Struct | None, status: S, *,
        sync: bool, repair: bool = False, deleted: bool = False,
    ) -> Write:
        now = time.time_ns()
        metadata = entry._metadata
        record = self._event_type(  # positional: this runs once per update
            now, int(kind), changes or no_changes(self.entity),
            metadata if kind is Kind.CREATED else None,  # type: ignore[arg-type]
        )
        try:  # a wrongly typed value fails here, before anything is written or shown,
            # instead of leaving a record no reader can decode (its entry UNKNOWN at open)
            payload = encode_payload(record)
            self._check_record(payload)
        except _UNSTORABLE as exc:
            raise InvalidInputError(
                f"{entry.id}: status cannot be stored: {_readable(exc)}"
            ) from exc
        return Write(
            self.entity, entry.eno, entry.seq + 1, now, payload, metadata,
            durable_part(status), deleted, sync, repair,
        )
