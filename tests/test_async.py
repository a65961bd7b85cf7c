"""The anyio front on asyncio and trio: awaitable writes, group commit, cancellation, the feed."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest
from test_updates import writer_held

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxState, SandboxStatus
from evstore._store.store import abandon

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def bump(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=status.pid + 1)


async def test_writes_are_awaitable_and_durable(store_path: Path) -> None:
    async with evstore.open_async(store_path) as store:
        metadata = ContainerMetadata(id="c1")
        entry = await store.containers.add(metadata, ContainerStatus(created_at=1))
        await entry.status.update_sync(bump)
        await entry.status.update(lambda s: msgspec.structs.replace(s, started_at=2))
        assert store.containers.get("c").status.get().pid == 1  # plain, non-blocking reads
        sandbox = await store.sandboxes.add(SandboxMetadata(id="s1"), SandboxStatus(created_at=1))
        await sandbox.status.update_sync(
            lambda s: msgspec.structs.replace(s, state=SandboxState.READY)
        )
        doomed = await store.containers.add(ContainerMetadata(id="c2"), ContainerStatus())
        await store.containers.delete("c2")
        await store.containers.delete("missing")  # silent
        with pytest.raises(evstore.NotFoundError):
            await doomed.status.update_sync(bump)
        with pytest.raises(evstore.AlreadyExistsError):
            await store.containers.add(ContainerMetadata(id="c1"), ContainerStatus())
        await store.flush()
    with evstore.open(store_path) as reopened:
        status = reopened.containers.get("c1").status.get()
        assert (status.pid, status.started_at) == (1, 2)
        assert reopened.sandboxes.get("s1").status.get().state is SandboxState.READY
        assert [e.id for e in reopened.containers.list()] == ["c1"]


async def test_concurrent_tasks_share_commits(store_path: Path) -> None:
    async with evstore.open_async(store_path) as store:
        entries = [
            await store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
            for n in range(200)
        ]
        before = store.sync.stats()

        async def work(entry: evstore._store.aio.AsyncEntry) -> None:  # type: ignore[type-arg]
            for _ in range(5):
                await entry.status.update_sync(bump)

        async with anyio.create_task_group() as group:
            for entry in entries:
                group.start_soon(work, entry)
        after = store.sync.stats()
        assert after["events"] - before["events"] == 1_000
        assert after["commits"] - before["commits"] < 1_000  # fsyncs were shared
    with evstore.open(store_path) as reopened:
        assert {e.status.get().pid for e in reopened.containers.list()} == {5}


async def test_a_failing_fn_fails_only_its_caller(store_path: Path) -> None:
    async with evstore.open_async(store_path) as store:
        entries = [
            await store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
            for n in range(10)
        ]
        outcomes: dict[str, str] = {}

        def broken(status: ContainerStatus) -> ContainerStatus:
            raise RuntimeError("no")

        async def work(entry: evstore._store.aio.AsyncEntry, fn) -> None:  # type: ignore[type-arg,no-untyped-def]
            try:
                await entry.status.update_sync(fn)
                outcomes[entry.id] = "ok"
            except RuntimeError:
                outcomes[entry.id] = "failed"

        async with anyio.create_task_group() as group:
            for n, entry in enumerate(entries):
                group.start_soon(work, entry, broken if n == 3 else bump)
        assert outcomes == {f"c{n}": "failed" if n == 3 else "ok" for n in range(10)}
        assert entries[3].status.get().pid == 0


async def test_update_sync_that_records_nothing_waits_for_earlier_updates(
    store_path: Path,
) -> None:
    """As ``update_sync`` of a thread does (see test_updates): an ``update`` still queued is
    durable before an ``update_sync`` that records nothing returns."""
    replace = msgspec.structs.replace
    async with evstore.open_async(store_path) as store:
        entry = await store.sandboxes.add(SandboxMetadata(id="s1"), SandboxStatus(created_at=1))
        returned = anyio.Event()

        async def sync_nothing() -> None:
            await entry.status.update_sync(replace)
            returned.set()

        with writer_held(store.sync) as release:
            await entry.status.update(lambda s: replace(s, state=SandboxState.READY))
            async with anyio.create_task_group() as group:
                group.start_soon(sync_nothing)
                await anyio.sleep(0.3)
                assert not returned.is_set(), "returned while the earlier update was queued"
                release.set()
        abandon(store.sync)  # a crash: what is only queued is lost
    with evstore.open(store_path) as reopened:
        assert reopened.sandboxes.get("s1").status.get().state is SandboxState.READY


async def test_cancelled_update_sync_completes_or_leaves_nothing(store_path: Path) -> None:
    async with evstore.open_async(store_path) as store:
        entries = [
            await store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
            for n in range(50)
        ]
        with anyio.move_on_after(0.001):
            async with anyio.create_task_group() as group:
                for entry in entries:
                    group.start_soon(entry.status.update_sync, bump)
        in_memory = {entry.id: entry.status.get().pid for entry in entries}
    with evstore.open(store_path) as reopened:
        on_disk = {e.id: e.status.get().pid for e in reopened.containers.list()}
    assert in_memory == on_disk  # memory never showed what the disk does not have


async def test_backpressure_bounds_the_queue(store_path: Path) -> None:
    async with evstore.open_async(store_path, max_pending=4, max_batch=2) as store:
        entry = await store.containers.add(ContainerMetadata(id="c"), ContainerStatus(created_at=1))
        for _ in range(100):
            await entry.status.update(bump)
        await store.flush()
        assert store.sync.stats()["commits"] >= 50
    with evstore.open(store_path) as reopened:
        assert reopened.containers.get("c").status.get().pid == 100


async def test_subscribe_replays_then_follows_without_gaps(store_path: Path) -> None:
    async with evstore.open_async(store_path) as store:
        entry = await store.containers.add(ContainerMetadata(id="c"), ContainerStatus(created_at=1))
        for _ in range(3):
            await entry.status.update_sync(bump)
        seen: list[evstore.Event] = []

        async def follow() -> None:
            async for event in store.subscribe(since=1):
                seen.append(event)
                if len(seen) == 13:
                    break

        async with anyio.create_task_group() as group:
            group.start_soon(follow)
            for _ in range(10):
                await entry.status.update(bump)  # not awaited to disk: the feed waits for it
                await anyio.sleep(0)
        assert [event.position for event in seen] == list(range(2, 15))
        assert [event.seq for event in seen] == list(range(2, 15))
        assert {event.type for event in seen} == {"updated"} and seen[-1].changes == {"pid": 13}
        assert store.sync._writer._listeners == []  # leaving the loop released it


async def test_subscription_aclose_and_readonly_feed(store_path: Path) -> None:
    async with evstore.open_async(store_path) as store:
        await store.containers.add(ContainerMetadata(id="c"), ContainerStatus(created_at=1))
        feed = store.subscribe()
        first = await feed.__anext__()
        assert (first.type, first.id, first.entity) == ("created", "c", "container")
        await feed.aclose()
        with pytest.raises(StopAsyncIteration):
            await feed.__anext__()
        for since in (-1, "1", 2**64):
            with pytest.raises(evstore.InvalidInputError, match="since must be"):
                store.subscribe(since)  # type: ignore[arg-type]
    async with evstore.open_async(store_path, readonly=True) as reader:
        with pytest.raises(evstore.ReadOnlyError):
            await reader.containers.get("c").status.update_sync(bump)
        with anyio.fail_after(5):
            async for event in reader.subscribe():
                assert event.position == 1
                break
