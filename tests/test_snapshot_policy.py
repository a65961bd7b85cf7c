"""The snapshot policy against a per-event model of it: which entries are dirty, in what
order, from which position, and where the checkpoint lands, over random batches."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evstore import ContainerMetadata, ContainerStatus
from evstore._core.events import Entity
from evstore._storage.snapshots import Dirty, SnapshotPolicy, Write

EVERY, CHECKPOINT_EVERY = 4, 6
BATCHES = st.lists(st.lists(st.integers(1, 5), min_size=1, max_size=12), max_size=12)


def _write(eno: int, seq: int) -> Write:
    return Write(
        Entity.CONTAINER, eno, seq, 0, b"", ContainerMetadata(id=str(eno)), ContainerStatus()
    )


class Model:
    """The policy's rules, event by event: an entry is dirty from its first event that no
    snapshot covers; it is snapshotted every ``EVERY`` events, or once the log has run
    ``CHECKPOINT_EVERY`` past that first event (at its last write, in the batch or not); the
    checkpoint stops before the oldest entry left dirty. A pinned entry 5 is never
    snapshotted and holds the checkpoint."""

    def __init__(self, pinned: bool) -> None:
        # eno -> [first position, last position, last seq]
        self.dirty: dict[int, list[int]] = {5: [0, 0, 0]} if pinned else {}
        self.pinned = pinned
        self.snap_seq: dict[int, int] = {}
        self.checkpoint = -1

    def apply(self, batch: list[tuple[int, int]], first: int) -> set[int]:
        last_pos = first + len(batch) - 1
        seen: dict[int, int] = {}
        for offset, (eno, seq) in enumerate(batch):
            self.dirty.setdefault(eno, [first + offset, 0, 0])[1:] = [first + offset, seq]
            seen[eno] = seq
        held = {5} if self.pinned else set()
        snapped = {eno for eno, seq in seen.items()
                   if eno not in held and seq - self.snap_seq.get(eno, 0) >= EVERY}
        self.checkpoint = last_pos
        for eno, (start, _, _) in sorted(self.dirty.items(), key=lambda kv: kv[1][0]):
            if eno in snapped:
                continue
            if eno in held or last_pos - start < CHECKPOINT_EVERY:
                self.checkpoint = start - 1
                break
            snapped.add(eno)
        for eno in snapped:
            self.snap_seq[eno] = self.dirty.pop(eno)[2]
        return snapped


@settings(max_examples=300, deadline=None)
@given(BATCHES, st.booleans())
def test_the_policy_plans_and_keeps_what_the_per_event_rules_say(
    batches: list[list[int]], pinned: bool
) -> None:
    held = {5: Dirty(0, None, 0, pinned=True)} if pinned else {}
    policy = SnapshotPolicy(
        every=EVERY, checkpoint_every=CHECKPOINT_EVERY, snap_seq={}, dirty=held,
        checkpoint=-1,
    )
    model = Model(pinned)
    seqs: dict[int, int] = {}
    position = 1
    for enos in batches:
        items = []
        for eno in enos:
            seqs[eno] = seqs.get(eno, 0) + 1
            items.append(_write(eno, seqs[eno]))
        plan = policy.plan(items, position)
        snapped = model.apply([(w.eno, w.seq) for w in items], position)
        assert set(plan.snapshots) == snapped
        for eno, (write, pos) in plan.snapshots.items():  # at its last write
            assert write.seq == seqs[eno]
            if eno in enos:  # of the batch
                assert pos == position + len(enos) - 1 - enos[::-1].index(eno)
        policy.applied(plan)
        assert policy.checkpoint == model.checkpoint
        assert policy.snap_seq == model.snap_seq
        assert list(policy.dirty) == sorted(model.dirty, key=lambda eno: model.dirty[eno][0])
        for eno, entry in policy.dirty.items():
            assert entry.first == model.dirty[eno][0]
            if not entry.pinned:
                assert entry.last_pos == model.dirty[eno][1]
                assert entry.last is not None and entry.last.seq == seqs[eno]
        position += len(items)
