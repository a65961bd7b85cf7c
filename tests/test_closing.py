"""A closed store says so: reads of its log and live feeds raise ``StoreClosedError``
(never "damaged"), and a feed waiting for new events learns of the close at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

import evstore
from evstore import ContainerMetadata, ContainerStatus


def bump(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=status.pid + 1)


def _filled(path: Path, events: int = 3) -> None:
    with evstore.open(path) as store:
        entry = store.containers.add(ContainerMetadata(id="c"), ContainerStatus(created_at=1))
        for _ in range(events - 1):
            entry.status.update_sync(bump)


READS: dict[str, Callable[[evstore.Store, Iterator[evstore.Event]], object]] = {
    "a feed made before the close": lambda store, feed: next(feed),
    "events": lambda store, feed: list(store.events()),
    "history": lambda store, feed: store.history("c"),
    "status_at": lambda store, feed: store.status_at("c", seq=1),
    "last_position": lambda store, feed: store.last_position,
}


@pytest.mark.parametrize("read", READS, ids=READS.keys())
@pytest.mark.parametrize("readonly", [False, True])
def test_log_reads_after_close_say_closed(store_path: Path, readonly: bool, read: str) -> None:
    _filled(store_path)
    store = evstore.open(store_path, readonly=readonly)
    feed = store.events()  # a generator: it reads its first page only when advanced
    assert not store.closed
    store.close()
    assert store.closed
    if read == "last_position" and not readonly:
        assert store.last_position == 3  # a writable store knows it without reading the log
        return
    with pytest.raises(evstore.StoreClosedError, match="closed"):
        READS[read](store, feed)


def _read_until_closed(store: evstore.Store, started: threading.Event, outcomes: list[str]) -> None:
    try:
        while True:
            started.set()
            assert len(list(store.events())) == 2_500
    except evstore.StoreClosedError:
        outcomes.append("closed")
    except Exception as exc:  # what the test is for: anything else is a failure
        outcomes.append(repr(exc))


def test_reads_racing_a_close_never_see_damage(store_path: Path) -> None:
    _filled(store_path, events=2_500)  # feeds of several pages, one transaction each
    for _ in range(20):
        store = evstore.open(store_path, readonly=True, probe=False)
        outcomes: list[str] = []
        started = threading.Event()
        reader = threading.Thread(target=_read_until_closed, args=(store, started, outcomes))
        reader.start()
        started.wait()
        store.close()
        reader.join(10)
        assert outcomes == ["closed"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
@pytest.mark.parametrize("readonly", [False, True])
async def test_a_waiting_feed_learns_of_the_close(store_path: Path, readonly: bool) -> None:
    _filled(store_path)
    async with evstore.open_async(store_path, readonly=readonly) as store:
        feed = store.subscribe()
        assert [(await feed.__anext__()).position for _ in range(3)] == [1, 2, 3]
        outcome: list[BaseException] = []

        async def follow() -> None:
            try:
                await feed.__anext__()  # nothing new: waits for the next commit
            except evstore.StoreClosedError as exc:
                outcome.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(follow)
                await anyio.sleep(0.2)  # the feed is waiting now
                await anyio.to_thread.run_sync(store.sync.close)
        assert len(outcome) == 1 and "position 3" in str(outcome[0])  # where to resume
        with pytest.raises(evstore.StoreClosedError):
            await store.subscribe().__anext__()


@pytest.mark.anyio
async def test_a_feed_keeps_what_it_read_before_the_close(store_path: Path) -> None:
    _filled(store_path)
    async with evstore.open_async(store_path) as store:
        feed = store.subscribe()
        first = await feed.__anext__()  # reads a page: all three events
        await anyio.to_thread.run_sync(store.sync.close)
        assert [first.position] + [(await feed.__anext__()).position for _ in range(2)] == [
            1, 2, 3,
        ]
        with pytest.raises(evstore.StoreClosedError):
            await feed.__anext__()
