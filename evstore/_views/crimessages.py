"""CRI messages as the store's structs, and what of a runtime's report may be recorded over
what the store holds (the rules listed in ``evstore._views.cri``). Plain functions of the
messages: no gRPC, no store, so each rule can be read and tested alone."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from evstore._core.errors import InvalidTransitionError
from evstore._core.model import (
    ContainerConfig,
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    HugepageLimit,
    LinuxContainerResources,
    SandboxConfig,
    SandboxMetadata,
    SandboxStatus,
    WindowsContainerResources,
)
from evstore._core.states import ContainerState, SandboxState, check_move

_TIMES = ("created_at", "started_at", "finished_at")
_CRI_CONTAINER_STATES = ("CONTAINER_CREATED", "CONTAINER_RUNNING", "CONTAINER_EXITED",
                         "CONTAINER_UNKNOWN")
_CRI_SANDBOX_READY = 0  # CRI's SANDBOX_READY (NOTREADY is 1); the store numbers them 1 and 2


def verbose_pid(info: Any) -> int:
    """The pid in a verbose status's ``info`` JSON (containerd's), else 0."""
    try:
        pid = json.loads(info.get("info", "{}")).get("pid", 0)
    except (ValueError, AttributeError):
        return 0
    return pid if isinstance(pid, int) and pid > 0 else 0


def _resources(message: Any) -> ContainerResources | None:
    if message is None or not message.ByteSize():
        return None
    linux = windows = None
    if message.HasField("linux"):
        lx = message.linux
        linux = LinuxContainerResources(
            cpu_period=lx.cpu_period, cpu_quota=lx.cpu_quota, cpu_shares=lx.cpu_shares,
            cpuset_cpus=lx.cpuset_cpus, cpuset_mems=lx.cpuset_mems,
            memory_limit_in_bytes=lx.memory_limit_in_bytes,
            memory_swap_limit_in_bytes=lx.memory_swap_limit_in_bytes,
            oom_score_adj=lx.oom_score_adj, unified=dict(lx.unified),
            hugepage_limits=[HugepageLimit(page_size=h.page_size, limit=h.limit)
                             for h in lx.hugepage_limits],
        )
    if message.HasField("windows"):
        win = message.windows
        windows = WindowsContainerResources(
            cpu_shares=win.cpu_shares, cpu_count=win.cpu_count, cpu_maximum=win.cpu_maximum,
            memory_limit_in_bytes=win.memory_limit_in_bytes,
            rootfs_size_in_bytes=win.rootfs_size_in_bytes,
        )
    return ContainerResources(linux=linux, windows=windows)


def container_metadata(status: Any, sandbox_id: str) -> ContainerMetadata:
    """What CRI says of a container that never changes: name, attempt, image, labels..."""
    meta = status.metadata
    return ContainerMetadata(
        id=status.id, name=meta.name, sandbox_id=sandbox_id,
        config=ContainerConfig(
            name=meta.name, attempt=meta.attempt, image=status.image.image,
            labels=dict(status.labels), annotations=dict(status.annotations),
        ),
        image_ref=status.image_ref, log_path=status.log_path,
    )


def container_status(status: Any, pid: int) -> ContainerStatus:
    """A CRI ``ContainerStatus`` as the store's status, exactly as reported."""
    return ContainerStatus(
        pid=pid, created_at=status.created_at, started_at=status.started_at,
        finished_at=status.finished_at, exit_code=status.exit_code, reason=status.reason,
        message=status.message,
        resources=_resources(status.resources if status.HasField("resources") else None),
    )


def sandbox_metadata(status: Any) -> SandboxMetadata:
    meta = status.metadata
    ips = [status.network.ip] if status.network.ip else []
    ips += [extra.ip for extra in status.network.additional_ips if extra.ip]
    return SandboxMetadata(
        id=status.id, name=meta.name,
        config=SandboxConfig(
            name=meta.name, uid=meta.uid, namespace=meta.namespace, attempt=meta.attempt,
            labels=dict(status.labels), annotations=dict(status.annotations),
        ),
        ips=ips,
    )


def sandbox_status(cri_state: int, created_at: int, pid: int) -> SandboxStatus:
    state = SandboxState.READY if cri_state == _CRI_SANDBOX_READY else SandboxState.NOTREADY
    return SandboxStatus(pid=pid, created_at=created_at, state=state)


# --- what may be recorded over what the store holds ------------------------------------------


def reconcile_container(
    old: ContainerStatus | None, seen: ContainerStatus, reported: int, now: int
) -> ContainerStatus:
    """``seen`` made recordable over ``old``, each departure from it said in ``note``."""
    notes: list[str] = []
    values: dict[str, Any] = {"note": ""}
    if old is not None:
        if not seen.pid and old.pid:
            values["pid"] = old.pid
        kept = [name for name in _TIMES if getattr(old, name) and not getattr(seen, name)]
        values.update((name, getattr(old, name)) for name in kept)
        if kept:
            notes.append(f"runtime no longer reports {', '.join(kept)}: kept")
    status = msgspec.structs.replace(seen, **values)
    name = _CRI_CONTAINER_STATES[reported] if 0 <= reported < 4 else f"state {reported}"
    derived = status.state()
    if reported == ContainerState.EXITED and derived is not ContainerState.EXITED:
        status.finished_at = now
        notes.append(f"runtime reports {name} without a finish time: finished_at is when seen")
    elif reported == ContainerState.RUNNING and derived is ContainerState.CREATED:
        status.started_at = now
        notes.append(f"runtime reports {name} without a start time: started_at is when seen")
    elif reported == ContainerState.UNKNOWN and derived is not ContainerState.UNKNOWN:
        notes.append(f"runtime reports {name}; kept {derived.name}")
    status.note = "; ".join(notes)
    return status


def reconcile_sandbox(old: SandboxStatus | None, seen: SandboxStatus) -> SandboxStatus:
    """``seen`` over ``old``: a pid or creation time no longer reported is kept."""
    if old is None:
        return seen
    pid = seen.pid or old.pid
    created = seen.created_at or old.created_at
    note = "" if created == seen.created_at else "runtime no longer reports created_at: kept"
    return msgspec.structs.replace(seen, pid=pid, created_at=created, note=note)


def allowed(old: ContainerStatus | SandboxStatus, new: ContainerStatus | SandboxStatus) -> bool:
    before = old.state() if isinstance(old, ContainerStatus) else old.state
    after = new.state() if isinstance(new, ContainerStatus) else new.state
    try:
        check_move(before, after)
    except InvalidTransitionError:
        return False
    return True


def sandbox_moved(old: SandboxStatus, item: Any) -> bool:
    """Whether a listed sandbox differs from the store's: its state, or a creation time."""
    if old.state != sandbox_status(item.state, 0, 0).state:
        return True
    return bool(item.created_at) and item.created_at != old.created_at


def state_name(status: ContainerStatus | SandboxStatus) -> str:
    return status.state().name if isinstance(status, ContainerStatus) else status.state.name
