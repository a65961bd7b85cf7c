"""Status updates: rollback, isolation, transient fields, durability, the state machine,
the event log, the load report, concurrency and how a store is opened and shared."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import evstore
from evstore import (
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    EvstoreError,
    InvalidTransitionError,
    LinuxContainerResources,
    ReadOnlyError,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
    StoreLockedError,
)
from evstore._store.store import abandon

replace = msgspec.structs.replace

CREATED = ContainerStatus(pid=0, created_at=1_000)
RUNNING = ContainerStatus(pid=10, created_at=1_000, started_at=2_000)
EXITED = ContainerStatus(pid=10, created_at=1_000, started_at=2_000, finished_at=3_000)


def add_c(store: Any, cid: str, status: ContainerStatus = CREATED) -> Any:
    return store.containers.add(ContainerMetadata(cid), status)


def add_s(store: Any, sid: str, state: SandboxState = SandboxState.INIT) -> Any:
    return store.sandboxes.add(SandboxMetadata(sid), SandboxStatus(created_at=1_000, state=state))


def setter(**fields: Any) -> Callable[[Any], Any]:
    return lambda st: replace(st, **fields)


def reopened_status(path: Path, cid: str, *, sandbox: bool = False) -> Any:
    with evstore.open(path) as s:
        coll = s.sandboxes if sandbox else s.containers
        return coll.get(cid).status.get()


def history(path: Path, cid: str) -> list[Any]:
    with evstore.open(path) as s:
        return list(s.history(cid))


def try_mutate(obj: Any, **fields: Any) -> None:
    """Alter a status in place if it lets us (a frozen one refuses, which is fine too)."""
    for name, value in fields.items():
        with contextlib.suppress(AttributeError, TypeError):
            setattr(obj, name, value)


# --- rollback ---------------------------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("method", ["update", "update_sync"])
def test_update_rollback(store_path: Path, method: str) -> None:
    """containerd's TestStatus rollback: fn fails, the error comes back as is, nothing moves."""
    err = Boom("injected")

    def fail(st: ContainerStatus) -> ContainerStatus:
        st.pid = 999  # alters its private copy, then fails
        st.started_at = 5_000
        raise err

    with evstore.open(store_path) as s:
        entry = add_c(s, "c1", RUNNING)
        before = list(s.history("c1"))
        with pytest.raises(Boom) as excinfo:
            getattr(entry.status, method)(fail)
        assert excinfo.value is err
        assert entry.status.get() == RUNNING
        assert s.containers.get("c1").status.get() == RUNNING
        assert list(s.history("c1")) == before
        s.flush()
    assert reopened_status(store_path, "c1") == RUNNING
    assert len(history(store_path, "c1")) == len(before) == 1


def test_update_rollback_keeps_later_updates_working(store: Any) -> None:
    entry = add_c(store, "c1")

    def fail(st: ContainerStatus) -> ContainerStatus:
        raise KeyError("x")

    with pytest.raises(KeyError):
        entry.status.update_sync(fail)
    got = entry.status.update_sync(setter(pid=3))
    assert got.pid == 3
    assert [e.seq for e in store.history("c1")] == [1, 2]


@pytest.mark.parametrize("bad", [None, {"pid": 1}, 42, SandboxStatus(), "status"])
@pytest.mark.parametrize("method", ["update", "update_sync"])
def test_update_fn_returning_non_status(store_path: Path, bad: Any, method: str) -> None:
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1", RUNNING)
        with pytest.raises(EvstoreError) as excinfo:
            getattr(entry.status, method)(lambda st: bad)
        assert isinstance(excinfo.value, evstore.InvalidInputError)
        assert entry.status.get() == RUNNING
        assert len(s.history("c1")) == 1
    assert reopened_status(store_path, "c1") == RUNNING
    assert len(history(store_path, "c1")) == 1


UNSTORABLE = {
    "pid as text": {"pid": "x"},
    "pid as float": {"pid": 10.5},
    "pid equal but float": {"pid": 10.0},  # equal, so a diff by value alone would miss it
    "pid as bool": {"pid": True},
    "pid past 64 bits": {"pid": 2**70},
    "reason as int": {"reason": 5},
    "message not encodable": {"message": "\ud800"},
    "resources as dict": {"resources": {"linux": {}}},
    "unified values not text": {
        "resources": ContainerResources(linux=LinuxContainerResources(unified={"a": 1}))  # type: ignore[dict-item]
    },
    "memory limit as float": {
        "resources": ContainerResources(linux=LinuxContainerResources(memory_limit_in_bytes=1.5))  # type: ignore[arg-type]
    },
}


@pytest.mark.parametrize("fields", UNSTORABLE.values(), ids=UNSTORABLE.keys())
@pytest.mark.parametrize("method", ["update", "update_sync"])
def test_update_fn_returning_a_status_that_cannot_be_stored(
    store_path: Path, fields: dict[str, Any], method: str
) -> None:
    """Bad input loses nothing: refused before anything is written or shown, and the
    store reopens with every entry as it was (none UNKNOWN, no undecodable record)."""
    with evstore.open(store_path, snapshot_every=2) as s:
        entry = add_c(s, "c1", RUNNING)
        with pytest.raises(evstore.InvalidInputError, match="cannot be stored"):
            getattr(entry.status, method)(setter(**fields))
        assert entry.status.get() == RUNNING
        for pid in (11, 12, 13):  # the entry goes on working, snapshots included
            entry.status.update_sync(setter(pid=pid))
    with evstore.open(store_path) as s:
        assert s.load_report.unknown == {}
        assert s.containers.get("c1").status.get() == replace(RUNNING, pid=13)
        assert [e.seq for e in s.history("c1")] == [1, 2, 3, 4]


@pytest.mark.parametrize("fields", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_add_of_a_status_that_cannot_be_stored(store_path: Path, fields: dict[str, Any]) -> None:
    with evstore.open(store_path) as s:
        with pytest.raises(evstore.InvalidInputError, match="cannot be stored"):
            add_c(s, "c1", replace(RUNNING, **fields))
        add_c(s, "c1", RUNNING)  # the id was not taken
    with evstore.open(store_path) as s:
        assert s.load_report.unknown == {}
        assert [e.id for e in s.containers.list()] == ["c1"]


@pytest.mark.parametrize(
    "metadata",
    [ContainerMetadata("c1", name=5), ContainerMetadata("c1", log_path=b"/x")],  # type: ignore[arg-type]
)
def test_add_of_metadata_that_cannot_be_stored(store: Any, metadata: ContainerMetadata) -> None:
    with pytest.raises(evstore.InvalidInputError, match="cannot be stored"):
        store.containers.add(metadata, RUNNING)
    assert store.containers.list() == [] and list(store.events()) == []


@pytest.mark.parametrize("state", ["READY", 99, True, None])
@pytest.mark.parametrize("method", ["update", "update_sync", "add"])
def test_sandbox_state_that_is_no_state(store_path: Path, state: Any, method: str) -> None:
    with evstore.open(store_path) as s:
        if method == "add":
            with pytest.raises(evstore.InvalidInputError, match="state must be a SandboxState"):
                s.sandboxes.add(SandboxMetadata("s1"), SandboxStatus(created_at=1, state=state))
            assert s.sandboxes.list() == [] and list(s.events()) == []
            return
        entry = add_s(s, "s1")
        with pytest.raises(evstore.InvalidInputError, match="state must be a SandboxState"):
            getattr(entry.status, method)(setter(state=state))
        assert entry.status.get().state is SandboxState.INIT
    with evstore.open(store_path) as s:
        assert s.load_report.unknown == {} and len(s.history("s1")) == 1


def test_sandbox_state_given_as_its_number(store: Any) -> None:
    """An int naming a state is taken as that state: moves are checked and the event is
    named by it, and the store holds the enum."""
    entry = add_s(store, "s1")
    entry.status.update_sync(setter(state=int(SandboxState.READY)))
    assert entry.status.get().state is SandboxState.READY
    assert store.history("s1")[-1].type == "ready"
    with pytest.raises(InvalidTransitionError):
        entry.status.update_sync(setter(state=int(SandboxState.INIT)))


@pytest.mark.parametrize("method", ["update", "update_sync"])
def test_update_fn_that_is_not_callable(store: Any, method: str) -> None:
    entry = add_c(store, "c1", RUNNING)
    with pytest.raises(evstore.InvalidInputError, match="callable"):
        getattr(entry.status, method)(None)
    assert entry.status.get() == RUNNING


def test_sandbox_update_fn_returning_container_status(store: Any) -> None:
    entry = add_s(store, "s1")
    with pytest.raises(evstore.InvalidInputError):
        entry.status.update_sync(lambda st: ContainerStatus(created_at=1))
    assert entry.status.get() == SandboxStatus(created_at=1_000)


# --- no caller can alter the stored status ----------------------------------------------------


def _res() -> ContainerResources:
    return ContainerResources(
        linux=LinuxContainerResources(cpu_shares=2, unified={"a": "1"}, hugepage_limits=[])
    )


def test_get_returns_unalterable_status(store: Any) -> None:
    entry = add_c(store, "c1", replace(RUNNING, resources=_res()))
    got = entry.status.get()
    try_mutate(got, pid=12345, started_at=0, reason="hacked")
    with contextlib.suppress(AttributeError, TypeError):
        got.resources.linux.cpu_shares = 999
    with contextlib.suppress(AttributeError, TypeError):
        got.resources.linux.unified["b"] = "2"
    with contextlib.suppress(AttributeError, TypeError):
        got.resources.linux.hugepage_limits.append(evstore.HugepageLimit("2MB", 1))
    again = store.containers.get("c1").status.get()
    assert again == replace(RUNNING, resources=_res())


def test_status_given_to_add_is_not_kept(store: Any) -> None:
    status = replace(RUNNING, resources=_res())
    entry = add_c(store, "c1", status)
    try_mutate(status, pid=1, reason="later")
    with contextlib.suppress(AttributeError, TypeError):
        status.resources.linux.unified["b"] = "2"  # type: ignore[union-attr]
    assert entry.status.get() == replace(RUNNING, resources=_res())


def test_status_seen_by_fn_and_returned_is_not_kept(store: Any) -> None:
    entry = add_c(store, "c1", replace(CREATED, resources=_res()))
    seen: list[ContainerStatus] = []

    def in_place(st: ContainerStatus) -> ContainerStatus:
        seen.append(st)
        st.pid = 7
        return st

    returned = entry.status.update_sync(in_place)
    assert returned.pid == 7
    assert entry.status.get().pid == 7
    try_mutate(seen[0], pid=100, reason="after")
    with contextlib.suppress(AttributeError, TypeError):
        seen[0].resources.linux.unified["c"] = "3"  # type: ignore[union-attr]
    try_mutate(returned, pid=200, message="after")
    assert entry.status.get() == replace(CREATED, pid=7, resources=_res())

    made: list[ContainerStatus] = []

    def via_replace(st: ContainerStatus) -> ContainerStatus:
        new = replace(st, pid=8)
        made.append(new)
        return new

    returned2 = entry.status.update(via_replace)
    try_mutate(made[0], pid=300)
    try_mutate(returned2, pid=400)
    with contextlib.suppress(AttributeError, TypeError):  # resources left alone by fn
        returned2.resources.linux.unified["d"] = "4"  # type: ignore[union-attr]
        made[0].resources.linux.cpu_shares = 99  # type: ignore[union-attr]
    assert entry.status.get() == replace(CREATED, pid=8, resources=_res())


def test_fn_receives_current_status(store: Any) -> None:
    entry = add_c(store, "c1", RUNNING)
    seen: list[ContainerStatus] = []

    def look(st: ContainerStatus) -> ContainerStatus:
        seen.append(replace(st))
        return replace(st, exit_code=1)

    entry.status.update(look)
    entry.status.update_sync(look)
    assert seen == [RUNNING, replace(RUNNING, exit_code=1)]


def test_update_returns_new_status(store: Any) -> None:
    entry = add_c(store, "c1")
    got = entry.status.update(setter(pid=4))
    assert got == replace(CREATED, pid=4)
    got = entry.status.update_sync(setter(started_at=9))
    assert got == replace(CREATED, pid=4, started_at=9)
    assert entry.status.get() == got


# --- transient fields -------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["starting", "removing"])
def test_transient_only_update_writes_nothing(store_path: Path, field: str) -> None:
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1", RUNNING)
        got = entry.status.update_sync(setter(**{field: True}))
        assert getattr(got, field) is True
        assert getattr(entry.status.get(), field) is True  # kept in memory
        entry.status.update(setter(**{field: False}))
        entry.status.update(setter(**{field: True}))
        s.flush()
        assert len(s.history("c1")) == 1
    got = reopened_status(store_path, "c1")
    assert got.starting is False
    assert got.removing is False
    assert got.unknown is False
    assert got == RUNNING
    assert len(history(store_path, "c1")) == 1


def test_unknown_flag_is_never_written(store_path: Path) -> None:
    """Setting ``unknown`` by an update either is refused (only loading makes UNKNOWN) or is
    kept in memory only; it is never recorded."""
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1", RUNNING)
        with contextlib.suppress(InvalidTransitionError):
            entry.status.update_sync(setter(unknown=True))
        s.flush()
        assert len(s.history("c1")) == 1
    got = reopened_status(store_path, "c1")
    assert got.unknown is False
    assert got == RUNNING


def test_transient_fields_never_in_changes(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        entry = s.containers.add(
            ContainerMetadata("c1"), replace(CREATED, starting=True, removing=True, pid=3)
        )
        entry.status.update_sync(setter(pid=4, starting=False))
        entry.status.update_sync(setter(started_at=5, removing=False))
        entry.status.update_sync(setter(exit_code=1, starting=True, removing=True))
        events = list(s.history("c1"))
        assert len(events) == 4
        for ev in events:
            assert not {"starting", "removing", "unknown"} & set(ev.changes), ev
        assert events[1].changes == {"pid": 4}
        assert events[2].changes == {"started_at": 5}
        assert events[3].changes == {"exit_code": 1}
    got = reopened_status(store_path, "c1")
    assert (got.starting, got.removing, got.unknown) == (False, False, False)
    assert got == ContainerStatus(pid=4, created_at=1_000, started_at=5, exit_code=1)


# --- durability -------------------------------------------------------------------------------


def test_update_then_flush_is_durable(store_path: Path) -> None:
    s = evstore.open(store_path)
    try:
        entry = add_c(s, "c1")
        entry.status.update(setter(pid=11))
        entry.status.update(setter(started_at=12))
        s.flush()
        # a second handle on the store reads what flush made durable
    finally:
        s.close()
    assert reopened_status(store_path, "c1") == replace(CREATED, pid=11, started_at=12)


def test_update_then_close_is_durable(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1")
        for i in range(1, 51):
            entry.status.update(setter(pid=i))
    assert reopened_status(store_path, "c1").pid == 50
    assert [e.seq for e in history(store_path, "c1")] == list(range(1, 52))


def test_update_sync_is_durable(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1")
        entry.status.update_sync(setter(pid=21, started_at=22))
        entry.status.update_sync(setter(finished_at=23, exit_code=2, reason="Error"))
    assert reopened_status(store_path, "c1") == ContainerStatus(
        pid=21, created_at=1_000, started_at=22, finished_at=23, exit_code=2, reason="Error"
    )


def test_sandbox_updates_are_durable(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        entry = add_s(s, "s1")
        entry.status.update_sync(setter(state=SandboxState.READY, pid=5))
        entry.status.update(setter(state=SandboxState.NOTREADY, exit_status=1, exited_at=9))
        s.flush()
    got = reopened_status(store_path, "s1", sandbox=True)
    assert got == SandboxStatus(
        pid=5, created_at=1_000, state=SandboxState.NOTREADY, exit_status=1, exited_at=9
    )
    assert got.state is SandboxState.NOTREADY


def test_flush_with_nothing_pending(store: Any) -> None:
    store.flush()
    add_c(store, "c1")
    store.flush()
    store.flush()


def test_many_entries_many_updates_survive_reopen(store_path: Path) -> None:
    with evstore.open(store_path, snapshot_every=4) as s:
        for i in range(20):
            e = add_c(s, f"c{i:02d}")
            for j in range(10):
                e.status.update(setter(pid=i * 100 + j))
        s.flush()
    with evstore.open(store_path, snapshot_every=4) as s:
        got = {e.id: e.status.get().pid for e in s.containers.list()}
        report = s.load_report
    assert got == {f"c{i:02d}": i * 100 + 9 for i in range(20)}
    assert report.loaded == 20
    assert report.unknown == {}
    assert report.snapshots_used >= 1
    # the snapshots spare replaying most of the 220 events
    assert report.events_replayed < 220


def test_snapshots_do_not_change_history(store_path: Path) -> None:
    with evstore.open(store_path, snapshot_every=2) as s:
        e = add_c(s, "c1")
        for j in range(1, 8):
            e.status.update_sync(setter(pid=j))
        first = [(ev.seq, ev.type, ev.changes) for ev in s.history("c1")]
    with evstore.open(store_path, snapshot_every=2) as s:
        assert [(ev.seq, ev.type, ev.changes) for ev in s.history("c1")] == first
        assert s.containers.get("c1").status.get().pid == 7
    assert len(first) == 8


# --- state machine ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "fields", "end"),
    [
        (CREATED, {"started_at": 5}, "RUNNING"),
        (CREATED, {"finished_at": 5, "exit_code": 128}, "EXITED"),  # start failed
        (RUNNING, {"finished_at": 5, "exit_code": 0}, "EXITED"),
        (CREATED, {"pid": 3}, "CREATED"),
        (RUNNING, {"pid": 3, "message": "m"}, "RUNNING"),
        (EXITED, {"reason": "Completed"}, "EXITED"),
        (EXITED, {"finished_at": 9_000}, "EXITED"),
    ],
)
def test_container_allowed_moves(
    store_path: Path, start: ContainerStatus, fields: dict[str, Any], end: str
) -> None:
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1", start)
        got = entry.status.update_sync(setter(**fields))
        assert got.state() is evstore.ContainerState[end]
    got = reopened_status(store_path, "c1")
    assert got == replace(start, **fields)
    assert got.state() is evstore.ContainerState[end]


@pytest.mark.parametrize(
    ("start", "fields"),
    [
        (RUNNING, {"started_at": 0}),  # RUNNING -> CREATED
        (EXITED, {"finished_at": 0}),  # EXITED -> RUNNING
        (EXITED, {"finished_at": 0, "started_at": 0}),  # EXITED -> CREATED
        (CREATED, {"created_at": 0}),  # CREATED -> UNKNOWN
        (RUNNING, {"created_at": 0, "started_at": 0}),  # RUNNING -> UNKNOWN
    ],
)
@pytest.mark.parametrize("method", ["update", "update_sync"])
def test_container_forbidden_moves(
    store_path: Path, start: ContainerStatus, fields: dict[str, Any], method: str
) -> None:
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1", start)
        with pytest.raises(InvalidTransitionError):
            getattr(entry.status, method)(setter(pid=77, **fields))
        assert entry.status.get() == start
        assert len(s.history("c1")) == 1
        # the entry is still usable
        entry.status.update_sync(setter(message="ok"))
    assert reopened_status(store_path, "c1") == replace(start, message="ok")
    assert [e.seq for e in history(store_path, "c1")] == [1, 2]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (SandboxState.INIT, SandboxState.READY),
        (SandboxState.INIT, SandboxState.NOTREADY),
        (SandboxState.READY, SandboxState.NOTREADY),
        (SandboxState.INIT, SandboxState.INIT),
        (SandboxState.READY, SandboxState.READY),
        (SandboxState.NOTREADY, SandboxState.NOTREADY),
    ],
)
def test_sandbox_allowed_moves(store_path: Path, start: SandboxState, end: SandboxState) -> None:
    with evstore.open(store_path) as s:
        entry = add_s(s, "s1", start)
        got = entry.status.update_sync(setter(state=end, pid=6))
        assert got.state is end
    got = reopened_status(store_path, "s1", sandbox=True)
    assert got == SandboxStatus(pid=6, created_at=1_000, state=end)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (SandboxState.READY, SandboxState.INIT),
        (SandboxState.NOTREADY, SandboxState.READY),
        (SandboxState.NOTREADY, SandboxState.INIT),
        (SandboxState.INIT, SandboxState.UNKNOWN),
        (SandboxState.READY, SandboxState.UNKNOWN),
    ],
)
@pytest.mark.parametrize("method", ["update", "update_sync"])
def test_sandbox_forbidden_moves(
    store_path: Path, start: SandboxState, end: SandboxState, method: str
) -> None:
    with evstore.open(store_path) as s:
        entry = add_s(s, "s1", start)
        with pytest.raises(InvalidTransitionError):
            getattr(entry.status, method)(setter(state=end, pid=6))
        assert entry.status.get() == SandboxStatus(created_at=1_000, state=start)
        assert len(s.history("s1")) == 1
    assert reopened_status(store_path, "s1", sandbox=True) == SandboxStatus(
        created_at=1_000, state=start
    )
    assert len(history(store_path, "s1")) == 1


# --- events -----------------------------------------------------------------------------------


def test_container_event_types(store_path: Path) -> None:
    t0 = time.time_ns()
    with evstore.open(store_path) as s:
        entry = add_c(s, "c1", replace(CREATED, pid=1))
        entry.status.update_sync(setter(pid=2))
        entry.status.update_sync(setter(started_at=3))
        entry.status.update_sync(setter(message="hello"))
        entry.status.update_sync(setter(finished_at=4, exit_code=137))
        entry.status.update_sync(setter(reason="OOMKilled"))
        s.containers.delete("c1")
        events = list(s.history("c1"))
    t1 = time.time_ns()
    assert [e.type for e in events] == [
        "created",
        "updated",
        "started",
        "updated",
        "exited",
        "updated",
        "deleted",
    ]
    for ev in events:
        assert isinstance(ev, evstore.Event)
        assert ev.id == "c1"
        assert ev.entity == "container"
        assert isinstance(ev.time, int)
        assert t0 <= ev.time <= t1
    assert [e.seq for e in events] == list(range(1, 8))
    positions = [e.position for e in events]
    assert all(isinstance(p, int) for p in positions)
    assert positions == sorted(set(positions))
    assert events[0].changes["pid"] == 1
    assert events[0].changes["created_at"] == 1_000
    assert events[1].changes == {"pid": 2}
    assert events[2].changes == {"started_at": 3}
    assert events[3].changes == {"message": "hello"}
    assert events[4].changes == {"finished_at": 4, "exit_code": 137}
    assert events[5].changes == {"reason": "OOMKilled"}
    # the history outlives a reopen unchanged
    assert [(e.position, e.seq, e.type, e.changes) for e in history(store_path, "c1")] == [
        (e.position, e.seq, e.type, e.changes) for e in events
    ]


def test_started_and_exited_in_one_update_is_exited(store: Any) -> None:
    entry = add_c(store, "c1")
    entry.status.update_sync(setter(started_at=2, finished_at=3))
    assert [e.type for e in store.history("c1")] == ["created", "exited"]


def test_sandbox_event_types(store: Any) -> None:
    entry = add_s(store, "s1")
    entry.status.update_sync(setter(pid=4))
    entry.status.update_sync(setter(state=SandboxState.READY))
    entry.status.update_sync(setter(pid=5))
    entry.status.update_sync(setter(state=SandboxState.NOTREADY, exit_status=1))
    entry.status.delete()
    events = list(store.history("s1"))
    assert [e.type for e in events] == [
        "created",
        "updated",
        "ready",
        "updated",
        "notready",
        "deleted",
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert all(e.entity == "sandbox" for e in events)
    assert events[2].changes == {"state": SandboxState.READY}
    assert events[4].changes == {"state": SandboxState.NOTREADY, "exit_status": 1}


def test_no_op_update_writes_nothing(store: Any) -> None:
    entry = add_c(store, "c1", RUNNING)
    entry.status.update_sync(lambda st: st)
    entry.status.update_sync(setter(pid=RUNNING.pid))
    entry.status.update(lambda st: replace(st))
    store.flush()
    assert len(store.history("c1")) == 1


def test_positions_global_and_increasing(store: Any) -> None:
    a = add_c(store, "a")
    b = add_c(store, "b")
    sb = add_s(store, "s")
    a.status.update_sync(setter(pid=1))
    b.status.update(setter(pid=2))
    sb.status.update_sync(setter(state=SandboxState.READY))
    a.status.update(setter(pid=3))
    store.flush()
    evs = list(store.history("a")) + list(store.history("b")) + list(store.history("s"))
    positions = [e.position for e in evs]
    assert len(set(positions)) == len(positions)  # unique across entries
    for cid in ("a", "b", "s"):
        pos = [e.position for e in store.history(cid)]
        assert pos == sorted(pos)
        assert len(set(pos)) == len(pos)
    # in the order the changes were made
    by_pos = sorted(evs, key=lambda e: e.position)
    assert [(e.id, e.seq) for e in by_pos] == [
        ("a", 1),
        ("b", 1),
        ("s", 1),
        ("a", 2),
        ("b", 2),
        ("s", 2),
        ("a", 3),
    ]


def test_positions_continue_after_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        e = add_c(s, "c1")
        e.status.update_sync(setter(pid=1))
        last = max(ev.position for ev in s.history("c1"))
    with evstore.open(store_path) as s:
        s.containers.get("c1").status.update_sync(setter(pid=2))
        add_c(s, "c2")
        evs = list(s.history("c1")) + list(s.history("c2"))
    new = [ev for ev in evs if ev.position > last]
    assert len(new) == 2
    assert [ev.seq for ev in s_history_sorted(evs, "c1")] == [1, 2, 3]


def s_history_sorted(evs: list[Any], cid: str) -> list[Any]:
    return sorted((e for e in evs if e.id == cid), key=lambda e: e.position)


def test_seq_continues_after_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        e = add_c(s, "c1")
        e.status.update_sync(setter(pid=1))
    with evstore.open(store_path) as s:
        s.containers.get("c1").status.update_sync(setter(pid=2))
        s.containers.get("c1").status.update(setter(started_at=3))
        assert [ev.seq for ev in s.history("c1")] == [1, 2, 3, 4]
        assert [ev.type for ev in s.history("c1")] == ["created", "updated", "updated", "started"]


# --- load report ------------------------------------------------------------------------------


def test_load_report_fresh_store(store: Any) -> None:
    report = store.load_report
    assert report.loaded == 0
    assert report.unknown == {}
    assert report.events_replayed == 0
    assert isinstance(report.snapshots_used, int)
    assert isinstance(report.seconds, float)
    assert report.seconds >= 0


def test_load_report_after_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        for i in range(3):
            e = add_c(s, f"c{i}")
            e.status.update(setter(pid=i + 1))
        add_c(s, "gone")
        s.containers.delete("gone")
        sb = add_s(s, "s0")
        sb.status.update_sync(setter(state=SandboxState.READY))
    with evstore.open(store_path) as s:
        report = s.load_report
        assert report.loaded == 4  # three containers and one sandbox are live
        assert report.unknown == {}
        assert isinstance(report.events_replayed, int)
        assert isinstance(report.snapshots_used, int)
        assert isinstance(report.seconds, float)
        assert report.events_replayed + report.snapshots_used > 0
        assert report.events_replayed <= 3 * 2 + 2 + 2
        assert report.seconds >= 0
        # nothing was loaded as unknown
        for e in s.containers.list():
            assert e.status.get().unknown is False
            assert e.status.get().state() is not evstore.ContainerState.UNKNOWN


# --- concurrency ------------------------------------------------------------------------------


def _run_threads(n: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "threads hung"
    assert errors == []


def _incr(st: ContainerStatus) -> ContainerStatus:
    return replace(st, pid=st.pid + 1)


def test_concurrent_update_sync_different_entries(store_path: Path) -> None:
    n, per = 16, 15
    with evstore.open(store_path) as s:
        entries = [add_c(s, f"c{i:02d}") for i in range(n)]

        def work(i: int) -> None:
            for _ in range(per):
                entries[i].status.update_sync(_incr)

        _run_threads(n, work)
        assert [e.status.get().pid for e in entries] == [per] * n
        for i in range(n):
            assert [ev.seq for ev in s.history(f"c{i:02d}")] == list(range(1, per + 2))
    with evstore.open(store_path) as s:
        assert {e.id: e.status.get().pid for e in s.containers.list()} == {
            f"c{i:02d}": per for i in range(n)
        }


def test_concurrent_update_sync_one_entry(store_path: Path) -> None:
    n, per = 16, 15
    with evstore.open(store_path) as s:
        entry = add_c(s, "shared")

        def work(i: int) -> None:
            handle = s.containers.get("shared") if i % 2 else entry
            for _ in range(per):
                handle.status.update_sync(_incr)

        _run_threads(n, work)
        assert entry.status.get().pid == n * per
        evs = list(s.history("shared"))
        assert [ev.seq for ev in evs] == list(range(1, n * per + 2))
        assert [ev.changes["pid"] for ev in evs[1:]] == list(range(1, n * per + 1))
        positions = [ev.position for ev in evs]
        assert positions == sorted(set(positions))
    assert reopened_status(store_path, "shared").pid == n * per


def test_concurrent_mixed_update_and_update_sync(store_path: Path) -> None:
    n, per = 8, 20
    with evstore.open(store_path) as s:
        entry = add_c(s, "shared")

        def work(i: int) -> None:
            for _ in range(per):
                if i % 2:
                    entry.status.update(_incr)
                else:
                    entry.status.update_sync(_incr)
                entry.status.get()
                s.containers.list()

        _run_threads(n, work)
    assert reopened_status(store_path, "shared").pid == n * per


def test_concurrent_adds(store_path: Path) -> None:
    n = 16
    with evstore.open(store_path) as s:
        _run_threads(n, lambda i: add_c(s, f"c{i:02d}"))
        assert len(list(s.containers.list())) == n
    with evstore.open(store_path) as s:
        assert s.load_report.loaded == n


def test_concurrent_add_same_id_one_wins(store: Any) -> None:
    n = 16
    wins: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            store.containers.add(ContainerMetadata("same"), replace(CREATED, pid=i))
        except evstore.AlreadyExistsError:
            return
        with lock:
            wins.append(i)

    _run_threads(n, work)
    assert len(wins) == 1
    assert store.containers.get("same").status.get().pid == wins[0]


# --- opening, closing, sharing ----------------------------------------------------------------


def test_open_as_context_manager(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        add_c(s, "c1")
    # the context exit closed it and let the writer lock go
    s2 = evstore.open(store_path)
    try:
        assert s2.containers.get("c1").id == "c1"
    finally:
        s2.close()


def test_open_creates_store(store_path: Path) -> None:
    assert not store_path.exists()
    s = evstore.open(store_path)
    s.close()
    assert store_path.is_dir()
    with evstore.open(store_path) as s:
        assert list(s.containers.list()) == []


def test_open_accepts_str_path(store_path: Path) -> None:
    with evstore.open(str(store_path)) as s:
        add_c(s, "c1")
    with evstore.open(str(store_path)) as s:
        assert s.containers.get("c1").id == "c1"


def test_open_with_tuning(store_path: Path) -> None:
    with evstore.open(store_path, snapshot_every=3, checkpoint_every=5, map_size=1 << 20) as s:
        e = add_c(s, "c1")
        for i in range(10):
            e.status.update(setter(pid=i))
    assert reopened_status(store_path, "c1").pid == 9


def test_store_grows_past_map_size(store_path: Path) -> None:
    big = {f"key{i}": "v" * 200 for i in range(20)}
    res = ContainerResources(linux=LinuxContainerResources(unified=big))
    with evstore.open(store_path, map_size=1 << 16) as s:
        for i in range(150):
            add_c(s, f"c{i:03d}", replace(CREATED, resources=res))
    with evstore.open(store_path, map_size=1 << 16) as s:
        assert s.load_report.loaded == 150
        assert s.containers.get("c149").status.get().resources == res


def test_readonly_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(EvstoreError):
        evstore.open(missing, readonly=True)
    assert not missing.exists()


def test_readonly_store(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        add_c(s, "c1", RUNNING)
        add_s(s, "s1")
    with evstore.open(store_path, readonly=True) as r:
        entry = r.containers.get("c1")
        assert entry.status.get() == RUNNING
        assert [e.id for e in r.sandboxes.list()] == ["s1"]
        assert r.load_report.loaded == 2
        with pytest.raises(ReadOnlyError):
            add_c(r, "c2")
        with pytest.raises(ReadOnlyError):
            add_s(r, "s2")
        with pytest.raises(ReadOnlyError):
            entry.status.update(setter(pid=1))
        with pytest.raises(ReadOnlyError):
            entry.status.update_sync(setter(pid=1))
        with pytest.raises(ReadOnlyError):
            entry.status.delete()
        with pytest.raises(ReadOnlyError):
            r.containers.delete("c1")
        with pytest.raises(ReadOnlyError):
            r.sandboxes.get("s1").status.update_sync(setter(state=SandboxState.READY))
        assert issubclass(ReadOnlyError, EvstoreError)
        assert entry.status.get() == RUNNING
    with evstore.open(store_path) as s:
        assert [e.id for e in s.containers.list()] == ["c1"]
        assert s.containers.get("c1").status.get() == RUNNING
        assert len(s.history("c1")) == 1


def test_second_writable_open_is_locked(store_path: Path) -> None:
    s = evstore.open(store_path)
    try:
        add_c(s, "c1")
        with pytest.raises(StoreLockedError):
            evstore.open(store_path)
        with pytest.raises(StoreLockedError):
            evstore.open(str(store_path) + "/")
        # the first writer is unaffected
        s.containers.get("c1").status.update_sync(setter(pid=5))
    finally:
        s.close()
    with evstore.open(store_path) as s2:
        assert s2.containers.get("c1").status.get().pid == 5


_CHILD = textwrap.dedent(
    """
    import sys
    import evstore
    path = sys.argv[1]
    try:
        evstore.open(path)
    except evstore.StoreLockedError:
        print("locked")
    else:
        print("opened")
    with evstore.open(path, readonly=True) as r:
        print(r.containers.get("c1").status.get().pid)
        try:
            r.containers.get("c1").status.update_sync(lambda s: s)
        except evstore.ReadOnlyError:
            print("readonly")
    """
)


def test_other_process_locked_out_but_may_read(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        add_c(s, "c1", replace(CREATED, pid=31))
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(store_path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["locked", "31", "readonly"]
        # still the writer
        s.containers.get("c1").status.update_sync(setter(pid=32))
    assert reopened_status(store_path, "c1").pid == 32


# --- group commit -----------------------------------------------------------------------------


def test_batch_is_acknowledged_when_the_next_one_fails(store: Any) -> None:
    """The writer wakes a batch's callers while it puts the next batch: a failure of that
    next commit must not lose the first one's acknowledgement, nor report it."""
    first, second = add_c(store, "c1", RUNNING), add_c(store, "c2", RUNNING)
    log = store._writer._log
    real_write = log.write
    entered, go = threading.Event(), threading.Event()
    calls: list[int] = []

    def write(body: Callable[[Any], Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            entered.set()
            go.wait(10)  # hold the first commit until the second batch is queued
            return real_write(body)

        def put_then_fail(txn: Any) -> None:
            body(txn)
            raise EvstoreError("the disk went away")

        return real_write(put_then_fail)

    log.write = write
    change1 = first.status._prepare_change(setter(pid=11), sync=True)
    batch1 = store._submit(change1.write)
    assert entered.wait(10)
    change2 = second.status._prepare_change(setter(pid=12), sync=True)
    batch2 = store._submit(change2.write)
    second_done = threading.Event()
    batch2.on_done(second_done.set)
    go.set()
    assert second_done.wait(10) and batch1.finished
    assert batch1.error is None
    with pytest.raises(EvstoreError, match="the disk went away"):
        batch2.raise_error()
    log.write = real_write
    first.status._finish_change(change1)
    assert second.status.update_sync(setter(pid=13)).pid == 13  # the store goes on
    path = store.path
    store.close()
    assert reopened_status(path, "c1").pid == 11
    assert reopened_status(path, "c2").pid == 13


# --- update_sync that records nothing ----------------------------------------------------------


@contextlib.contextmanager
def writer_held(store: Any) -> Any:
    """Hold every commit of ``store`` until the block ends or the event it gives is set
    (what is queued stays queued)."""
    release = threading.Event()
    log = store._log
    write = log.write

    def held(body: Any) -> Any:
        release.wait(10)
        return write(body)

    log.write = held
    try:
        yield release
    finally:
        release.set()
        log.write = write


@pytest.mark.parametrize("kind", ["containers", "sandboxes"])
def test_update_sync_that_records_nothing_still_waits_for_earlier_updates(
    store_path: Path, kind: str
) -> None:
    """``update_sync`` returns a status as durable even when it records nothing itself: an
    ``update`` of the entry still queued is committed before it returns (found by the
    property test: READY by ``update``, then an ``update_sync`` that changed nothing, then a
    crash, reopened as INIT)."""
    store = evstore.open(store_path)
    if kind == "containers":
        entry = add_c(store, "c1", CREATED)
        later, moved = replace(CREATED, pid=7, started_at=2_000), "pid"
    else:
        entry = store.sandboxes.add(SandboxMetadata(id="c1"), SandboxStatus(created_at=1))
        later, moved = SandboxStatus(created_at=1, state=SandboxState.READY), "state"
    with writer_held(store):
        entry.status.update(lambda s: later)
        returned: list[Any] = []
        caller = threading.Thread(target=lambda: returned.append(entry.status.update_sync(replace)))
        caller.start()
        caller.join(0.3)
        assert caller.is_alive(), "update_sync returned while the earlier update was queued"
    caller.join(10)
    assert getattr(returned[0], moved) == getattr(later, moved)
    abandon(store)  # a crash: what is only queued is lost
    with evstore.open(store_path) as reopened:
        assert getattr(getattr(reopened, kind).get("c1").status.get(), moved) == getattr(
            later, moved
        )
