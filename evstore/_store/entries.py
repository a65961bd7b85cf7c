"""Entry collections: ``store.containers`` and ``store.sandboxes`` (containerd's Add, Get,
List and Delete), each entry read-only with its ``status`` behind it (``status.py``).

Reads (``get``, ``list``) touch only memory and take no lock, so they never wait on a commit.
"""

from __future__ import annotations

import bisect
import builtins
import threading
import time
from typing import Generic

import msgspec

from evstore._core import inputs
from evstore._core.codec import EVENT_TYPES, encode_payload
from evstore._core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from evstore._core.events import Entity, Kind, diff, no_changes
from evstore._core.model import durable_part
from evstore._history import ids
from evstore._storage.snapshots import Write
from evstore._store.copies import UNSTORABLE, M, S, clone_metadata, keep
from evstore._store.status import Backend, StatusStorage

MAX_ID_BYTES = 256
# where a decoding error points in an event record: the changes and the metadata
_RECORD_PARTS = (("`$[3]", "`status"), ("`$[4]", "`metadata"))


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
        return clone_metadata(self.status._metadata)


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
        metadata, blank = clone_metadata(metadata), self._status_type()
        status = keep(status, blank)
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

    def _held(self) -> builtins.list[tuple[M, S]]:
        """Every live entry's metadata and status as the store holds them, not copied, by
        id: for views inside evstore that only read them (``ls``, ``pods``). An update
        replaces a status, never changes it in place, so what this returns stays as it was."""
        with self._lock:
            storages = [self._live[ident].status for ident in self._ids]
        return [(storage._metadata, storage._current) for storage in storages]

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

    def _adopt_loaded(self, loaded: builtins.list[Entry[S, M]]) -> None:
        """Make the entries an open rebuilt visible: one pass and one sort, not one
        insertion each (an open adopts every live entry)."""
        with self._lock:
            for entry in loaded:
                self._live[entry.id] = entry
                self._known[entry.id] = (entry.status._eno, entry.status._seq)
            self._ids = sorted(self._live)

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
        except UNSTORABLE as exc:
            raise InvalidInputError(
                f"{storage._id}: status cannot be stored: {_readable(exc)}"
            ) from exc
        return Write(
            self._entity, storage._eno, storage._seq + 1, now, payload, metadata,
            durable_part(status), deleted, sync, repair,
        )
