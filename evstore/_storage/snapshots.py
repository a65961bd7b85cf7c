"""When to snapshot: every N events of an entry, and whatever keeps crash replay short.

The store keeps one snapshot per entry (its fold at some seq) and a *checkpoint*
position: every event at or before it is covered by its entry's snapshot, so opening
replays only the log after the checkpoint. An entry whose events are not yet covered is
*dirty*; the oldest dirty entry holds the checkpoint back, so it is snapshotted once the
log has run ``checkpoint_every`` events past it. An entry loaded damaged is *pinned*: it
holds the checkpoint at its damage until an update repairs it, so every open sees it.
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter

import msgspec

from evstore._core.codec import SNAPSHOT_TYPES, SnapshotRecord
from evstore._core.events import Entity
from evstore._core.model import Metadata, Status


class Write(msgspec.Struct, eq=False, gc=False):
    """One event on its way to disk, with what a snapshot taken right after it would hold."""

    entity: Entity
    eno: int
    seq: int
    time: int
    payload: bytes
    metadata: Metadata
    status: Status
    deleted: bool = False
    sync: bool = True
    repair: bool = False


class Dirty(msgspec.Struct):
    first: int  # position of its first event not covered by a snapshot
    last: Write | None  # None while pinned by damage found at load
    last_pos: int = 0
    pinned: bool = False


class Plan(msgspec.Struct):
    # eno -> (write, position)
    snapshots: dict[int, tuple[Write, int]] = msgspec.field(default_factory=dict)
    checkpoint: int = 0
    # each entry of the batch: its last write and position, in order of its first event
    last: dict[int, tuple[Write, int]] = msgspec.field(default_factory=dict)
    # entries not dirty before the batch: the position of their first event, in that order
    new_first: dict[int, int] = msgspec.field(default_factory=dict)


_eno = attrgetter("eno")


def snapshot_record(write: Write, position: int) -> SnapshotRecord:
    return SNAPSHOT_TYPES[write.entity](
        seq=write.seq,
        position=position,
        time=write.time,
        deleted=write.deleted,
        metadata=write.metadata,  # type: ignore[arg-type]
        status=write.status,  # type: ignore[arg-type]
    )


class SnapshotPolicy:
    """Decides, for each batch, which snapshots go in its transaction and the new checkpoint."""

    def __init__(
        self, *, every: int, checkpoint_every: int, snap_seq: dict[int, int],
        dirty: dict[int, Dirty], checkpoint: int,
    ) -> None:
        self.every = every
        self.checkpoint_every = checkpoint_every
        self.snap_seq = snap_seq
        self.dirty = dirty  # in order of ``first``
        self.checkpoint = checkpoint

    def plan(self, items: list[Write], first_pos: int) -> Plan:
        """Pure: nothing changes until ``applied`` is called after the commit succeeded.

        The batch is read per event only in C (``dict`` over ``zip``); all that follows is
        per entry, as a batch holds hundreds of events of a few dozen entries.
        """
        positions = range(first_pos, first_pos + len(items))
        # the last position of each entry, keys in order of their first event
        last_at = dict(zip(map(_eno, items), positions, strict=True))
        last = {eno: (items[pos - first_pos], pos) for eno, pos in last_at.items()}
        fresh = [eno for eno in last_at if eno not in self.dirty]
        new_first: dict[int, int] = {}
        if fresh:  # built backwards, each entry keeps its first position
            first_at = dict(zip(map(_eno, reversed(items)), reversed(positions), strict=True))
            new_first = {eno: first_at[eno] for eno in fresh}
        plan = Plan(last=last, new_first=new_first)
        for eno, (item, pos) in last.items():
            if item.repair or (
                not self._pinned(eno) and item.seq - self.snap_seq.get(eno, 0) >= self.every
            ):
                plan.snapshots[eno] = (item, pos)
        last_pos = first_pos + len(items) - 1
        plan.checkpoint = self._checkpoint(plan, last, new_first, last_pos, force=False)
        return plan

    def plan_all(self, last_pos: int) -> Plan:
        """Snapshot every dirty entry (on a clean close), so the next open replays nothing."""
        plan = Plan()
        plan.checkpoint = self._checkpoint(plan, {}, {}, last_pos, force=True)
        return plan

    def _pinned(self, eno: int) -> bool:
        dirty = self.dirty.get(eno)
        return dirty is not None and dirty.pinned

    def _checkpoint(
        self, plan: Plan, last: dict[int, tuple[Write, int]], new_first: dict[int, int],
        last_pos: int, *, force: bool,
    ) -> int:
        """Walk dirty entries oldest first, snapshotting those too far behind."""
        # lazily: the walk mostly stops at the first entry, and there may be 100,000 dirty
        order = chain(((eno, d.first) for eno, d in self.dirty.items()), new_first.items())
        for eno, first in order:
            if eno in plan.snapshots:
                continue
            if self._pinned(eno) or not (force or last_pos - first >= self.checkpoint_every):
                return first - 1
            plan.snapshots[eno] = last[eno] if eno in last else self._latest(eno)
        return last_pos

    def _latest(self, eno: int) -> tuple[Write, int]:
        dirty = self.dirty[eno]
        assert dirty.last is not None  # only pinned entries have none, and they are skipped
        return dirty.last, dirty.last_pos

    def applied(self, plan: Plan) -> None:
        """Take in a planned batch once it is committed: per entry, not per event."""
        dirty = self.dirty
        for eno, first in plan.new_first.items():  # in order of ``first``, as dirty keeps
            write, pos = plan.last[eno]
            dirty[eno] = Dirty(first, write, pos)
        for eno, (write, pos) in plan.last.items():
            entry = dirty[eno]
            if not entry.pinned:
                entry.last, entry.last_pos = write, pos
        for eno, (write, _pos) in plan.snapshots.items():
            dirty.pop(eno, None)
            self.snap_seq[eno] = write.seq
        self.checkpoint = plan.checkpoint
