"""evstore: an embedded, event-sourced container and sandbox status store on LMDB."""

from .errors import (
    AlreadyExistsError,
    AmbiguousIDError,
    CorruptStoreError,
    DiskFullError,
    EvstoreError,
    FleetError,
    HistoryDroppedError,
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    ReadOnlyError,
    StoreAccessError,
    StoreClosedError,
    StoreLockedError,
    WriteError,
)
from .events import Event
from .model import (
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
from .pods import Pod, Pods, PodStatus, build_pod_full_name
from .recovery import LoadReport
from .states import ContainerState, SandboxState
from .store import Store
from .store import open_store as open


def __getattr__(name: str) -> object:
    """The async front loads anyio only when asked for, so a plain ``import evstore`` is light."""
    if name in ("AsyncStore", "open_async"):
        from . import aio

        return getattr(aio, name)
    raise AttributeError(f"module 'evstore' has no attribute {name!r}")


__all__ = [
    "AlreadyExistsError",
    "AmbiguousIDError",
    "AsyncStore",
    "ContainerConfig",
    "ContainerMetadata",
    "ContainerResources",
    "ContainerState",
    "ContainerStatus",
    "CorruptStoreError",
    "DiskFullError",
    "Event",
    "EvstoreError",
    "FleetError",
    "HistoryDroppedError",
    "HugepageLimit",
    "InvalidInputError",
    "InvalidTransitionError",
    "LinuxContainerResources",
    "LoadReport",
    "NotFoundError",
    "Pod",
    "PodStatus",
    "Pods",
    "ReadOnlyError",
    "SandboxConfig",
    "SandboxMetadata",
    "SandboxState",
    "SandboxStatus",
    "Store",
    "StoreAccessError",
    "StoreClosedError",
    "StoreLockedError",
    "WindowsContainerResources",
    "WriteError",
    "build_pod_full_name",
    "open",
    "open_async",
]
