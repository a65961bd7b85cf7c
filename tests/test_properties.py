"""Random sequences of operations, reopens and crashes against a plain in-memory model."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxState, SandboxStatus
from evstore._core.states import check_move
from evstore._ops.compact import compact
from evstore._ops.verify import check_in_process
from evstore._store.store import abandon

IDS = st.sampled_from(["a", "ab", "b", "c"])
KINDS = st.sampled_from(["containers", "sandboxes"])
Status = ContainerStatus | SandboxStatus
CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "pid": st.integers(0, 2**31),
        "created_at": st.integers(0, 3),
        "started_at": st.integers(0, 3),
        "finished_at": st.integers(0, 3),
        "exit_code": st.integers(-1, 255),
        "message": st.text(max_size=5),
        "starting": st.booleans(),
    },
)
SANDBOX_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "pid": st.integers(0, 2**31),
        "state": st.sampled_from([SandboxState.INIT, SandboxState.READY, SandboxState.NOTREADY]),
        "exit_status": st.integers(0, 255),
    },
)


def state_of(status: Status) -> evstore.ContainerState | SandboxState:
    return status.state() if isinstance(status, ContainerStatus) else status.state


def durable(status: Status | None) -> Status | None:
    if isinstance(status, ContainerStatus):
        return msgspec.structs.replace(status, starting=False)
    return status


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp())
        self.store = evstore.open(
            self.dir / "s", snapshot_every=2, checkpoint_every=3, index_every=3, probe=False
        )
        # (kind, id) -> statuses since the last durable one (first item: durable; None: absent)
        self.model: dict[tuple[str, str], list[Status | None]] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir)

    def current(self, key: tuple[str, str]) -> Status | None:
        return self.model.get(key, [None])[-1]

    @rule(kind=KINDS, ident=IDS, created=st.integers(0, 3))
    def add(self, kind: str, ident: str, created: int) -> None:
        key = (kind, ident)
        if kind == "containers":
            metadata, status = ContainerMetadata(id=ident), ContainerStatus(created_at=created)
        else:
            metadata, status = SandboxMetadata(id=ident), SandboxStatus(created_at=created)
        other = ("sandboxes" if kind == "containers" else "containers", ident)
        try:
            getattr(self.store, kind).add(metadata, status)
        except evstore.AlreadyExistsError:
            # live here, or the other kind has (or had) the id: one id space
            assert self.current(key) is not None or other in self.model
        else:
            assert self.current(key) is None and self.current(other) is None
            self.model[key] = [status]

    @rule(kind=KINDS, ident=IDS, data=st.data(), sync=st.booleans())
    def update(self, kind: str, ident: str, data: st.DataObject, sync: bool) -> None:
        key = (kind, ident)
        old = self.current(key)
        if old is None:
            return
        changes = data.draw(CHANGES if kind == "containers" else SANDBOX_CHANGES)
        new = msgspec.structs.replace(old, **changes)
        entry = getattr(self.store, kind).get(ident)
        method = entry.status.update_sync if sync else entry.status.update
        try:
            check_move(state_of(old), state_of(new))
        except evstore.InvalidTransitionError:
            try:
                method(lambda s: msgspec.structs.replace(s, **changes))
            except evstore.InvalidTransitionError:
                return
            raise AssertionError("an invalid move was accepted") from None
        method(lambda s: msgspec.structs.replace(s, **changes))
        history = self.model[key]
        self.model[key] = [new] if sync else [*history, new]

    @rule(kind=KINDS, ident=IDS)
    def delete(self, kind: str, ident: str) -> None:
        live = [i for (k, i), history in self.model.items() if k == kind and history[-1]]
        try:
            getattr(self.store, kind).delete(ident)  # an exact id only
        except evstore.InvalidInputError:  # a prefix of a live id; the invariant: nothing gone
            assert ident not in live and any(i.startswith(ident) for i in live)
            return
        if ident in live:
            self.model[(kind, ident)] = [None]

    @rule()
    def flush(self) -> None:
        self.store.flush()
        self.model = {key: [history[-1]] for key, history in self.model.items()}

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.reopen_only()
        self.model = {key: [durable(history[-1])] for key, history in self.model.items()}

    @rule(data=st.data())
    def compact_with_retention(self, data: st.DataObject) -> None:
        """Drop history at a random event's time (or all of it): every entry stays as it was
        and the store stays sound."""
        times = [event.time for event in self.store.events()]
        self.store.close()
        self.model = {key: [durable(history[-1])] for key, history in self.model.items()}
        cut = data.draw(st.sampled_from([*times, time.time_ns()]), label="drop_before")
        compact(self.dir / "s", drop_before=cut)
        report = check_in_process(self.dir / "s")
        assert report.ok, report.problems
        self.reopen_only()

    def reopen_only(self) -> None:
        self.store = evstore.open(
            self.dir / "s", snapshot_every=2, checkpoint_every=3, index_every=3, probe=False
        )
        assert self.store.load_report.unknown == {}

    @rule()
    def crash(self) -> None:
        abandon(self.store)
        report = check_in_process(self.dir / "s")  # the index, up to its mark, and the tail
        assert report.ok, report.problems
        self.reopen_only()
        for key, history in self.model.items():
            found = self.lookup(key)
            # what survives is the last durable state or a later one, in order
            candidates = [durable(status) for status in history]
            assert found in candidates, (key, found, candidates)
            self.model[key] = [found]
        feed = [(event.id, event.position) for event in self.store.events()]
        for ident in {ident for _kind, ident in self.model}:
            # an entry's history (index, then the log's tail) is its part of the whole log;
            # an id retention removed entirely names nothing, or a longer id it prefixes
            positions = self.exact_history(ident)
            assert positions == [pos for name, pos in feed if name == ident]

    def exact_history(self, ident: str) -> list[int]:
        try:
            if self.store.resolve_id(ident) != ident:
                return []
        except (evstore.NotFoundError, evstore.AmbiguousIDError):
            return []
        return [event.position for event in self.store.history(ident)]

    def lookup(self, key: tuple[str, str]) -> Status | None:
        """By exact id: ``get`` would resolve a deleted id to a live one it prefixes."""
        for entry in getattr(self.store, key[0]).list():
            if entry.id == key[1]:
                return entry.status.get()  # type: ignore[no-any-return]
        return None

    @invariant()
    def matches_model(self) -> None:
        for key, history in self.model.items():
            entries = getattr(self.store, key[0])
            live = key[1] in {entry.id for entry in entries.list()}
            assert live == (history[-1] is not None)
            if live:
                assert entries.get(key[1]).status.get() == history[-1]


StoreModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("EVSTORE_PROPERTY_EXAMPLES", "60")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_store_model = StoreModel.TestCase
