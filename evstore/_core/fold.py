"""The fold: an entry's status from its events, with the one rule for gaps and damage.

Every reader of a store folds with this (open, verify, retention, replay, shipping), so
they all agree on every entry's state. A ``created`` event starts an incarnation from the
status type's defaults, each later event sets the fields in its ``changes``, and
``deleted`` ends the incarnation (a later ``created`` starts the next).

The rule: an event missing from the entry's sequence, an unreadable one, or one that does
not fit (``created`` of a live entry, anything else of one that is not) *breaks* the fold.
The entry keeps its last good fold, shows as UNKNOWN, and carries the reason; no later
event applies over the break, since what the missing one changed is not known. Only a
record that states the entry whole ends a break: its snapshot, once the fold has passed
the event it was taken at (``heal``). This is what opening a store does after a crash: it
starts from the snapshot and folds the log after it.
"""

from __future__ import annotations

from typing import Any, Self

import msgspec

from evstore._core.codec import ContainerEventV1, RecordError, SnapshotRecord, decode_event
from evstore._core.events import (
    CHANGES_TYPES,
    ENTITY_NAMES,
    STATUS_TYPES,
    Entity,
    Event,
    Kind,
    entity_of,
)
from evstore._core.model import ContainerStatus, Metadata, SandboxStatus, Status
from evstore._core.states import SandboxState

ENTITIES = {name: entity for entity, name in ENTITY_NAMES.items()}
KINDS = {kind.name.lower(): kind for kind in Kind}
# opening folds every event after the checkpoint: an enum member read from its class costs
# more than the rest of a comparison
_CREATED, _DELETED = Kind.CREATED, Kind.DELETED
_replace, _astuple, _UNSET = msgspec.structs.replace, msgspec.structs.astuple, msgspec.UNSET


class Fold:
    """One entry as its events are folded in; ``reason`` is set once the fold broke.

    A plain class with slots: the replay sets its fields for every event, and a slot is
    set about three times faster than a msgspec Struct's field (no field-wise ``==``
    either: ``_status`` may lag its pending fields)."""

    __slots__ = (
        "_pending",
        "_status",
        "deleted",
        "entity",
        "max_seq",
        "metadata",
        "pos",
        "reason",
        "seq",
        "time",
    )

    def __init__(  # the fields, in the order ``snapshot_fields`` gives them
        self, entity: Entity | None = None, metadata: Metadata | None = None,
        status: Status | None = None, seq: int = 0, pos: int = 0, time: int = 0,
        deleted: bool = False, reason: str | None = None, max_seq: int = 0,
    ) -> None:
        self.entity = entity
        self.metadata = metadata
        self._status = status  # read as ``status``, with the changes still pending
        self.seq = seq
        self.pos = pos  # last position folded in (or covered by the snapshot it started from)
        self.time = time
        self.deleted = deleted
        self.reason = reason
        self.max_seq = max_seq  # the highest seq met, past a break too: the next is above it
        # the fields set since ``_status`` was last brought up to date, each to its latest
        self._pending: dict[str, Any] | None = None

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}" for cls in type(self).__mro__
            for name in getattr(cls, "__slots__", ())
        )
        return f"{type(self).__name__}({fields})"

    @property
    def status(self) -> Status | None:
        """The folded status. Events' changes are gathered and applied when it is read:
        opening folds thousands of events and reads each entry's status once, and one
        ``replace`` per entry costs far less than one per event."""
        pending = self._pending
        if pending:
            assert self._status is not None
            self._status = _replace(self._status, **pending)
            pending.clear()
        return self._status

    @status.setter
    def status(self, status: Status | None) -> None:
        self._status, self._pending = status, None

    @classmethod
    def from_snapshot(cls, record: SnapshotRecord) -> Self:
        """The fold that a snapshot (or a retention base) records."""
        return cls(*snapshot_fields(record))

    @property
    def id(self) -> str | None:
        return self.metadata.id if self.metadata is not None else None

    def break_off(self, reason: str) -> None:
        self.reason = reason

    def step_record(self, pos: int, seq: int, key: bytes, value: bytes | None) -> None:
        """Fold one log record (None: the index names it but the log lost it)."""
        if seq > self.max_seq:
            self.max_seq = seq
        if self.reason is not None:
            return
        if seq != self.seq + 1:
            self.break_off(_missing(self.seq, seq))
            return
        if value is None:
            self.break_off(f"event {seq} missing")
            return
        try:
            record = decode_event(key, value)
        except RecordError as exc:
            self.break_off(f"event {seq} at position {pos}: {exc}")
            return
        kind = record.kind
        if kind == _CREATED:
            if record.metadata is None:
                self.break_off(f"event {seq} at position {pos}: created without metadata")
                return
            entity = Entity.CONTAINER if isinstance(record, ContainerEventV1) else Entity.SANDBOX
            if self._apply(pos, seq, record.time, kind, record.changes, entity):
                self.metadata = record.metadata
        else:
            self._apply(pos, seq, record.time, kind, record.changes, None)

    def step_event(self, event: Event) -> None:
        """Fold one event of the feed, which leaves unreadable records out: they show here as
        a gap in the sequence. Events the fold already covers are skipped."""
        if self.reason is not None or event.seq <= self.seq:
            return
        if event.seq != self.seq + 1:
            self.break_off(_missing(self.seq, event.seq))
            return
        entity = ENTITIES[event.entity]
        changes = msgspec.convert(event.changes, CHANGES_TYPES[entity])
        self._apply(event.position, event.seq, event.time, KINDS[event.type], changes, entity)

    def _apply(
        self, pos: int, seq: int, time: int, kind: int, changes: msgspec.Struct,
        entity: Entity | None,
    ) -> bool:
        """Fold in one readable event (``entity`` is needed for ``created`` only); False
        when it does not fit, which breaks the fold."""
        if (kind == _CREATED) != (self._status is None or self.deleted):
            self.break_off(f"event {seq} at position {pos}: unexpected {Kind(kind).name}")
            return False
        if kind == _CREATED:
            assert entity is not None
            self.entity, self.status = entity, STATUS_TYPES[entity]()
        self.deleted = kind == _DELETED
        pending = self._pending
        if pending is None:
            pending = self._pending = {}
        # the fields this event sets, over what earlier ones set (a loop, not a
        # comprehension: no frame of its own, as this runs once per event at open)
        for name, value in zip(changes.__struct_fields__, _astuple(changes), strict=True):
            if value is not _UNSET:
                pending[name] = value
        self.seq, self.pos, self.time = seq, pos, time
        return True

    def expect(self, seq: int) -> None:
        """Break unless the fold reached event ``seq``: the events up to it are missing."""
        if self.reason is None and self.seq < seq:
            self.break_off(_missing(self.seq, seq + 1))

    def heal(self, snapshot: SnapshotRecord | None, reached: int) -> None:
        """End a break with the entry's ``snapshot`` when it was taken at or past the break
        and at or before position ``reached``, the point the fold has come to."""
        if (
            self.reason is not None and snapshot is not None
            and self.seq < snapshot.seq and snapshot.position <= reached
        ):
            healed, seen = Fold.from_snapshot(snapshot), self.max_seq
            for name in Fold.__slots__:  # every field: the snapshot states the entry whole
                setattr(self, name, getattr(healed, name))
            self.max_seq = max(seen, self.max_seq)

    def shown(self) -> Status | None:
        """The status as every reader shows it: None when not live (or never readable),
        the last good fold marked UNKNOWN when broken, even past a ``deleted``."""
        if self.status is None:
            return None
        if self.reason is not None:
            return mark_unknown(self.status)
        return None if self.deleted else self.status


def snapshot_fields(
    record: SnapshotRecord,
) -> tuple[Entity, Metadata, Status, int, int, int, bool, None, int]:
    """A ``Fold``'s fields as a snapshot records them, in order: for a subclass that adds
    its own after them (positional, as this runs once per entry at open)."""
    return (
        entity_of(record.status), record.metadata, record.status, record.seq,
        record.position, record.time, record.deleted, None, record.seq,
    )


def _missing(seq: int, got: int) -> str:
    return f"events {seq + 1}..{got - 1} missing"


def mark_unknown(status: Status) -> Status:
    """How a broken entry shows: its last good fold, in state UNKNOWN."""
    if isinstance(status, ContainerStatus):
        return msgspec.structs.replace(status, unknown=True)
    assert isinstance(status, SandboxStatus)
    return msgspec.structs.replace(status, state=SandboxState.UNKNOWN)
