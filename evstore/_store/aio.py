"""The anyio front: the same store for asyncio and trio programs, and a live event feed.

Writes do their in-memory part on the event loop and hand the event to the writer
thread; a task awaiting ``update_sync`` sleeps on one event per batch, which the writer
sets with a single thread-safe call into the loop however many tasks share the batch.
Reads stay plain calls: they touch only memory.

Once its event is queued, an ``update_sync`` cannot be taken back, so a cancelled task
still waits (shielded) for the commit and shows it in memory before the cancellation is
delivered: it either completes or, cancelled before queuing, did nothing at all.
"""

from __future__ import annotations

import builtins
import functools
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, Protocol, TypeVar, Unpack, cast

import anyio
import anyio.lowlevel
import sniffio

from evstore._core import inputs
from evstore._core.errors import StoreClosedError
from evstore._core.events import Event
from evstore._core.model import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxStatus
from evstore._storage import audit
from evstore._storage.commit import Batch
from evstore._storage.recovery import LoadReport
from evstore._store.entries import Entries, Entry
from evstore._store.status import StatusStorage
from evstore._store.store import Store, open_store, refuse_public_names, set_name
from evstore._store.tuning import Tuning

S = TypeVar("S", bound=ContainerStatus | SandboxStatus)
M = TypeVar("M", bound=ContainerMetadata | SandboxMetadata)
CallSoon = Callable[[Callable[[], object]], object]
POLL_SECONDS = 0.05  # how often a read-only store's feed looks for new events


class _Event(Protocol):
    """What the tasks of one batch sleep on: ``anyio.Event``, or ``asyncio.Event`` itself."""

    def set(self) -> object: ...
    def wait(self) -> Awaitable[object]: ...


def _event_type() -> Callable[[], _Event]:
    """On asyncio, its own Event: the tasks of a batch wake with one layer less each."""
    if sniffio.current_async_library() == "asyncio":
        import asyncio

        return asyncio.Event
    return anyio.Event


def _call_soon() -> CallSoon:
    """A way for another thread to run a function on the current event loop, not blocking."""
    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio

    return asyncio.get_running_loop().call_soon_threadsafe


class _Loop:
    """The event loop a store was opened on, and how the writer wakes its tasks."""

    def __init__(self) -> None:
        self.call_soon = _call_soon()
        self._new_event = _event_type()

    async def wait(self, batch: Batch) -> BaseException | None:
        """Sleep until ``batch`` is committed, sharing one wake-up with its other waiters.

        Raises the commit's error. A cancellation that arrives meanwhile is held until the
        commit has ended and then returned, so the caller can show the write in memory
        before raising it.
        """
        event = cast(_Event | None, batch.waiter)
        if event is None:
            event = batch.waiter = self._new_event()
            batch.on_done(functools.partial(self.call_soon, event.set))
        held: BaseException | None = None
        try:
            await event.wait()
        except BaseException as exc:  # cancelled after queuing: the commit cannot be undone
            with anyio.CancelScope(shield=True):
                await event.wait()
            held = exc
        if batch.error is not None and held is not None:
            raise held
        batch.raise_error()
        return held


def _reraise(held: BaseException | None) -> None:
    if held is not None:
        raise held


async def _acquire(lock: threading.Lock) -> None:
    """Take an entry's lock without blocking the loop; cancelled, hold nothing."""
    if lock.acquire(blocking=False):
        return
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(lock.acquire)
    try:
        await anyio.lowlevel.checkpoint_if_cancelled()
    except BaseException:
        lock.release()
        raise


class AsyncStatus(Generic[S]):
    """``entry.status`` with awaitable writes."""

    def __init__(self, entry: Entry[S, Any], loop: _Loop, store: Store) -> None:
        self._storage: StatusStorage[S, Any] = entry.status
        self._loop = loop
        self._store = store

    def get(self) -> S:
        return self._storage.get()

    async def update(self, fn: Callable[[S], S]) -> S:
        """Apply ``fn`` now; the event reaches the disk with the next commit."""
        return await self._change(fn, sync=False)

    async def update_sync(self, fn: Callable[[S], S]) -> S:
        """Apply ``fn``; return once its event is durable."""
        return await self._change(fn, sync=True)

    async def delete(self) -> None:
        storage = self._storage
        await _acquire(storage._lock)
        storage._claim()
        try:
            write = storage._prepare_removal()
            if write is not None:
                held = await self._loop.wait(self._store._submit(write))
                storage._finish_removal(write)
                _reraise(held)
        finally:
            storage._let_go()

    async def _change(self, fn: Callable[[S], S], *, sync: bool) -> S:
        storage = self._storage
        if not storage._lock.acquire(False):
            await _acquire(storage._lock)
        storage._claim()  # a blocking write of it from this loop's thread must not wait
        try:
            change = storage._prepare_change(fn, sync=sync)
            held = None
            if change.write is not None:
                batch = self._store._submit(change.write)
                if sync:
                    held = await self._loop.wait(batch)
            elif storage._needs_barrier(change):
                held = await self._loop.wait(self._store._submit(None))
            result = storage._finish_change(change)
            _reraise(held)
            return result
        finally:
            storage._let_go()


class AsyncEntry(Generic[S, M]):
    """An entry of an async store: ``.id``, ``.metadata`` and an awaitable ``.status``."""

    def __init__(self, entry: Entry[S, M], loop: _Loop, store: Store) -> None:
        self.id = entry.id
        self._entry = entry
        self.status: AsyncStatus[S] = AsyncStatus(entry, loop, store)

    @property
    def metadata(self) -> M:
        return self._entry.metadata

    def __repr__(self) -> str:
        return f"<async {self._entry!r}>"


class AsyncEntries(Generic[S, M]):
    """``containers`` or ``sandboxes`` of an async store."""

    def __init__(self, entries: Entries[S, M], loop: _Loop, store: Store) -> None:
        self._entries = entries
        self._loop = loop
        self._store = store

    def _wrap(self, entry: Entry[S, M]) -> AsyncEntry[S, M]:
        return AsyncEntry(entry, self._loop, self._store)

    async def add(self, metadata: M, status: S) -> AsyncEntry[S, M]:
        entry, write = self._entries._prepare_add(metadata, status)
        try:
            held = await self._loop.wait(self._store._submit(write))
        except BaseException:
            self._entries._abort_add(entry)
            raise
        added = self._wrap(self._entries._finish_add(entry, write))
        _reraise(held)
        return added

    def get(self, id_or_prefix: str) -> AsyncEntry[S, M]:
        return self._wrap(self._entries.get(id_or_prefix))

    def list(self) -> builtins.list[AsyncEntry[S, M]]:
        return [self._wrap(entry) for entry in self._entries.list()]

    async def delete(self, id: str) -> None:
        """As ``Entries.delete``: an exact id only; silent if there is none."""
        entry = self._entries._to_delete(id)
        if entry is not None:
            await self._wrap(entry).status.delete()


class AsyncStore:
    """A store for asyncio and trio programs; see ``open_async``. Its public names are
    read-only, as ``Store``'s are."""

    __setattr__ = refuse_public_names
    sync: Store
    """The underlying store, for reads such as ``history``."""
    containers: AsyncEntries[ContainerStatus, ContainerMetadata]
    sandboxes: AsyncEntries[SandboxStatus, SandboxMetadata]

    def __init__(self, store: Store) -> None:
        loop = self._loop = _Loop()
        set_name(self, "sync", store)
        set_name(self, "containers", AsyncEntries(store.containers, loop, store))
        set_name(self, "sandboxes", AsyncEntries(store.sandboxes, loop, store))

    @property
    def load_report(self) -> LoadReport:
        return self.sync.load_report

    async def flush(self) -> None:
        """Make every earlier ``update`` durable."""
        store = self.sync
        store._check_writable()
        _reraise(await self._loop.wait(store._submit(None)))
        store._writer.raise_async_error()

    def subscribe(self, since: int = 0) -> Subscription:
        """Every event with ``position > since``: stored ones first, then new ones as they land."""
        return Subscription(self.sync, self._loop, inputs.since(since))


class Subscription:
    """An async iterator over the log. Between items it holds nothing but its position
    and the rest of the page it read, so leaving the loop releases it at once."""

    def __init__(self, store: Store, loop: _Loop, since: int) -> None:
        self._store = store
        self._loop = loop
        self._position = since
        self._page: list[Event] = []
        self._closed = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        """The next event; ``StoreClosedError`` (saying the position reached, to resume from
        after reopening) once the store is closed and what was read before is used up."""
        while not self._page:
            if self._closed:
                raise StopAsyncIteration
            self._check_store_open()
            page, reached = await anyio.to_thread.run_sync(self._read)
            if page:
                self._page = page
            elif reached > self._position:
                self._position = reached  # only damaged records there: step past them
            else:
                await self._wait_for_more()
        event = self._page.pop(0)
        self._position = event.position
        return event

    async def aclose(self) -> None:
        self._closed = True
        self._page = []

    def _check_store_open(self) -> None:
        if self._store.closed:
            raise StoreClosedError(
                f"{self._store.path}: store is closed (this feed had reached position "
                f"{self._position})"
            )

    def _read(self) -> tuple[list[Event], int]:
        store = self._store
        try:
            return audit.read_page(store._log, store._names, self._position)
        except StoreClosedError:  # closed while the page was being asked for
            self._check_store_open()
            raise

    async def _wait_for_more(self) -> None:
        """Sleep until the log moves past our position (polling a read-only store)."""
        committer = self._store._committer
        if committer is None:
            await anyio.sleep(POLL_SECONDS)
            return
        moved = anyio.Event()
        call_soon = self._loop.call_soon

        def listener(position: int) -> None:
            call_soon(moved.set)

        committer.add_listener(listener)
        try:  # a close sets ``closed`` before it calls the listeners one last time
            if committer.last_position <= self._position and not self._store.closed:
                await moved.wait()
        finally:
            committer.remove_listener(listener)


@asynccontextmanager
async def open_async(
    path: str | os.PathLike[str], *, readonly: bool = False, probe: bool = True,
    mode: int = 0o600, **tuning: Unpack[Tuning],
) -> AsyncIterator[AsyncStore]:
    """Open a store (as ``evstore.open`` does, with the same keywords) for use from asyncio
    or trio."""
    opener = functools.partial(
        open_store, path, readonly=readonly, probe=probe, mode=mode, **tuning
    )
    store = await anyio.to_thread.run_sync(opener)
    try:
        yield AsyncStore(store)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(store.close)


__all__ = ["AsyncEntries", "AsyncEntry", "AsyncStatus", "AsyncStore", "Subscription", "open_async"]
