"""Replay: what one entry, or the whole node, looked like at an earlier point of the log.

The status at a point is the fold of the events up to it, with the one fold every reader
uses (``evstore._core.fold``). An event whose record cannot be read (``verify`` names it)
leaves a gap in its entry's sequence, which breaks its fold: as at open, the entry shows
its last good fold as UNKNOWN from there on, until the point its snapshot was taken at,
if that snapshot lies past the gap (then it is the entry's fold again, as open has it).

After retention dropped the start of the log (``retention``), folds start from the bases
kept at the floor, and a point before the floor raises ``HistoryDroppedError``.

Both functions read only the log and its snapshot records, so they work on a
``readonly=True`` store beside a writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from evstore._core import inputs
from evstore._core.codec import FloorV1, SnapshotRecord
from evstore._core.errors import (
    AmbiguousIDError,
    HistoryDroppedError,
    InvalidInputError,
    NotFoundError,
)
from evstore._core.events import ENTITY_NAMES, Event, entity_of
from evstore._core.fold import Fold
from evstore._core.model import Status
from evstore._core.times import format_time
from evstore._storage.audit import enos_of, snapshot_of
from evstore._storage.retention import Retained, retained

if TYPE_CHECKING:
    from evstore._store.store import Store

Key = tuple[str, str]  # (entity, id)


class EntryState(NamedTuple):
    """One entry live at a replayed point."""

    entity: str
    id: str
    status: Status


class Point(msgspec.Struct):
    """Where a replay of the feed stopped: the last event it folded in (0 when none)."""

    position: int = 0
    time: int = 0


class Healer(msgspec.Struct):
    """The snapshots that end broken folds, read only for the entries whose fold broke."""

    read: Callable[[Key], SnapshotRecord | None] = lambda key: None
    cache: dict[Key, SnapshotRecord | None] = msgspec.field(default_factory=dict)

    def snapshot(self, key: Key) -> SnapshotRecord | None:
        if key not in self.cache:
            self.cache[key] = self.read(key)
        return self.cache[key]

    def step(self, folds: dict[Key, Fold], event: Event) -> None:
        """Fold ``event`` into its entry's fold, ending a break first when the entry's
        snapshot was taken before it."""
        key = (event.entity, event.id)
        fold = folds.setdefault(key, Fold())
        if fold.reason is not None:
            fold.heal(self.snapshot(key), event.position - 1)
        fold.step_event(event)

    def finish(
        self, folds: dict[Key, Fold], within: Callable[[SnapshotRecord], bool],
        keys: Iterable[Key] | None = None,
    ) -> None:
        """End the breaks (of the folds of ``keys``; of all by default) that a snapshot
        ``within`` the replayed point ends."""
        for key in folds if keys is None else keys:
            fold = folds[key]
            snapshot = self.snapshot(key) if fold.reason is not None else None
            if snapshot is not None and within(snapshot):
                fold.heal(snapshot, snapshot.position)


def healer(store: Store) -> Healer:
    """A ``Healer`` that reads ``store``'s snapshots."""

    def read(key: Key) -> SnapshotRecord | None:
        entity, ident = key
        for eno in enos_of(store._names, ident):
            if ENTITY_NAMES[store._names[eno][0]] == entity:
                return snapshot_of(store._log, eno)
        return None

    return Healer(read)


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
    key = (_entity_of(id, history, bases, seq), id)
    fold = _fold_entry(
        store, key, _start(id, bases, name, bound),
        (event for event in history if (event.seq if name == "seq" else event.time) <= bound),
        lambda snap: (snap.seq if name == "seq" else snap.time) <= bound,
        last_seq=bound if name == "seq" else None,
    )
    status = fold.shown()
    if status is None:
        raise NotFoundError(f"{id!r}: not live at {name} {bound}")
    return status


def fold_until(store: Store, key: Key, position: int) -> Fold:
    """The fold of one entry, ``key`` = (entity, id), over its events up to ``position``
    (the feed after retention's floor: from its base when it has one)."""
    bases = retained(store._log, enos_of(store._names, key[1])).bases
    start = Fold.from_snapshot(next(iter(bases.values()))) if bases else Fold()
    history = (event for event in store.history(key[1]) if event.position <= position)
    return _fold_entry(store, key, start, history, lambda snap: snap.position <= position)


def _fold_entry(
    store: Store, key: Key, start: Fold, events: Iterable[Event],
    within: Callable[[SnapshotRecord], bool], last_seq: int | None = None,
) -> Fold:
    """Fold one entry's ``events`` onto ``start``, up to its event ``last_seq`` when given
    (missing: a break); a snapshot ``within`` the bound ends a break."""
    folds = {key: start}
    heal = healer(store)
    for event in events:
        heal.step(folds, event)
    if last_seq is not None:
        start.expect(last_seq)
    heal.finish(folds, within, [key])
    return folds[key]


def dropped_events(store: Store, id: str) -> int:
    """How many of ``id``'s first events retention dropped (0 when none)."""
    bases = retained(store._log, enos_of(store._names, id)).bases
    return max((base.seq for base in bases.values()), default=0)


def _entity_of(
    id: str, history: list[Event], bases: list[SnapshotRecord], seq: int | None
) -> str:
    """Which entity ``id`` names, checking that it names one and has event ``seq``."""
    entities = {event.entity for event in history}
    entities.update(ENTITY_NAMES[entity_of(base.status)] for base in bases)
    if not entities:
        raise NotFoundError(f"{id!r}: no such container or sandbox in the store's history")
    if len(entities) > 1:
        raise AmbiguousIDError(f"{id!r} names both a container and a sandbox")
    last = history[-1].seq if history else bases[0].seq
    if seq is not None and seq > last:
        raise NotFoundError(f"{id!r}: has no event {seq} (its last is {last})")
    (entity,) = entities
    return entity


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
    return Fold.from_snapshot(base)


def states_at(
    store: Store, position: int | None = None, time: int | None = None
) -> list[EntryState]:
    """Every entry live at global ``position`` or at wall-clock ``time`` (ns), with its
    status there, sorted by entity and id. Exactly one of the two must be given."""
    return replay_feed(store.events(), position, time, feed_start(store))[0]


class FeedStart(msgspec.Struct, frozen=True):
    """What a replay of a store's whole feed starts from (the floor and every base), and
    the snapshots that end broken folds."""

    retained: Retained = msgspec.field(default_factory=Retained)
    healer: Healer = msgspec.field(default_factory=Healer)

    @property
    def floor(self) -> FloorV1:
        return self.retained.floor


def feed_start(store: Store) -> FeedStart:
    """What a replay of ``store``'s whole feed starts from."""
    return FeedStart(retained(store._log), healer(store))


def replay_feed(
    events: Iterable[Event], position: int | None = None, time: int | None = None,
    start: FeedStart | None = None,
) -> tuple[list[EntryState], Point]:
    """``states_at`` over any feed (the command line passes one that shows progress),
    with the last event folded in. ``start`` is ``feed_start(store)``, for a store that
    retention has trimmed or whose feed has a gap."""
    name, bound = _one_bound(position=position, time=time)
    start = start if start is not None else FeedStart()
    floor = start.floor
    if floor.position and bound < (floor.position if name == "position" else floor.time):
        raise HistoryDroppedError(
            f"the history up to position {floor.position} ({format_time(floor.time)}) was"
            " dropped by compaction (retention): replay a later point"
        )
    folds = seeded(start.retained.bases)
    point = Point(floor.position, floor.time)
    for event in events:
        if name == "position" and event.position > bound:
            break  # the feed is in position order; times need not be
        if name == "time" and event.time > bound:
            continue
        start.healer.step(folds, event)
        point = Point(event.position, event.time)
    start.healer.finish(  # a snapshot within the bound, of an event this replay has read
        folds, lambda snap: snap.position <= point.position and (
            name == "position" or snap.time <= bound
        ),
    )
    return _live(folds), point


def seeded(bases: dict[int, SnapshotRecord]) -> dict[Key, Fold]:
    """The folds of the entries whose history starts at a base."""
    return {
        (ENTITY_NAMES[entity_of(base.status)], base.metadata.id): Fold.from_snapshot(base)
        for base in bases.values()
    }


def _live(folds: dict[Key, Fold]) -> list[EntryState]:
    found = [
        EntryState(entity, ident, status)
        for (entity, ident), fold in folds.items()
        if (status := fold.shown()) is not None
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

