"""evstore: an embedded, event-sourced container and sandbox status store on LMDB.

The public names load on first use (PEP 562), so ``import evstore`` and ``evstore --help``
pay only for what they touch; type checkers see them through the ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import TYPE_CHECKING

from evstore._core.errors import (
    AlreadyExistsError,
    AmbiguousIDError,
    BenchError,
    ContainerdStatusError,
    CorruptStoreError,
    DiskFullError,
    EvstoreError,
    FleetError,
    HistoryDroppedError,
    InvalidInputError,
    InvalidTransitionError,
    MissingExtraError,
    NotFoundError,
    PostgresServerError,
    ReadOnlyError,
    RuntimeUnavailableError,
    StoreAccessError,
    StoreClosedError,
    StoreLockedError,
    StoreNotFoundError,
    WriteError,
)

if TYPE_CHECKING:
    from typing import Unpack

    from evstore._core.events import Event
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
    from evstore._core.states import ContainerState, SandboxState
    from evstore._storage.recovery import LoadReport
    from evstore._store.aio import AsyncStore, open_async
    from evstore._store.entries import Entries, Entry
    from evstore._store.status import StatusStorage
    from evstore._store.store import Store
    from evstore._store.tuning import Tuning
    from evstore._views.pods import Pod, Pods, PodStatus, build_pod_full_name

    __version__: str

# name -> the module that defines it, imported on first access
_LAZY = {
    "AsyncStore": "_store.aio",
    "open_async": "_store.aio",
    "Event": "_core.events",
    "Entries": "_store.entries",
    "Entry": "_store.entries",
    "StatusStorage": "_store.status",
    "Tuning": "_store.tuning",
    "ContainerConfig": "_core.model",
    "ContainerMetadata": "_core.model",
    "ContainerResources": "_core.model",
    "ContainerStatus": "_core.model",
    "HugepageLimit": "_core.model",
    "LinuxContainerResources": "_core.model",
    "SandboxConfig": "_core.model",
    "SandboxMetadata": "_core.model",
    "SandboxStatus": "_core.model",
    "WindowsContainerResources": "_core.model",
    "Pod": "_views.pods",
    "Pods": "_views.pods",
    "PodStatus": "_views.pods",
    "build_pod_full_name": "_views.pods",
    "LoadReport": "_storage.recovery",
    "ContainerState": "_core.states",
    "SandboxState": "_core.states",
    "Store": "_store.store",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        from evstore._core.version import __version__

        return __version__
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evstore' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "__version__"])


def open(
    path: str | os.PathLike[str], *, readonly: bool = False, probe: bool = True,
    mode: int = 0o600, **tuning: Unpack[Tuning],
) -> Store:
    """Open the store at ``path`` (creating it if missing, unless ``readonly``) and rebuild
    every entry from it. Use it as a context manager, or call ``close()``.

    ``readonly=True`` reads beside a running writer and never writes. An existing store is
    first loaded in a child process (``probe``), so that a file damaged badly enough to crash
    its reader raises ``CorruptStoreError`` instead of killing this process; ``probe=False``
    skips that where such a crash is acceptable.

    A new store's files get ``mode`` (0600: its owner's alone; the directory 0700); a wider
    one such as 0640 lets a group read it. An existing store's files keep their modes.

    Tuning keywords (integers of at least 1; the defaults suit most stores):

    - ``map_size`` (1 GiB): initial address space of the file; it grows on its own.
    - ``snapshot_every`` (64): events of one entry between its snapshots.
    - ``checkpoint_every`` (20,000): at most this many events are replayed after a crash.
    - ``max_batch`` (1,024): events in one commit.
    - ``max_pending`` (65,536): queued events before writers wait (backpressure).
    - ``index_every`` (1,024): events whose index records are written together.

    Raises ``StoreNotFoundError`` for a missing store opened ``readonly``, ``StoreLockedError``
    when another writer has it, ``CorruptStoreError`` for a damaged file and
    ``InvalidInputError`` for an unknown or invalid tuning keyword.
    """
    from evstore._store.store import Store

    return Store(path, readonly=readonly, probe=probe, mode=mode, **tuning)


__all__ = [
    "AlreadyExistsError",
    "AmbiguousIDError",
    "AsyncStore",
    "BenchError",
    "ContainerConfig",
    "ContainerMetadata",
    "ContainerResources",
    "ContainerState",
    "ContainerStatus",
    "ContainerdStatusError",
    "CorruptStoreError",
    "DiskFullError",
    "Entries",
    "Entry",
    "Event",
    "EvstoreError",
    "FleetError",
    "HistoryDroppedError",
    "HugepageLimit",
    "InvalidInputError",
    "InvalidTransitionError",
    "LinuxContainerResources",
    "LoadReport",
    "MissingExtraError",
    "NotFoundError",
    "Pod",
    "PodStatus",
    "Pods",
    "PostgresServerError",
    "ReadOnlyError",
    "RuntimeUnavailableError",
    "SandboxConfig",
    "SandboxMetadata",
    "SandboxState",
    "SandboxStatus",
    "StatusStorage",
    "Store",
    "StoreAccessError",
    "StoreClosedError",
    "StoreLockedError",
    "StoreNotFoundError",
    "Tuning",
    "WindowsContainerResources",
    "WriteError",
    "build_pod_full_name",
    "open",
    "open_async",
]
