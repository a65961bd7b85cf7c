"""Shipping one node's log to the fleet database: every event exactly once, in order.

Exactly once rests on two things. Each batch of events goes in one PostgreSQL transaction
together with the ``evstore_current`` rows it changes, so the database holds whole batches
only; and a shipper starts from the last position the database holds for its node, so a
shipper killed at any moment is simply run again. The primary key (node, position) refuses
a duplicate should two shippers of one node ever run at once.

The store is opened read-only, beside the runtime that writes it: each read of the feed is a
fresh LMDB transaction, so a follower sees every new commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from os import PathLike

import msgspec

from evstore._core.extras import missing_extra

try:
    import psycopg
except ModuleNotFoundError as exc:
    raise missing_extra("fleet", "evstore.fleet") from exc

from evstore._core import inputs
from evstore._core.errors import FleetError, HistoryDroppedError, InvalidInputError
from evstore._core.events import Event
from evstore._core.fold import Fold, mark_unknown
from evstore._core.model import Status, state_name
from evstore._fleet.database import (
    Connection,
    check_dsn,
    claim_node,
    connect,
    current_rows,
    ensure_schema,
    node_identity,
    one_line,
    shipped_event,
    shipped_position,
)
from evstore._history.replay import feed_start, fold_until, healer
from evstore._store.store import Store, open_store

BATCH = 1_000  # events per transaction
POLL = 0.1  # seconds between looks at the log once caught up
FIRST_RETRY = 0.1  # seconds before the first reconnection; doubled on each failure...
MAX_RETRY = 5.0  # ...up to this
NS = 1_000_000_000

_COPY_EVENTS = (
    "copy evstore_events (node, position, entity, id, seq, time, type, changes) from stdin"
)
# one statement per batch with its rows as arrays (sent binary: no text escaping), as a
# round trip per row would cost more than everything else a batch does
_UPSERT = """insert into evstore_current (node, entity, id, state, status, position)
    select %s, * from unnest(
        %b::text[], %b::text[], %b::text[], %b::text[]::jsonb[], %b::bigint[])
    on conflict (node, entity, id) do update
    set state = excluded.state, status = excluded.status, position = excluded.position"""
_DELETE = """delete from evstore_current
    where node = %s and (entity, id) in (select * from unnest(%b::text[], %b::text[]))"""
_encoder = msgspec.json.Encoder()

Key = tuple[str, str]  # (entity, id)


@dataclass(frozen=True)
class BatchReport:
    """One committed batch: what it carried and how far the shipper is behind the store."""

    node: str
    first: int  # position of its first event
    position: int  # position of its last event: everything up to here is in the database
    events: int
    shipped: int  # events shipped by this run so far
    store_position: int  # the store's newest position when the batch was committed
    committed_at: int  # wall clock (ns) just after the commit
    times: tuple[int, ...]  # wall clock (ns) at which each of its events was written

    @property
    def lag_events(self) -> int:
        return max(0, self.store_position - self.position)

    @property
    def lag_seconds(self) -> float:
        """From the writing of the batch's newest event to its commit in PostgreSQL."""
        return max(0, self.committed_at - self.times[-1]) / NS


@dataclass
class ShipReport:
    """What a run did: where it resumed, where it stopped, and what it went through."""

    node: str
    resumed_from: int | None = None
    position: int = 0
    shipped: int = 0
    batches: int = 0
    retries: int = 0
    caught_up: bool = False  # False when stopped by a signal before catching up


class Hooks:
    """What a shipper tells its caller; every method does nothing unless overridden."""

    def started(self, position: int, store_position: int) -> None:
        """Connected and resuming after ``position``; the store is at ``store_position``."""

    def batch(self, report: BatchReport) -> None:
        """A batch is committed."""

    def retry(self, reason: str, delay: float) -> None:
        """The database failed (``reason``); the next attempt is in ``delay`` seconds."""


@dataclass
class ShipOptions:
    batch: int = BATCH
    follow: bool = False  # keep shipping new events until ``stop`` is set
    poll: float = POLL
    stop: threading.Event = field(default_factory=threading.Event)
    hooks: Hooks = field(default_factory=Hooks)


def ship(
    path: str | PathLike[str], dsn: str, node: str, options: ShipOptions | None = None
) -> ShipReport:
    """``ship_store`` on the store at ``path``, opened read-only for the run."""
    with open_store(path, readonly=True) as store:
        return ship_store(store, dsn, node, options)


def ship_store(
    store: Store, dsn: str, node: str, options: ShipOptions | None = None
) -> ShipReport:
    """Ship the log of ``store`` to the database at ``dsn`` as ``node``.

    Without ``follow``, returns once the database holds what the store held at the start;
    any database failure raises ``FleetError`` (a rerun resumes). With ``follow``, ships new
    events as they come until ``options.stop`` is set, and rides out database failures by
    reconnecting with exponential backoff. A malformed DSN or an empty node name raise at
    once.
    """
    opts = options or ShipOptions()
    if not inputs.text("node", node).strip():
        raise InvalidInputError("the node name must not be empty")
    inputs.integer("batch", opts.batch, least=1)
    check_dsn(inputs.text("dsn", dsn))
    report = ShipReport(node)
    delay = 0.0
    while not opts.stop.is_set():
        reached = False
        try:
            with connect(dsn) as conn:
                reached = True
                session = Session(conn, store, node)
                delay = 0.0  # resumed: the next failure starts a new backoff
                session.run(opts, report)
                return report
        except psycopg.OperationalError as exc:
            if not opts.follow:
                what = "PostgreSQL failed" if reached else "cannot connect to PostgreSQL"
                raise FleetError(f"{what}: {one_line(exc)}") from exc
            delay = min(MAX_RETRY, max(FIRST_RETRY, delay * 2))
            report.retries += 1
            opts.hooks.retry(one_line(exc), delay)
            opts.stop.wait(delay)
        except psycopg.Error as exc:
            raise FleetError(f"node {node!r}: PostgreSQL: {one_line(exc)}") from exc
    return report


class Session:
    """One connection's worth of shipping: resumes from the database, then ships batches.

    ``folds`` holds, for every live entry of the node, its status as of the last event
    shipped (what ``evstore_current`` holds; an entry deleted since is folded again from
    the store when its id comes back), so each batch's new rows are the fold of the
    batch's events onto them, with the one fold every reader uses (``evstore._core.fold``)
    and, as ``replay`` does, the entry's snapshot ending a break.
    """

    def __init__(self, conn: Connection, store: Store, node: str) -> None:
        self.conn = conn
        self.store = store
        self.node = node
        ensure_schema(conn)
        self.position = shipped_position(conn, node)
        check_identity(conn, store, node, self.position)
        dropped = feed_start(store).floor.position
        if self.position < dropped:  # exactly once would be a lie: refuse, say why
            raise HistoryDroppedError(
                f"{store.path}: events up to position {dropped:,} were dropped by compaction,"
                f" but node {node!r} has only up to {self.position:,} in PostgreSQL"
            )
        self.folds = {
            (entity, ident): restored_fold(store, (entity, ident), status, seq, self.position)
            for entity, ident, status, seq in current_rows(conn, node)
        }

    def run(self, opts: ShipOptions, report: ShipReport) -> None:
        target = self.store.last_position  # --once: what the store holds now
        if report.resumed_from is None:
            report.resumed_from = self.position
        report.position = self.position
        opts.hooks.started(self.position, target)
        while not opts.stop.is_set():
            events = list(islice(self.store.events(self.position), opts.batch))
            if events:
                opts.hooks.batch(self.commit(events, report))
            if not opts.follow and (not events or self.position >= target):
                report.caught_up = True
                return
            if len(events) < opts.batch:  # drained: wait for the writer
                opts.stop.wait(opts.poll)

    def commit(self, events: Sequence[Event], report: ShipReport) -> BatchReport:
        """Ship ``events`` and their entries' new current rows in one transaction."""
        upserts, deletes = self.fold(events)
        with self.conn.transaction(), self.conn.cursor() as cursor:
            with cursor.copy(_COPY_EVENTS) as copy:
                for e in events:
                    copy.write_row(
                        (self.node, e.position, e.entity, e.id, e.seq, e.time, e.type,
                         _encoder.encode(e.changes).decode())
                    )
            if upserts:
                cursor.execute(_UPSERT, (self.node, *map(list, zip(*upserts, strict=True))))
            if deletes:
                cursor.execute(_DELETE, (self.node, *map(list, zip(*deletes, strict=True))))
        committed_at = time.time_ns()
        self.position = events[-1].position
        report.position = self.position
        report.shipped += len(events)
        report.batches += 1
        return BatchReport(
            self.node, events[0].position, self.position, len(events), report.shipped,
            self.store.last_position, committed_at, tuple(e.time for e in events),
        )

    def fold(
        self, events: Sequence[Event]
    ) -> tuple[list[tuple[str, str, str, str, int]], list[tuple[str, str]]]:
        """Fold ``events`` into the entries' statuses: the (entity, id, state, status,
        position) rows to upsert, and the (entity, id) of the rows to delete."""
        last: dict[Key, int] = {}
        heal = healer(self.store)  # per batch: the writer may snapshot a broken entry anew
        for event in events:
            key = (event.entity, event.id)
            if key not in self.folds and event.seq > 1:  # deleted, or before this session
                self.folds[key] = fold_until(self.store, key, event.position - 1)
            heal.step(self.folds, event)
            last[key] = event.position
        end = events[-1].position
        heal.finish(self.folds, lambda snap: snap.position <= end, last)
        upserts = []
        deletes = []
        for (entity, ident), position in last.items():
            status = self.folds[entity, ident].shown()
            if status is None:  # deleted (or never readable): no current row
                del self.folds[entity, ident]
                deletes.append((entity, ident))
            else:
                upserts.append(
                    (entity, ident, state_name(status), _encoder.encode(status).decode(), position)
                )
        return upserts, deletes


def check_identity(conn: Connection, store: Store, node: str, shipped: int) -> None:
    """Refuse (``FleetError``) to ship ``store`` as ``node`` when the database holds another
    store's history for that node, or more of it than the store has: shipping would mix
    two histories, or skip the store's first events. A node shipped before identities were
    recorded takes this store's, when the last event shipped is the store's own."""
    store_id = store.store_id
    if store_id is None:
        raise FleetError(
            f"{store.path}: the store has no identity yet (made by an older evstore): open it"
            " once for writing (its runtime does), then ship it"
        )
    recorded = node_identity(conn, node)
    if recorded is not None and recorded != store_id:
        raise FleetError(_mixed(store, node, f"store {recorded}"))
    if store.last_position < shipped:
        raise FleetError(
            f"{store.path}: the store is at position {store.last_position:,}, behind the"
            f" {shipped:,} that PostgreSQL holds for node {node!r} (a restored copy?): ship"
            " it under another node name"
        )
    if recorded is None:
        if shipped and not _same_event(conn, store, node, shipped):
            raise FleetError(_mixed(store, node, "another store"))
        if claim_node(conn, node, store_id) != store_id:
            raise FleetError(_mixed(store, node, "another store"))


def _same_event(conn: Connection, store: Store, node: str, position: int) -> bool:
    """Whether the event ``node`` shipped at ``position`` is the store's event there."""
    ours = next(iter(store.events(position - 1)), None)
    theirs = shipped_event(conn, node, position)
    return ours is not None and ours.position == position and theirs == (
        ours.id, ours.seq, ours.time
    )


def _mixed(store: Store, node: str, other: str) -> str:
    return (
        f"{store.path}: node {node!r} holds the history of {other} in PostgreSQL, not of this"
        f" store ({store.store_id}): ship it under another node name"
    )


def restored_fold(store: Store, key: Key, status: Status, seq: int, position: int) -> Fold:
    """The fold of an entry as ``evstore_current`` left it, shipped up to ``position``. A
    status that shows UNKNOWN may be a broken fold, which only the store's history can tell
    from a sandbox put in that state: such an entry is folded again from the store."""
    if mark_unknown(status) == status:
        return fold_until(store, key, position)
    fold = Fold(seq=seq)
    fold.status = status
    return fold
