"""Replay: what one entry, or the whole node, looked like at an earlier point of the log.

The status at a point is the fold of the events up to it: a ``created`` event starts an
incarnation from the status type's defaults, each later event sets the fields in its
``changes``, and ``deleted`` ends the incarnation. An event whose record cannot be read
(``verify`` names it) leaves a gap in its entry's sequence; the fold goes on past the gap
but, as at open, shows the entry as UNKNOWN until its next ``created``.

After retention dropped the start of the log (``retention``), folds start from the bases
kept at the floor, and a point before the floor raises ``HistoryDroppedError``.

Both functions read only the log, so they work on a ``readonly=True`` store beside a writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from evstore._core import inputs
from evstore._core.codec import SnapshotRecord
from evstore._core.errors import (
    AmbiguousIDError,
    HistoryDroppedError,
    InvalidInputError,
    NotFoundError,
)
from evstore._core.events import CHANGES_TYPES, ENTITY_NAMES, STATUS_TYPES, Event, apply, entity_of
from evstore._core.model import Status
from evstore._core.times import format_time
from evstore._storage.audit import enos_of
from evstore._storage.recovery import mark_unknown
from evstore._storage.retention import Retained, retained

if TYPE_CHECKING:
    from evstore._store.store import Store

ENTITIES = {name: entity for entity, name in ENTITY_NAMES.items()}


class EntryState(NamedTuple):
    """One entry live at a replayed point."""

    entity: str
    id: str
    status: Status


@dataclass(slots=True)
class Point:
    """Where a replay of the feed stopped: the last event it folded in (0 when none)."""

    position: int = 0
    time: int = 0


@dataclass(slots=True)
class Fold:
    """One id's status as its events are folded in."""

    status: Status | None = None
    seq: int = 0
    gap: bool = False  # an event of this incarnation could not be read

    def step(self, event: Event) -> None:
        missing = event.seq != self.seq + 1
        self.seq = event.seq
        if event.type == "created":
            self.status, self.gap = STATUS_TYPES[ENTITIES[event.entity]](), False
        elif self.status is None:
            return  # its created record is unreadable: nothing to fold onto
        elif missing:
            self.gap = True
        if event.type == "deleted":
            self.status = None
            return
        self.status = apply_changes(self.status, event)

    def result(self) -> Status | None:
        if self.status is None or not self.gap:
            return self.status
        return mark_unknown(self.status)


def apply_changes(status: Status, event: Event) -> Status:
    """Fold an event's plain ``changes`` (resources as dicts) into a typed status."""
    if not event.changes:
        return status
    changes = msgspec.convert(event.changes, CHANGES_TYPES[ENTITIES[event.entity]])
    return apply(status, changes)


def status_at(
    store: Store, id: str, seq: int | None = None, time: int | None = None
) -> Status:
    """The status of ``id`` (an id or a unique prefix, see ``Store.resolve_id``) after its
    event ``seq`` (counted across incarnations) or at wall-clock ``time`` (ns): the fold of
    its events with ``event.time <= time``.

    Raises ``InvalidInputError`` unless exactly one of ``seq`` and ``time`` is given,
    ``NotFoundError`` when ``id`` has no history, no event ``seq``, or was not live at
    that point (not yet created, or deleted), and ``AmbiguousIDError`` when a container
    and a sandbox share the id.
    """
    name, bound = _one_bound(seq=seq, time=time)
    id = store.resolve_id(id)
    history = store.history(id)
    bases = list(retained(store._log, enos_of(store._names, id)).bases.values())
    _check_history(id, history, bases, seq)
    fold = _start(id, bases, name, bound)
    for event in history:
        if (event.seq if name == "seq" else event.time) <= bound:
            fold.step(event)
    status = fold.result()
    if status is None:
        raise NotFoundError(f"{id!r}: not live at {name} {bound}")
    return status


def dropped_events(store: Store, id: str) -> int:
    """How many of ``id``'s first events retention dropped (0 when none)."""
    bases = retained(store._log, enos_of(store._names, id)).bases
    return max((base.seq for base in bases.values()), default=0)


def _check_history(
    id: str, history: list[Event], bases: list[SnapshotRecord], seq: int | None
) -> None:
    entities = {event.entity for event in history}
    entities.update(ENTITY_NAMES[entity_of(base.status)] for base in bases)
    if not entities:
        raise NotFoundError(f"{id!r}: no such container or sandbox in the store's history")
    if len(entities) > 1:
        raise AmbiguousIDError(f"{id!r} names both a container and a sandbox")
    last = history[-1].seq if history else bases[0].seq
    if seq is not None and seq > last:
        raise NotFoundError(f"{id!r}: has no event {seq} (its last is {last})")


def _start(id: str, bases: list[SnapshotRecord], name: str, bound: int) -> Fold:
    """Where the fold of ``id`` starts: empty, or its base when retention dropped the
    start of its history (then a bound before the base cannot be answered)."""
    if not bases:
        return Fold()
    (base,) = bases
    if bound < (base.seq if name == "seq" else base.time):
        raise HistoryDroppedError(
            f"{id!r}: its events up to {base.seq} were dropped by compaction (retention)"
        )
    return Fold(None if base.deleted else base.status, base.seq)


def states_at(
    store: Store, position: int | None = None, time: int | None = None
) -> list[EntryState]:
    """Every entry live at global ``position`` or at wall-clock ``time`` (ns), with its
    status there, sorted by entity and id. Exactly one of the two must be given."""
    return replay_feed(store.events(), position, time, feed_start(store))[0]


def feed_start(store: Store) -> Retained:
    """What a replay of ``store``'s whole feed starts from: the floor and every base."""
    return retained(store._log)


def replay_feed(
    events: Iterable[Event], position: int | None = None, time: int | None = None,
    start: Retained | None = None,
) -> tuple[list[EntryState], Point]:
    """``states_at`` over any feed (the command line passes one that shows progress),
    with the last event folded in. ``start`` is ``feed_start(store)`` for a store that
    retention has trimmed."""
    name, bound = _one_bound(position=position, time=time)
    start = start if start is not None else Retained()
    floor = start.floor
    if floor.position and bound < (floor.position if name == "position" else floor.time):
        raise HistoryDroppedError(
            f"the history up to position {floor.position} ({format_time(floor.time)}) was"
            " dropped by compaction (retention): replay a later point"
        )
    folds = _seeded(start.bases)
    point = Point(floor.position, floor.time)
    for event in events:
        if name == "position" and event.position > bound:
            break  # the feed is in position order; times need not be
        if name == "time" and event.time > bound:
            continue
        folds.setdefault((event.entity, event.id), Fold()).step(event)
        point = Point(event.position, event.time)
    return _live(folds), point


def _seeded(bases: dict[int, SnapshotRecord]) -> dict[tuple[str, str], Fold]:
    return {
        (ENTITY_NAMES[entity_of(base.status)], base.metadata.id):
            Fold(None if base.deleted else base.status, base.seq)
        for base in bases.values()
    }


def _live(folds: dict[tuple[str, str], Fold]) -> list[EntryState]:
    found = [
        EntryState(entity, ident, status)
        for (entity, ident), fold in folds.items()
        if (status := fold.result()) is not None
    ]
    found.sort(key=lambda state: (state.entity, state.id))
    return found


def _one_bound(**bounds: int | None) -> tuple[str, int]:
    """The one bound given, by name; ``InvalidInputError`` for none, two or a non-integer."""
    given = {name: value for name, value in bounds.items() if value is not None}
    if len(given) != 1:
        raise InvalidInputError(f"give exactly one of {' or '.join(bounds)}")
    ((name, value),) = given.items()
    return name, inputs.integer(name, value)

