"""Replay: ``status_at`` (one id, by seq or time) and ``states_at`` (every entry at a point)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from damage import eno_of, event_key_of, flip_byte, rewrite

import evstore
from evstore import (
    ContainerMetadata,
    ContainerResources,
    ContainerState,
    ContainerStatus,
    HugepageLimit,
    LinuxContainerResources,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
    WindowsContainerResources,
)
from evstore._history.replay import states_at

RESOURCES = ContainerResources(
    linux=LinuxContainerResources(
        cpu_period=100_000, cpu_quota=50_000, unified={"memory.high": "400M"},
        hugepage_limits=[HugepageLimit(page_size="2MB", limit=1 << 30)],
    ),
    windows=WindowsContainerResources(cpu_count=2),
)


def replace(**fields: object) -> object:
    return lambda s: msgspec.structs.replace(s, **fields)


def lifecycle(store: evstore.Store, ident: str = "c1") -> list[ContainerStatus]:
    """created, started, resources updated, exited, deleted, created again: the statuses."""
    entry = store.containers.add(ContainerMetadata(id=ident), ContainerStatus(created_at=10))
    seen = [entry.status.get()]
    seen.append(entry.status.update_sync(replace(pid=42, started_at=20)))
    seen.append(entry.status.update(replace(resources=RESOURCES)))
    seen.append(entry.status.update_sync(replace(finished_at=30, exit_code=137, reason="OOM")))
    store.containers.delete(ident)
    again = store.containers.add(ContainerMetadata(id=ident), ContainerStatus(created_at=40))
    seen.append(again.status.get())
    return seen


def test_status_at_each_seq_across_incarnations(store: evstore.Store) -> None:
    s1, s2, s3, s4, s5 = lifecycle(store)
    assert [e.type for e in store.history("c1")] == [
        "created", "started", "updated", "exited", "deleted", "created",
    ]
    assert [store.status_at("c1", seq=n) for n in (1, 2, 3, 4, 6)] == [s1, s2, s3, s4, s5]
    assert store.status_at("c1", seq=4).state() is ContainerState.EXITED
    with pytest.raises(evstore.NotFoundError, match="not live at seq 5"):
        store.status_at("c1", seq=5)  # the deleted event ends the first incarnation
    with pytest.raises(evstore.NotFoundError, match="no event 7"):
        store.status_at("c1", seq=7)
    with pytest.raises(evstore.NotFoundError):
        store.status_at("c1", seq=0)


def test_resources_come_back_typed(store: evstore.Store) -> None:
    lifecycle(store)
    status = store.status_at("c1", seq=3)
    assert isinstance(status, ContainerStatus)
    assert status.resources == RESOURCES
    assert isinstance(status.resources.linux.hugepage_limits[0], HugepageLimit)  # type: ignore[union-attr]


def test_status_at_time_folds_events_up_to_that_time(store: evstore.Store) -> None:
    statuses = lifecycle(store)
    history = store.history("c1")
    for event, expected in zip(history[:4], statuses[:4], strict=True):
        assert store.status_at("c1", time=event.time) == expected
    with pytest.raises(evstore.NotFoundError, match="not live at time"):
        store.status_at("c1", time=history[0].time - 1)
    with pytest.raises(evstore.NotFoundError):
        store.status_at("c1", time=history[4].time)  # deleted
    assert store.status_at("c1", time=history[-1].time) == statuses[-1]


def test_status_at_bad_arguments(store: evstore.Store) -> None:
    lifecycle(store)
    for kwargs in ({}, {"seq": 1, "time": 1}, {"seq": -1}, {"time": True}, {"seq": "1"}):
        with pytest.raises(evstore.InvalidInputError):
            store.status_at("c1", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(evstore.NotFoundError, match="no such container or sandbox"):
        store.status_at("nope", seq=1)


def test_sandbox_states_come_back_as_enums(store: evstore.Store) -> None:
    entry = store.sandboxes.add(SandboxMetadata(id="s1"), SandboxStatus(created_at=5))
    entry.status.update_sync(replace(state=SandboxState.READY, pid=7))
    entry.status.update_sync(replace(state=SandboxState.NOTREADY, exit_status=1, exited_at=9))
    assert store.status_at("s1", seq=2) == SandboxStatus(created_at=5, pid=7,
                                                         state=SandboxState.READY)
    last = store.status_at("s1", seq=3)
    assert isinstance(last, SandboxStatus) and last.state is SandboxState.NOTREADY


def test_a_container_and_a_sandbox_sharing_an_id_is_ambiguous(
    store: evstore.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only a store written before ids were one space for both kinds can hold this
    monkeypatch.setattr(evstore._store.entries.Entries, "_holds", lambda self, ident: False)
    store.containers.add(ContainerMetadata(id="x"), ContainerStatus(created_at=1))
    store.sandboxes.add(SandboxMetadata(id="x"), SandboxStatus(created_at=1))
    with pytest.raises(evstore.AmbiguousIDError):
        store.status_at("x", seq=1)


def test_states_at_positions(store: evstore.Store) -> None:
    lifecycle(store, "c1")
    store.sandboxes.add(SandboxMetadata(id="s1"), SandboxStatus(created_at=5))
    feed = list(store.events())
    by_position = {event.position: event for event in feed}
    assert states_at(store, position=0) == []
    first = states_at(store, position=1)
    assert [(s.entity, s.id) for s in first] == [("container", "c1")]
    deleted_at = next(e.position for e in feed if e.type == "deleted")
    assert states_at(store, position=deleted_at) == []
    assert by_position[deleted_at].id == "c1"
    last = states_at(store, position=feed[-1].position)
    assert [(s.entity, s.id) for s in last] == [("container", "c1"), ("sandbox", "s1")]


def test_states_at_the_end_match_the_live_store(store: evstore.Store) -> None:
    for n in range(20):
        status = ContainerStatus(created_at=n + 1)
        entry = store.containers.add(ContainerMetadata(id=f"c{n}"), status)
        if n % 2:
            entry.status.update(replace(pid=n, started_at=n + 100, resources=RESOURCES))
        if n % 3 == 0:
            store.containers.delete(f"c{n}")
    store.flush()
    replayed = states_at(store, time=2**63 - 1)
    live = sorted((e.id, e.status.get()) for e in store.containers.list())
    assert [(s.id, s.status) for s in replayed] == live


def test_states_at_bad_arguments(store: evstore.Store) -> None:
    for kwargs in ({}, {"position": 1, "time": 1}, {"position": -5}):
        with pytest.raises(evstore.InvalidInputError):
            states_at(store, **kwargs)  # type: ignore[arg-type]


def test_readonly_store_beside_a_writer(store: evstore.Store, store_path: Path) -> None:
    lifecycle(store, "before")
    with evstore.open(store_path, readonly=True) as reader:
        lifecycle(store, "after")  # written once the reader is open
        store.flush()
        assert reader.status_at("after", seq=2).pid == 42  # type: ignore[union-attr]
        assert reader.status_at("before", seq=6) == store.status_at("before", seq=6)
        ids = [s.id for s in states_at(reader, position=store.last_position)]
        assert ids == ["after", "before"]


def test_an_unreadable_event_shows_the_entry_unknown(store_path: Path) -> None:
    """Its last good fold, UNKNOWN, up to the event its snapshot was taken at: from there
    the snapshot is its fold, as at open (see test_one_fold)."""
    with evstore.open(store_path) as store:
        entry = store.containers.add(ContainerMetadata(id="c1"), ContainerStatus(created_at=1))
        entry.status.update_sync(replace(pid=5, started_at=2))
        entry.status.update_sync(replace(message="later"))
        entry.status.update_sync(replace(message="last"))
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c1"), 2)),
            flip_byte(-1))
    with evstore.open(store_path, readonly=True) as store:
        assert store.status_at("c1", seq=1).state() is ContainerState.CREATED  # type: ignore[union-attr]
        after = store.status_at("c1", seq=3)
        assert isinstance(after, ContainerStatus)
        assert after.state() is ContainerState.UNKNOWN and after.message == ""  # not "later"
        assert after == store.status_at("c1", seq=2)
        assert states_at(store, position=3)[0].status == after
        assert store.status_at("c1", seq=4) == store.containers.get("c1").status.get()
