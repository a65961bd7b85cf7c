"""A user's program, type-checked with ``mypy --strict`` against the installed package
(``test_install.py``, ``.ci/run``): evstore's public names must reach it with their types.

It is only type-checked, never run.
"""

from __future__ import annotations

import anyio
import msgspec

import evstore
from evstore import ContainerMetadata, ContainerState, ContainerStatus, Event


def start(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=31337, started_at=2)


def sync_user(path: str) -> list[Event]:
    version: str = evstore.__version__
    assert version
    with evstore.open(path, mode=0o640, snapshot_every=128, max_batch=512) as store:
        entry = store.containers.add(ContainerMetadata(id="3f2a9c01"), ContainerStatus())
        status: ContainerStatus = entry.status.update_sync(start)
        state: ContainerState = status.state()
        assert state is ContainerState.RUNNING
        try:
            store.containers.get("nope")
        except evstore.NotFoundError as exc:
            print(exc)
        return store.history("3f2")


async def async_user(path: str) -> int:
    async with evstore.open_async(path, readonly=True, map_size=1 << 30) as store:
        astore: evstore.AsyncStore = store
        entry = astore.containers.get("3f2a9c01")
        status: ContainerStatus = entry.status.get()
        async for event in astore.subscribe(since=0):
            return event.position + status.pid
    return 0


def main(path: str) -> None:
    sync_user(path)
    anyio.run(async_user, path)
