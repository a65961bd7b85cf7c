"""What is stored: container and sandbox statuses, their resources and their metadata.

Statuses mirror containerd's CRI ``Status`` (times are Unix nanoseconds). Defaults are
omitted when encoded, so records stay small and a field added later (with a default)
reads back from old records.
"""

# no ``from __future__ import annotations`` here, nor in ``events`` and ``codec``: msgspec
# reads their annotations as objects instead of evaluating each one as a string, and a
# command's start saves 0.6 ms making its decoders
import msgspec

from evstore._core.states import ContainerState, SandboxState

# Every struct here is ``gc=False``: they hold only scalars, strings and each other, so they
# can never be part of a reference cycle, and leaving them out of the cycle collector
# spares a full collection from walking every status the store keeps.

# Fields that describe what the runtime is doing right now; never written to disk.
TRANSIENT_FIELDS = ("starting", "removing", "unknown")


class HugepageLimit(msgspec.Struct, omit_defaults=True, gc=False):
    page_size: str = ""
    limit: int = 0


class LinuxContainerResources(msgspec.Struct, omit_defaults=True, gc=False):
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    memory_limit_in_bytes: int = 0
    memory_swap_limit_in_bytes: int = 0
    oom_score_adj: int = 0
    unified: dict[str, str] = {}
    hugepage_limits: list[HugepageLimit] = []


class WindowsContainerResources(msgspec.Struct, omit_defaults=True, gc=False):
    cpu_shares: int = 0
    cpu_count: int = 0
    cpu_maximum: int = 0
    memory_limit_in_bytes: int = 0
    rootfs_size_in_bytes: int = 0


class ContainerResources(msgspec.Struct, omit_defaults=True, gc=False):
    """Both platforms may be set at once and both are kept (containerd's copy drops one)."""

    linux: LinuxContainerResources | None = None
    windows: WindowsContainerResources | None = None


class ContainerStatus(msgspec.Struct, omit_defaults=True, gc=False):
    pid: int = 0
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    starting: bool = False
    removing: bool = False
    unknown: bool = False
    resources: ContainerResources | None = None
    note: str = ""  # how this differs from what the runtime reported (see evstore._views.cri)

    def state(self) -> ContainerState:
        """Derived as containerd does, in this order, so a stale flag cannot hide an exit."""
        if self.unknown:
            return ContainerState.UNKNOWN
        if self.finished_at:
            return ContainerState.EXITED
        if self.started_at:
            return ContainerState.RUNNING
        if self.created_at:
            return ContainerState.CREATED
        return ContainerState.UNKNOWN


class SandboxStatus(msgspec.Struct, omit_defaults=True, gc=False):
    pid: int = 0
    created_at: int = 0
    state: SandboxState = SandboxState.INIT
    exit_status: int = 0
    exited_at: int = 0
    note: str = ""  # how this differs from what the runtime reported (see evstore._views.cri)


class ContainerConfig(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    name: str = ""
    attempt: int = 0
    image: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class ContainerMetadata(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    id: str
    name: str = ""
    sandbox_id: str = ""
    config: ContainerConfig | None = None
    image_ref: str = ""
    log_path: str = ""


class SandboxConfig(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    name: str = ""
    uid: str = ""
    namespace: str = ""
    attempt: int = 0
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class SandboxMetadata(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    id: str
    name: str = ""
    config: SandboxConfig | None = None
    netns_path: str = ""
    ips: list[str] = []


Status = ContainerStatus | SandboxStatus
Metadata = ContainerMetadata | SandboxMetadata


def status_state(status: Status) -> ContainerState | SandboxState:
    """The state of either kind of status, so callers need not branch on the kind."""
    if isinstance(status, ContainerStatus):
        return status.state()
    return status.state


def state_name(status: Status) -> str:
    """The state as the command line and the fleet table spell it (``running``, ``ready``)."""
    return status_state(status).name.lower()


def durable_part(status: Status) -> Status:
    """The status as it is written: transient flags cleared."""
    if isinstance(status, ContainerStatus) and (
        status.starting or status.removing or status.unknown
    ):
        return msgspec.structs.replace(status, starting=False, removing=False, unknown=False)
    return status
