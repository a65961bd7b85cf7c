"""The models: state derivation, enums, defaults, resources and encoding."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import evstore
from evstore import (
    ContainerConfig,
    ContainerMetadata,
    ContainerResources,
    ContainerState,
    ContainerStatus,
    HugepageLimit,
    LinuxContainerResources,
    SandboxConfig,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
    WindowsContainerResources,
)

# --- ContainerStatus.state() ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # containerd's TestContainerState, plus the order of the checks
        ({}, ContainerState.UNKNOWN),
        ({"created_at": 1}, ContainerState.CREATED),
        ({"created_at": 1, "started_at": 2}, ContainerState.RUNNING),
        ({"created_at": 1, "started_at": 2, "finished_at": 3}, ContainerState.EXITED),
        ({"created_at": 1, "finished_at": 3}, ContainerState.EXITED),
        ({"finished_at": 3}, ContainerState.EXITED),
        ({"started_at": 2}, ContainerState.RUNNING),
        ({"started_at": 2, "finished_at": 3}, ContainerState.EXITED),
        ({"unknown": True}, ContainerState.UNKNOWN),
        ({"created_at": 1, "unknown": True}, ContainerState.UNKNOWN),
        ({"created_at": 1, "started_at": 2, "unknown": True}, ContainerState.UNKNOWN),
        (
            {"created_at": 1, "started_at": 2, "finished_at": 3, "unknown": True},
            ContainerState.UNKNOWN,
        ),
        # other fields do not take part
        ({"pid": 42, "exit_code": 1, "reason": "r", "message": "m"}, ContainerState.UNKNOWN),
        ({"created_at": 1, "starting": True}, ContainerState.CREATED),
        ({"created_at": 1, "started_at": 2, "removing": True}, ContainerState.RUNNING),
    ],
)
def test_container_state_derivation(fields: dict[str, object], expected: ContainerState) -> None:
    state = ContainerStatus(**fields).state()  # type: ignore[arg-type]
    assert state is expected


def test_container_state_numbers() -> None:
    assert ContainerState.CREATED == 0
    assert ContainerState.RUNNING == 1
    assert ContainerState.EXITED == 2
    assert ContainerState.UNKNOWN == 3
    assert len(ContainerState) == 4


def test_sandbox_state_numbers() -> None:
    assert SandboxState.INIT == 0
    assert SandboxState.READY == 1
    assert SandboxState.NOTREADY == 2
    assert SandboxState.UNKNOWN == 3
    assert len(SandboxState) == 4


@pytest.mark.parametrize(
    ("state", "cri"),
    [
        (SandboxState.INIT, None),
        (SandboxState.READY, "SANDBOX_READY"),
        (SandboxState.NOTREADY, "SANDBOX_NOTREADY"),
        (SandboxState.UNKNOWN, "SANDBOX_NOTREADY"),
    ],
)
def test_sandbox_cri_state(state: SandboxState, cri: str | None) -> None:
    assert state.cri_state() == cri


# --- defaults ---------------------------------------------------------------------------------


def test_container_status_defaults() -> None:
    s = ContainerStatus()
    assert (s.pid, s.created_at, s.started_at, s.finished_at, s.exit_code) == (0, 0, 0, 0, 0)
    assert (s.reason, s.message) == ("", "")
    assert (s.starting, s.removing, s.unknown) == (False, False, False)
    assert s.resources is None
    assert isinstance(s, msgspec.Struct)


def test_container_status_positional_order() -> None:
    s = ContainerStatus(1, 2, 3, 4, 5, "reason", "message", True, True, True, None)
    assert s.pid == 1
    assert s.created_at == 2
    assert s.started_at == 3
    assert s.finished_at == 4
    assert s.exit_code == 5
    assert s.reason == "reason"
    assert s.message == "message"
    assert s.starting and s.removing and s.unknown
    assert s.resources is None


def test_sandbox_status_defaults() -> None:
    s = SandboxStatus()
    assert (s.pid, s.created_at, s.exit_status, s.exited_at) == (0, 0, 0, 0)
    assert s.state is SandboxState.INIT
    assert isinstance(s, msgspec.Struct)


def test_resources_defaults() -> None:
    r = ContainerResources()
    assert r.linux is None
    assert r.windows is None

    lin = LinuxContainerResources()
    assert (lin.cpu_period, lin.cpu_quota, lin.cpu_shares) == (0, 0, 0)
    assert (lin.cpuset_cpus, lin.cpuset_mems) == ("", "")
    assert (lin.memory_limit_in_bytes, lin.memory_swap_limit_in_bytes, lin.oom_score_adj) == (
        0,
        0,
        0,
    )
    assert lin.unified == {}
    assert lin.hugepage_limits == []
    # mutable defaults are not shared between instances
    lin.unified["a"] = "b"
    lin.hugepage_limits.append(HugepageLimit("2MB", 1))
    assert LinuxContainerResources().unified == {}
    assert LinuxContainerResources().hugepage_limits == []

    win = WindowsContainerResources()
    assert (
        win.cpu_shares,
        win.cpu_count,
        win.cpu_maximum,
        win.memory_limit_in_bytes,
        win.rootfs_size_in_bytes,
    ) == (0, 0, 0, 0, 0)

    h = HugepageLimit()
    assert h.page_size == ""
    assert h.limit == 0
    h2 = HugepageLimit("1GB", 3)
    assert (h2.page_size, h2.limit) == ("1GB", 3)


def test_metadata_defaults() -> None:
    m = ContainerMetadata("c1")
    assert m.id == "c1"
    assert (m.name, m.sandbox_id, m.image_ref, m.log_path) == ("", "", "", "")
    assert m.config is None

    c = ContainerConfig()
    assert (c.name, c.attempt, c.image) == ("", 0, "")
    assert c.labels == {}
    assert c.annotations == {}

    sm = SandboxMetadata("s1")
    assert sm.id == "s1"
    assert (sm.name, sm.netns_path) == ("", "")
    assert sm.config is None
    assert sm.ips == []

    sc = SandboxConfig()
    assert (sc.name, sc.uid, sc.namespace, sc.attempt) == ("", "", "", 0)
    assert sc.labels == {}
    assert sc.annotations == {}


def test_metadata_is_frozen() -> None:
    m = ContainerMetadata("c1", name="n", config=ContainerConfig(name="x"))
    with pytest.raises(AttributeError):
        m.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        m.config.name = "other"  # type: ignore[misc, union-attr]
    sm = SandboxMetadata("s1", config=SandboxConfig(uid="u"))
    with pytest.raises(AttributeError):
        sm.netns_path = "/x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        sm.config.uid = "v"  # type: ignore[misc, union-attr]


def test_everything_exported() -> None:
    for name in (
        "ContainerStatus",
        "ContainerState",
        "ContainerResources",
        "LinuxContainerResources",
        "HugepageLimit",
        "WindowsContainerResources",
        "ContainerMetadata",
        "ContainerConfig",
        "SandboxStatus",
        "SandboxState",
        "SandboxMetadata",
        "SandboxConfig",
        "open",
        "EvstoreError",
        "AlreadyExistsError",
        "NotFoundError",
        "AmbiguousIDError",
        "InvalidTransitionError",
        "StoreLockedError",
        "ReadOnlyError",
    ):
        assert hasattr(evstore, name), name


# --- resources survive the store --------------------------------------------------------------


def _both_resources() -> ContainerResources:
    return ContainerResources(
        linux=LinuxContainerResources(
            cpu_period=100_000,
            cpu_quota=50_000,
            cpu_shares=512,
            cpuset_cpus="0-3",
            cpuset_mems="0",
            memory_limit_in_bytes=1 << 30,
            memory_swap_limit_in_bytes=2 << 30,
            oom_score_adj=-500,
            unified={"memory.high": "1073741824", "pids.max": "100"},
            hugepage_limits=[HugepageLimit("2MB", 1 << 21), HugepageLimit("1GB", 1 << 30)],
        ),
        windows=WindowsContainerResources(
            cpu_shares=10,
            cpu_count=2,
            cpu_maximum=5000,
            memory_limit_in_bytes=1 << 29,
            rootfs_size_in_bytes=1 << 34,
        ),
    )


def test_both_resources_survive_add_and_reopen(store_path: Path) -> None:
    resources = _both_resources()
    status = ContainerStatus(pid=7, created_at=1_000, resources=resources)
    with evstore.open(store_path) as s:
        entry = s.containers.add(ContainerMetadata("c1"), status)
        assert entry.status.get().resources == _both_resources()
    with evstore.open(store_path) as s:
        got = s.containers.get("c1").status.get()
    assert got.resources == _both_resources()
    assert got.resources is not None
    assert got.resources.linux is not None
    assert got.resources.windows is not None
    assert got.resources.linux.unified == {"memory.high": "1073741824", "pids.max": "100"}
    assert got.resources.linux.hugepage_limits == [
        HugepageLimit("2MB", 1 << 21),
        HugepageLimit("1GB", 1 << 30),
    ]
    assert got.resources.windows.rootfs_size_in_bytes == 1 << 34
    assert got == status


def test_both_resources_survive_update_and_reopen(store_path: Path) -> None:
    with evstore.open(store_path) as s:
        entry = s.containers.add(ContainerMetadata("c1"), ContainerStatus(created_at=1))
        entry.status.update_sync(
            lambda st: msgspec.structs.replace(st, resources=_both_resources())
        )
    with evstore.open(store_path) as s:
        got = s.containers.get("c1").status.get()
    assert got.resources == _both_resources()


def test_only_windows_resources_survive(store_path: Path) -> None:
    resources = ContainerResources(windows=WindowsContainerResources(cpu_count=4))
    with evstore.open(store_path) as s:
        s.containers.add(
            ContainerMetadata("c1"), ContainerStatus(created_at=1, resources=resources)
        )
    with evstore.open(store_path) as s:
        got = s.containers.get("c1").status.get()
    assert got.resources == resources
    assert got.resources is not None
    assert got.resources.linux is None


# --- encoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [msgspec.json, msgspec.msgpack])
def test_container_status_round_trip(codec: object) -> None:
    status = ContainerStatus(
        pid=1234,
        created_at=1_700_000_000_000_000_000,
        started_at=1_700_000_000_000_000_001,
        finished_at=1_700_000_000_000_000_002,
        exit_code=137,
        reason="OOMKilled",
        message="out of memory",
        resources=_both_resources(),
    )
    data = codec.encode(status)  # type: ignore[attr-defined]
    assert codec.decode(data, type=ContainerStatus) == status  # type: ignore[attr-defined]


@pytest.mark.parametrize("codec", [msgspec.json, msgspec.msgpack])
def test_sandbox_status_round_trip(codec: object) -> None:
    status = SandboxStatus(
        pid=99, created_at=5, state=SandboxState.NOTREADY, exit_status=2, exited_at=6
    )
    data = codec.encode(status)  # type: ignore[attr-defined]
    got = codec.decode(data, type=SandboxStatus)  # type: ignore[attr-defined]
    assert got == status
    assert got.state is SandboxState.NOTREADY


@pytest.mark.parametrize("codec", [msgspec.json, msgspec.msgpack])
def test_metadata_round_trip(codec: object) -> None:
    cm = ContainerMetadata(
        "c1",
        name="name",
        sandbox_id="s1",
        config=ContainerConfig(
            name="n", attempt=2, image="busybox", labels={"a": "b"}, annotations={"c": "d"}
        ),
        image_ref="sha256:abc",
        log_path="/var/log/c1.log",
    )
    sm = SandboxMetadata(
        "s1",
        name="pod",
        config=SandboxConfig(
            name="p", uid="u", namespace="ns", attempt=1, labels={"x": "y"}, annotations={}
        ),
        netns_path="/var/run/netns/x",
        ips=["10.0.0.1", "fd00::1"],
    )
    assert codec.decode(codec.encode(cm), type=ContainerMetadata) == cm  # type: ignore[attr-defined]
    assert codec.decode(codec.encode(sm), type=SandboxMetadata) == sm  # type: ignore[attr-defined]


def test_transient_flags_dropped_by_store(store_path: Path) -> None:
    """containerd's encode/decode case: starting/removing/unknown are not persisted."""
    status = ContainerStatus(created_at=1, started_at=2, pid=3, starting=True, removing=True)
    with evstore.open(store_path) as s:
        s.containers.add(ContainerMetadata("c1"), status)
    with evstore.open(store_path) as s:
        got = s.containers.get("c1").status.get()
    assert got.starting is False
    assert got.removing is False
    assert got.unknown is False
    assert got == msgspec.structs.replace(status, starting=False, removing=False)
