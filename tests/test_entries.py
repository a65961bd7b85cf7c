"""Collections and entries: add, lookup by id or prefix, list, delete, metadata, errors."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import evstore
from evstore import (
    AlreadyExistsError,
    AmbiguousIDError,
    ContainerConfig,
    ContainerMetadata,
    ContainerStatus,
    EvstoreError,
    InvalidInputError,
    NotFoundError,
    SandboxConfig,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
)


def _cstatus(**kw: object) -> ContainerStatus:
    return ContainerStatus(created_at=1_000, **kw)  # type: ignore[arg-type]


def _add_c(store: evstore.Store, cid: str, **kw: object) -> object:
    return store.containers.add(ContainerMetadata(cid), _cstatus(**kw))


def _add_s(store: evstore.Store, sid: str) -> object:
    return store.sandboxes.add(SandboxMetadata(sid), SandboxStatus(created_at=1_000))


# --- errors -----------------------------------------------------------------------------------


def test_errors_are_evstore_errors() -> None:
    for name in (
        "AlreadyExistsError",
        "NotFoundError",
        "AmbiguousIDError",
        "InvalidTransitionError",
        "StoreLockedError",
        "ReadOnlyError",
    ):
        cls = getattr(evstore, name)
        assert issubclass(cls, evstore.EvstoreError), name
        assert cls is not evstore.EvstoreError
    assert issubclass(evstore.EvstoreError, Exception)


# --- add and get ------------------------------------------------------------------------------


def test_add_returns_entry(store: evstore.Store) -> None:
    meta = ContainerMetadata("c1", name="web")
    status = _cstatus(pid=5)
    entry = store.containers.add(meta, status)
    assert entry.id == "c1"
    assert entry.metadata == meta
    assert entry.status.get() == status


def test_get_exact_id(store: evstore.Store) -> None:
    _add_c(store, "4f2a9c")
    _add_c(store, "7b1d00")
    entry = store.containers.get("4f2a9c")
    assert entry.id == "4f2a9c"
    assert entry.status.get() == _cstatus()


def test_get_unique_prefix(store: evstore.Store) -> None:
    _add_c(store, "4f2a9c")
    _add_c(store, "7b1d00")
    assert store.containers.get("4").id == "4f2a9c"
    assert store.containers.get("4f2").id == "4f2a9c"
    assert store.containers.get("7b1d0").id == "7b1d00"


def test_get_ambiguous_prefix(store: evstore.Store) -> None:
    _add_c(store, "abc123")
    _add_c(store, "abc456")
    _add_c(store, "def000")
    with pytest.raises(AmbiguousIDError):
        store.containers.get("abc")
    with pytest.raises(AmbiguousIDError):
        store.containers.get("a")
    # longer prefix resolves again
    assert store.containers.get("abc4").id == "abc456"


def test_get_not_found(store: evstore.Store) -> None:
    with pytest.raises(NotFoundError):
        store.containers.get("nothing")
    _add_c(store, "abc123")
    with pytest.raises(NotFoundError):
        store.containers.get("x")
    with pytest.raises(NotFoundError):
        store.containers.get("abc1234")  # longer than any id


def test_exact_id_wins_over_prefix(store: evstore.Store) -> None:
    _add_c(store, "abc", pid=1)
    _add_c(store, "abcd", pid=2)
    got = store.containers.get("abc")
    assert got.id == "abc"
    assert got.status.get().pid == 1
    assert store.containers.get("abcd").id == "abcd"
    with pytest.raises(AmbiguousIDError):
        store.containers.get("ab")


def test_exact_id_wins_after_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        _add_c(s, "abc", pid=1)
        _add_c(s, "abcd", pid=2)
    with evstore.open(store_path) as s:
        assert s.containers.get("abc").status.get().pid == 1
        assert s.containers.get("abcd").status.get().pid == 2
        with pytest.raises(AmbiguousIDError):
            s.containers.get("ab")


def test_already_exists(store: evstore.Store) -> None:
    _add_c(store, "c1", pid=1)
    with pytest.raises(AlreadyExistsError):
        _add_c(store, "c1", pid=2)
    # the first one is untouched
    assert store.containers.get("c1").status.get().pid == 1
    assert [e.id for e in store.containers.list()] == ["c1"]


def test_already_exists_after_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        _add_c(s, "c1", pid=1)
    with evstore.open(store_path) as s:
        with pytest.raises(AlreadyExistsError):
            _add_c(s, "c1", pid=2)
        assert s.containers.get("c1").status.get().pid == 1


def test_add_is_durable(store_path: Path) -> None:
    meta = ContainerMetadata(
        "c1",
        name="web",
        sandbox_id="s1",
        config=ContainerConfig(name="web", attempt=1, image="nginx", labels={"app": "web"}),
        image_ref="sha256:1",
        log_path="/log",
    )
    status = _cstatus(pid=9, started_at=2_000)
    with evstore.open(store_path) as s:
        s.containers.add(meta, status)
    with evstore.open(store_path) as s:
        entry = s.containers.get("c1")
        assert entry.metadata == meta
        assert entry.status.get() == status


# --- list -------------------------------------------------------------------------------------


def test_list(store: evstore.Store) -> None:
    assert list(store.containers.list()) == []
    ids = ["c3", "c1", "c2"]
    for cid in ids:
        _add_c(store, cid)
    got = list(store.containers.list())
    assert sorted(e.id for e in got) == sorted(ids)
    assert len(got) == 3
    for e in got:
        assert e.metadata == ContainerMetadata(e.id)
        assert e.status.get() == _cstatus()
    store.containers.delete("c1")
    assert sorted(e.id for e in store.containers.list()) == ["c2", "c3"]


def test_list_after_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        for i in range(5):
            _add_c(s, f"c{i}", pid=i)
        s.containers.delete("c2")
    with evstore.open(store_path) as s:
        got = {e.id: e.status.get().pid for e in s.containers.list()}
    assert got == {"c0": 0, "c1": 1, "c3": 3, "c4": 4}


# --- delete -----------------------------------------------------------------------------------


def test_delete(store: evstore.Store) -> None:
    _add_c(store, "c1")
    store.containers.delete("c1")
    with pytest.raises(NotFoundError):
        store.containers.get("c1")
    assert list(store.containers.list()) == []


def test_delete_missing_is_silent(store: evstore.Store) -> None:
    store.containers.delete("never-existed")
    store.sandboxes.delete("never-existed")
    _add_c(store, "c1")
    store.containers.delete("c1")
    store.containers.delete("c1")  # again: still silent
    store.containers.delete("c1")


def test_delete_refuses_a_prefix(store: evstore.Store) -> None:
    _add_c(store, "abcdef")
    _add_c(store, "xyz")
    with pytest.raises(InvalidInputError, match="'abcdef'"):
        store.containers.delete("abc")
    assert sorted(e.id for e in store.containers.list()) == ["abcdef", "xyz"]


def test_entry_status_delete_idempotent(store: evstore.Store) -> None:
    entry = _add_c(store, "c1")
    entry.status.delete()  # type: ignore[attr-defined]
    entry.status.delete()  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        store.containers.get("c1")
    store.containers.delete("c1")
    entry.status.delete()  # type: ignore[attr-defined]


def test_deleted_entry_calls_raise(store: evstore.Store) -> None:
    entry = _add_c(store, "c1")
    store.containers.delete("c1")
    with pytest.raises(NotFoundError):
        entry.status.get()  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        entry.status.update(lambda s: msgspec.structs.replace(s, pid=1))  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        entry.status.update_sync(  # type: ignore[attr-defined]
            lambda s: msgspec.structs.replace(s, pid=1)
        )
    entry.status.delete()  # type: ignore[attr-defined]  # still idempotent


def test_deleted_entry_via_status_delete_calls_raise(store: evstore.Store) -> None:
    entry = _add_c(store, "c1")
    entry.status.delete()  # type: ignore[attr-defined]
    for call in (
        lambda: entry.status.get(),  # type: ignore[attr-defined]
        lambda: entry.status.update(lambda s: s),  # type: ignore[attr-defined]
        lambda: entry.status.update_sync(lambda s: s),  # type: ignore[attr-defined]
    ):
        with pytest.raises(NotFoundError):
            call()


def test_old_entry_stays_dead_after_re_add(store: evstore.Store) -> None:
    old = _add_c(store, "c1", pid=1)
    store.containers.delete("c1")
    new = _add_c(store, "c1", pid=2)
    assert new.status.get().pid == 2  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        old.status.get()  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError):
        old.status.update_sync(lambda s: msgspec.structs.replace(s, pid=3))  # type: ignore[attr-defined]
    # deleting through the old handle must not delete the new entry
    old.status.delete()  # type: ignore[attr-defined]
    assert store.containers.get("c1").status.get().pid == 2


def test_delete_is_durable(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        _add_c(s, "c1")
        _add_c(s, "c2")
        s.containers.delete("c1")
        s.containers.get("c2").status.delete()
    with evstore.open(store_path) as s:
        assert list(s.containers.list()) == []
        with pytest.raises(NotFoundError):
            s.containers.get("c1")
        assert s.load_report.loaded == 0


def test_re_add_after_delete(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        _add_c(s, "c1", pid=1)
        s.containers.delete("c1")
        entry = s.containers.add(ContainerMetadata("c1", name="second"), _cstatus(pid=2))
        assert entry.status.get().pid == 2
        assert s.containers.get("c1").metadata.name == "second"
    with evstore.open(store_path) as s:
        entry = s.containers.get("c1")
        assert entry.status.get().pid == 2
        assert entry.metadata.name == "second"
        assert [e.id for e in s.containers.list()] == ["c1"]
        # and it is live: a third add fails, a delete works
        with pytest.raises(AlreadyExistsError):
            _add_c(s, "c1")
        s.containers.delete("c1")
    with evstore.open(store_path) as s:
        assert list(s.containers.list()) == []
        _add_c(s, "c1", pid=3)
    with evstore.open(store_path) as s:
        assert s.containers.get("c1").status.get().pid == 3


def test_re_added_entry_updates_survive_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        _add_c(s, "c1", pid=1, started_at=5)
        s.containers.delete("c1")
        e = _add_c(s, "c1", pid=2)
        e.status.update_sync(lambda st: msgspec.structs.replace(st, started_at=7))  # type: ignore[attr-defined]
    with evstore.open(store_path) as s:
        got = s.containers.get("c1").status.get()
    assert got == _cstatus(pid=2, started_at=7)


# --- sandboxes --------------------------------------------------------------------------------


def test_sandboxes_add_get_list_delete(store_path: Path) -> None:
    meta = SandboxMetadata(
        "pod-abc",
        name="pod",
        config=SandboxConfig(name="p", uid="u1", namespace="default", attempt=0),
        netns_path="/var/run/netns/cni-1",
        ips=["10.1.0.5"],
    )
    status = SandboxStatus(pid=11, created_at=3, state=SandboxState.READY)
    with evstore.open(store_path) as s:
        entry = s.sandboxes.add(meta, status)
        assert entry.id == "pod-abc"
        assert entry.metadata == meta
        assert entry.status.get() == status
        _add_s(s, "pod-abd")
        _add_s(s, "other")
        assert s.sandboxes.get("pod-abc").id == "pod-abc"
        assert s.sandboxes.get("o").id == "other"
        with pytest.raises(AmbiguousIDError):
            s.sandboxes.get("pod-ab")
        with pytest.raises(NotFoundError):
            s.sandboxes.get("zzz")
        with pytest.raises(AlreadyExistsError):
            _add_s(s, "other")
        assert sorted(e.id for e in s.sandboxes.list()) == ["other", "pod-abc", "pod-abd"]
        s.sandboxes.delete("other")
        s.sandboxes.delete("other")
    with evstore.open(store_path) as s:
        assert sorted(e.id for e in s.sandboxes.list()) == ["pod-abc", "pod-abd"]
        entry = s.sandboxes.get("pod-abc")
        assert entry.metadata == meta
        assert entry.status.get() == status
        assert entry.status.get().state is SandboxState.READY
        entry.status.delete()
        entry.status.delete()
        with pytest.raises(NotFoundError):
            entry.status.get()
        with pytest.raises(NotFoundError):
            entry.status.update(lambda st: st)
        with pytest.raises(NotFoundError):
            entry.status.update_sync(lambda st: st)
        s.sandboxes.add(SandboxMetadata("pod-abc"), SandboxStatus(created_at=9))
    with evstore.open(store_path) as s:
        assert s.sandboxes.get("pod-abc").status.get() == SandboxStatus(created_at=9)
        assert s.sandboxes.get("pod-abc").metadata == SandboxMetadata("pod-abc")


def test_sandbox_exact_id_wins(store: evstore.Store) -> None:
    store.sandboxes.add(SandboxMetadata("abc"), SandboxStatus(pid=1))
    store.sandboxes.add(SandboxMetadata("abcd"), SandboxStatus(pid=2))
    assert store.sandboxes.get("abc").status.get().pid == 1


def test_containers_and_sandboxes_are_separate(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        _add_c(s, "same", pid=1)
        # one id space (as in containerd): the other collection may not take the id
        with pytest.raises(AlreadyExistsError, match="a container has this id"):
            s.sandboxes.add(SandboxMetadata("same"), SandboxStatus(pid=2))
        s.sandboxes.add(SandboxMetadata("sbox"), SandboxStatus(pid=2))
        _add_c(s, "conly")
        assert s.containers.get("same").status.get().pid == 1
        assert s.sandboxes.get("sbox").status.get().pid == 2
        with pytest.raises(NotFoundError):
            s.sandboxes.get("conly")
        assert s.sandboxes.get("s").id == "sbox"  # not ambiguous with a container
        assert sorted(e.id for e in s.sandboxes.list()) == ["sbox"]
        assert sorted(e.id for e in s.containers.list()) == ["conly", "same"]
        s.sandboxes.delete("same")  # a missing sandbox id does not touch containers
        assert s.containers.get("same").status.get().pid == 1
        s.containers.delete("conly")
        s.sandboxes.delete("sbox")
    with evstore.open(store_path) as s:
        assert [e.id for e in s.containers.list()] == ["same"]
        assert list(s.sandboxes.list()) == []


# --- metadata ---------------------------------------------------------------------------------


def test_metadata_returned_as_given(store_path: Path) -> None:
    meta = ContainerMetadata(
        "c1",
        name="n",
        sandbox_id="s",
        config=ContainerConfig(
            name="n", attempt=3, image="img", labels={"k": "v"}, annotations={"a": "b"}
        ),
        image_ref="ref",
        log_path="/l",
    )
    with evstore.open(store_path) as s:
        entry = s.containers.add(meta, _cstatus())
        assert entry.metadata == meta
        assert s.containers.get("c1").metadata == meta
        assert isinstance(s.containers.get("c1").metadata, ContainerMetadata)
    with evstore.open(store_path) as s:
        got = s.containers.get("c1").metadata
    assert got == meta
    assert isinstance(got, ContainerMetadata)
    assert got.config is not None
    assert got.config.labels == {"k": "v"}


def test_metadata_cannot_be_altered(store: evstore.Store) -> None:
    entry = store.containers.add(ContainerMetadata("c1", name="n"), _cstatus())
    with pytest.raises(AttributeError):
        entry.metadata.name = "changed"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        store.containers.get("c1").metadata.id = "c2"
    assert store.containers.get("c1").metadata == ContainerMetadata("c1", name="n")
    sentry = store.sandboxes.add(SandboxMetadata("s1", ips=["1.2.3.4"]), SandboxStatus())
    with pytest.raises(AttributeError):
        sentry.metadata.netns_path = "/x"  # type: ignore[attr-defined]
    assert store.sandboxes.get("s1").metadata == SandboxMetadata("s1", ips=["1.2.3.4"])


def test_metadata_and_entry_id_agree(store: evstore.Store) -> None:
    entry = _add_c(store, "c-long-id")
    got = store.containers.get("c-long")
    assert got.id == got.metadata.id == "c-long-id"
    assert entry.id == "c-long-id"  # type: ignore[attr-defined]


def test_entry_handles_share_state(store: evstore.Store) -> None:
    a = _add_c(store, "c1")
    b = store.containers.get("c1")
    b.status.update_sync(lambda st: msgspec.structs.replace(st, pid=77))
    assert a.status.get().pid == 77  # type: ignore[attr-defined]
    assert isinstance(b.status.get(), ContainerStatus)


def test_not_found_is_evstore_error(store: evstore.Store) -> None:
    with pytest.raises(EvstoreError):
        store.containers.get("missing")
    with pytest.raises(EvstoreError):
        store.sandboxes.get("missing")


def test_deleted_exact_id_no_longer_wins(store: evstore.Store) -> None:
    _add_c(store, "abc", pid=1)
    _add_c(store, "abcd", pid=2)
    store.containers.delete("abc")
    # "abc" is now only a prefix of the live "abcd"
    assert store.containers.get("abc").id == "abcd"
    store.containers.delete("abc")  # a retry: "abc" is gone, "abcd" stays
    assert [e.id for e in store.containers.list()] == ["abcd"]


def test_add_rejects_wrong_types(store: evstore.Store) -> None:
    with pytest.raises(EvstoreError):
        store.containers.add(SandboxMetadata("x"), _cstatus())  # type: ignore[arg-type]
    with pytest.raises(EvstoreError):
        store.containers.add(ContainerMetadata("x"), SandboxStatus())  # type: ignore[arg-type]
    with pytest.raises(EvstoreError):
        store.sandboxes.add(ContainerMetadata("x"), SandboxStatus())  # type: ignore[arg-type]
    assert list(store.containers.list()) == []
    assert list(store.sandboxes.list()) == []
    _add_c(store, "x")  # the id was not taken by the failed adds


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.containers.get(5),
        lambda s: s.sandboxes.get(None),
        lambda s: s.containers.delete(b"x"),
        lambda s: s.history(5),
        lambda s: s.status_at(None, seq=1),
        lambda s: s.pod_status(1, "name", "ns"),
        lambda s: s.events(-1),
        lambda s: s.events("3"),
        lambda s: s.events(True),
        lambda s: s.events(2**64 - 1),  # no position can come after it
    ],
)
def test_reads_reject_wrong_types_with_a_typed_error(store: evstore.Store, call) -> None:  # type: ignore[no-untyped-def]
    _add_c(store, "x")
    with pytest.raises(evstore.InvalidInputError, match="must be"):
        call(store)
    assert [e.position for e in store.events(2**64 - 2)] == []  # the last one allowed
    assert store.containers.get("x").status.get().pid == _cstatus().pid  # nothing touched


@pytest.mark.parametrize("path", [None, 5, b"/tmp/store"])
def test_open_refuses_a_path_that_is_no_path(path: object) -> None:
    with pytest.raises(evstore.InvalidInputError, match="path must be"):
        evstore.open(path)  # type: ignore[arg-type]
