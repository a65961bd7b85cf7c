"""A closed store says so: reads of its log and live feeds raise ``StoreClosedError``
(never "damaged"), and a feed waiting for new events learns of the close at once."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._store.store import abandon


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


# -- a close (or abandon) under writers that keep writing: every one of them is released --

JOIN_SECONDS = 10  # a hang fails the test instead of blocking the run


def _with_pid(status: ContainerStatus, pid: int) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=pid)


def _update_sync(store: evstore.Store, n: int) -> int:
    store.containers.get("c").status.update_sync(lambda s: msgspec.structs.replace(s, pid=n))
    return n


def _update_flush(store: evstore.Store, n: int) -> int:
    store.containers.get("c").status.update(lambda s: msgspec.structs.replace(s, pid=n))
    store.flush()
    return n


def _add_delete(store: evstore.Store, n: int) -> int:
    store.containers.add(ContainerMetadata(id=f"d{n}"), ContainerStatus(created_at=1))
    store.containers.delete(f"d{n}")
    return n


WRITES: dict[str, Callable[[evstore.Store, int], int]] = {
    "update_sync": _update_sync, "update+flush": _update_flush, "add+delete": _add_delete,
}


def _write_until_closed(
    store: evstore.Store, write: Callable[[evstore.Store, int], int], started: threading.Event,
    acknowledged: list[int], outcomes: list[str],
) -> None:
    try:
        for n in range(1, 1_000_000):
            acknowledged.append(write(store, n))
            started.set()
    except evstore.StoreClosedError:
        outcomes.append("closed")
    except Exception as exc:  # what the test is for: anything else is a failure
        outcomes.append(repr(exc))


def _in_thread(target: Callable[..., object], *args: object) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)  # a hung one stays behind
    thread.start()
    return thread


def _stop_under_writers(
    path: Path, write: Callable[[evstore.Store, int], int], stop: Callable[[evstore.Store], None],
) -> int:
    """Close (or abandon) the store ~2 ms into a writer's loop; return what it acknowledged
    last, once both threads ended."""
    store = evstore.open(path, probe=False)
    store.containers.add(ContainerMetadata(id="c"), ContainerStatus(created_at=1))
    started, acknowledged, outcomes = threading.Event(), [0], []
    writer = _in_thread(_write_until_closed, store, write, started, acknowledged, outcomes)
    assert started.wait(JOIN_SECONDS)
    time.sleep(0.002)
    stopper = _in_thread(stop, store)
    stopper.join(JOIN_SECONDS)
    writer.join(JOIN_SECONDS)
    assert not stopper.is_alive(), "the close hangs"
    assert not writer.is_alive(), "a writer was never released"
    assert outcomes == ["closed"]
    return acknowledged[-1]


def _check_acknowledged(path: Path, write: str, last: int) -> None:
    """Every acknowledged write is on disk; a refused durable one is not."""
    with evstore.open(path, readonly=True, probe=False) as store:
        others = {e.id for e in store.containers.list()} - {"c"}
        pid = store.containers.get("c").status.get().pid
    if write == "add+delete":  # the add of the last round may be in, its delete refused
        assert others <= {f"d{last + 1}"}
    elif write == "update_sync":
        assert pid == last
    else:  # the last ``update`` may be in, though its flush was refused
        assert last <= pid <= last + 1


@pytest.mark.parametrize("write", WRITES, ids=WRITES.keys())
@pytest.mark.parametrize("stop", [evstore.Store.close, abandon], ids=["close", "abandon"])
def test_stopping_under_writers_releases_them(
    tmp_path: Path, write: str, stop: Callable[[evstore.Store], None]
) -> None:
    for trial in range(8):
        path = tmp_path / str(trial)
        last = _stop_under_writers(path, WRITES[write], stop)
        _check_acknowledged(path, write, last)


@pytest.mark.anyio
async def test_close_under_async_and_thread_writers_releases_them(store_path: Path) -> None:
    """Tasks (which queue for the writer thread) beside a thread (which leads its own
    commits) share the path that hung."""
    async with evstore.open_async(store_path, probe=False) as store:
        entry = await store.containers.add(ContainerMetadata(id="c"), ContainerStatus())
        outcomes: list[str] = []
        started, acknowledged = threading.Event(), [0]

        async def task_writes(n: int) -> None:
            try:
                for pid in range(n, 1_000_000, 10):
                    await entry.status.update_sync(functools.partial(_with_pid, pid=pid))
                    await store.flush()
            except evstore.StoreClosedError:
                outcomes.append("closed")

        thread = _in_thread(
            _write_until_closed, store.sync, _update_sync, started, acknowledged, outcomes
        )
        with anyio.fail_after(JOIN_SECONDS):
            async with anyio.create_task_group() as group:
                for n in range(1, 10):
                    group.start_soon(task_writes, n)
                await anyio.sleep(0.05)
                closer = _in_thread(store.sync.close)
                while closer.is_alive():  # a hang ends in fail_after, not in a stuck worker
                    await anyio.sleep(0.01)
        thread.join(JOIN_SECONDS)
        assert outcomes == ["closed"] * 10
