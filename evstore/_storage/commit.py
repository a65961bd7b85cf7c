"""Group commit: one writer thread turns everything queued into one synced LMDB commit.

Callers queue a ``Write`` and, for durable calls, wait on the batch it joined; a batch
is one transaction and one fsync however many callers share it. ``update`` writes that
fail (disk full) are kept and retried ahead of the next batch, so order is never broken
and nothing acknowledged to memory is dropped while the process lives.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from evstore._core.codec import Pair, encode_payload, event_records, pack_u64, seal, snapshot_key
from evstore._core.errors import DiskFullError, EvstoreError, StoreClosedError, WriteError
from evstore._storage.index import put_indexed
from evstore._storage.log import Log
from evstore._storage.snapshots import Plan, SnapshotPolicy, Write, snapshot_record

Listener = Callable[[int], None]
_index_key = operator.itemgetter(0)  # keys are unique: sorting on them alone is half the work


def _quietly(callback: Callable[[], object]) -> None:
    """Run a waiter's callback; one whose event loop has ended must not stop the writer."""
    with contextlib.suppress(Exception):  # the waiter is gone; nothing is left to tell
        callback()


class Batch:
    """Writes that share one commit, and how that commit ended.

    Deliberately light (a list, a flag, one lock): a lone writer makes one per update.
    """

    __slots__ = ("_callbacks", "_lock", "error", "finished", "items", "waiter")

    def __init__(self) -> None:
        self.items: list[Write] = []
        self.finished = False
        self.error: EvstoreError | None = None
        self.waiter: object = None  # what an event loop's tasks wait on (see ``aio``)
        self._callbacks: list[Callable[[], object]] = []
        self._lock = threading.Lock()

    def on_done(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` (from the committing thread, maybe inside its gate: it must
        not write) once the commit has ended."""
        with self._lock:
            if not self.finished:
                self._callbacks.append(callback)
                return
        callback()

    def finish(self, error: EvstoreError | None) -> None:
        with self._lock:
            self.error = error
            self.finished = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _quietly(callback)

    def raise_error(self) -> None:
        """Raise a fresh copy of the commit's error, if it failed."""
        if self.error is not None:
            raise type(self.error)(*self.error.args)

    def wait(self) -> None:
        """Block until committed; raise a fresh copy of the commit's error if it failed.

        Each waiting thread sleeps on a lock of its own, released when the commit ends.
        """
        if not self.finished:
            latch = threading.Lock()
            latch.acquire()
            self.on_done(latch.release)
            latch.acquire()
        self.raise_error()


class Committer:
    """The single writer of a store (LMDB write transactions belong to one thread)."""

    def __init__(
        self, log: Log, policy: SnapshotPolicy, last_pos: int, *,
        max_batch: int, max_pending: int, index_every: int, unindexed: list[Pair],
    ) -> None:
        self._log = log
        self._policy = policy
        self._last_pos = last_pos
        self._index_every = index_every
        self._unindexed = unindexed  # index records of committed events, put in bulk
        self._mark = log.first_format  # its first commit says how far the old index reaches
        self._max_batch = max_batch
        self._max_pending = max_pending
        # Held by whoever commits while it puts records: py-lmdb lets go of the GIL around
        # every put, and a busy caller thread would then keep it for a whole switch interval
        # (5 ms) each time. Callers pass through the gate before queueing, so while a batch
        # is being put they wait on it (GIL released) instead of competing.
        self._gate = threading.Lock()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self._queue: deque[Batch] = deque()
        self._pending = 0
        self._tickets = self._served = 0  # callers that waited for room, and those let in
        self._retry: list[Write] = []
        self._async_error: EvstoreError | None = None
        self._closing = False
        self._abandoned = False
        self._idle = False  # the writer thread sleeps and must be woken
        self._busy = False  # someone (a leader or the writer thread) is committing
        self._listeners: list[Listener] = []
        self._told_later: Batch | None = None  # committed, its callers not yet woken
        self.commits = 0
        self.events = 0
        # (seconds, events) of recent commits, kept only when asked (``record_commits``)
        self.commit_samples: deque[tuple[float, int]] | None = None
        self._thread = threading.Thread(target=self._run, name="evstore-writer", daemon=True)
        self._thread.start()

    @property
    def last_position(self) -> int:
        return self._last_pos

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(last_position)`` after each commit (from the writer thread), and
        once more when the committer stops. It must not write: it may run inside the gate."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    def record_commits(self, limit: int = 100_000) -> deque[tuple[float, int]]:
        """From now on keep the duration (put to fsync) and event count of the last
        ``limit`` commits: what a benchmark reads beside its callers' latency. Off by
        default; on, it costs a commit two clock reads and an append."""
        self.commit_samples = deque(maxlen=limit)
        return self.commit_samples

    def submit(self, item: Write | None) -> Batch:
        """Queue a write (None: a barrier) for the writer thread; return its batch at once."""
        if self._gate.locked():  # rarely: spare the common case an acquire and a release
            with self._gate:
                pass
        with self._lock:
            batch = self._join(item)
            if self._idle:  # once: until the writer gets the GIL, a busy loop submits on
                self._idle = False
                self._cond.notify()
            return batch

    def commit(self, item: Write | None) -> None:
        """Queue a write (None: nothing, as a barrier) and return once it is durable.

        A caller that finds nobody committing commits the queue itself, up to its own
        batch, so a lone writer pays no thread hand-off; others wait for that leader or
        for the writer thread, and all of them share one fsync.
        """
        with self._gate:
            pass
        with self._cond:
            batch = self._join(item)
            lead = not self._busy
            self._busy = True
        if lead:
            self._lead(batch)
        batch.wait()

    def flush(self) -> None:
        """Wait until everything queued before is durable; raise if some of it cannot be."""
        self.commit(None)
        self.raise_async_error()

    def raise_async_error(self) -> None:
        """Raise the error that keeps queued ``update`` events off the disk, if any."""
        with self._cond:
            error = self._async_error
        if error is not None:
            raise type(error)(*error.args)

    def _join(self, item: Write | None) -> Batch:
        if self._closing:
            raise StoreClosedError("store is closed")
        if item is None:
            self._queue.append(Batch())  # a barrier: behind everything queued so far
            return self._queue[-1]
        if self._pending >= self._max_pending or self._served != self._tickets:
            self._wait_for_room()  # backpressure: a flood waits instead of piling up
        if not self._queue or len(self._queue[-1].items) >= self._max_batch:
            self._queue.append(Batch())
        batch = self._queue[-1]
        batch.items.append(item)
        self._pending += 1
        return batch

    def _wait_for_room(self) -> None:
        """Wait for room in the queue in arrival order. A caller woken for room must not
        find it taken by a newcomer that got the lock first: a flood of ``update`` calls
        kept a durable caller out for several commits so (and in principle for ever)."""
        ticket = self._tickets
        self._tickets += 1
        while self._pending >= self._max_pending or ticket != self._served:
            self._space.wait()
            if self._closing:
                raise StoreClosedError("store is closed")
        self._served += 1
        self._space.notify_all()  # the next in line may fit too

    def _take(self) -> Batch:
        batch = self._queue.popleft()
        if self._pending >= self._max_pending:  # only then can a writer be waiting for space
            self._space.notify_all()
        self._pending -= len(batch.items)
        return batch

    def _lead(self, mine: Batch) -> None:
        while True:
            with self._cond:
                if mine.finished or not self._queue:
                    self._busy = False
                    if self._queue or self._closing:
                        # the writer thread takes the rest; a closing one, waiting for
                        # us to finish, must wake to stop (else ``close`` joins forever)
                        self._cond.notify()
                    return
                batch = self._take()
            self._commit(batch)

    def close(self) -> None:
        """Commit what is queued, snapshot every dirty entry, and stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            self._space.notify_all()
        self._thread.join()
        self._call_listeners()  # nothing more will come: followers must not wait for it
        if self._retry and self._async_error is not None:
            error = self._async_error
            raise type(error)(f"{len(self._retry)} updates were never written: {error}")

    def abandon(self) -> None:
        """Stop as a crash would: drop what is queued, write no final snapshots."""
        with self._cond:
            self._closing = self._abandoned = True
            for batch in self._queue:
                batch.finish(StoreClosedError("store was abandoned"))
            self._queue.clear()
            self._retry = []
            self._cond.notify_all()
            self._space.notify_all()
        self._thread.join()
        self._call_listeners()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._busy or not (self._queue or self._closing):
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                if not self._queue:
                    break
                self._busy = True
                batch: Batch | None = self._take()
            while batch is not None:  # one batch after another while callers keep queueing
                self._commit(batch, defer=True)
                with self._cond:
                    batch = self._take() if self._queue else None
            self._tell()  # still busy: no leader can be committing (and telling) meanwhile
            with self._cond:
                self._busy = False
        if not self._retry and not self._abandoned:
            self._write_plan([], self._policy.plan_all(self._last_pos))

    def _commit(self, batch: Batch, *, defer: bool = False) -> None:
        """Commit one batch. With ``defer``, its callers are told once the next batch's
        records are put (see ``_tell``), or by the caller of this method."""
        items = self._retry + batch.items if self._retry else batch.items
        if not items:
            self._tell()
            batch.finish(None)
            return
        first = self._last_pos + 1
        plan = self._policy.plan(items, first)
        samples = self.commit_samples
        started = time.perf_counter() if samples is not None else 0.0
        error = self._write_plan(items, plan)
        if samples is not None:
            samples.append((time.perf_counter() - started, len(items)))
        self._tell()  # had the write failed before its records were put
        if error is not None:
            self._retry = [item for item in items if not item.sync]
            self._async_error = error if self._retry else None
            batch.finish(error)
            return
        self._retry, self._async_error = [], None
        self._last_pos = first + len(items) - 1
        self._policy.applied(plan)
        self.commits += 1
        self.events += len(items)
        self._told_later = batch
        if not defer:
            self._tell()

    def _tell(self) -> None:
        """Wake the callers of the last durable batch, and the listeners.

        The writer does this after putting the next batch's records and before syncing
        them: the woken callers then run while the disk syncs, instead of competing for
        the GIL with the puts (py-lmdb lets go of it around every put, and each time a
        woken thread took it the writer waited for a thread switch).
        """
        batch, self._told_later = self._told_later, None
        if batch is None:
            return
        batch.finish(None)
        self._call_listeners()

    def _call_listeners(self) -> None:
        for listener in list(self._listeners):
            _quietly(functools.partial(listener, self._last_pos))

    def _write_plan(self, items: list[Write], plan: Plan) -> EvstoreError | None:
        """One synced commit of ``items`` and ``plan``. Index records wait in memory until
        ``index_every`` of them (or a close) make them worth a commit's pages; on a full
        disk they wait longer, so that the events, which cannot wait, still go in."""
        first = self._last_pos + 1
        records, index, fresh = event_records(first, items)
        mark = first - 1 if self._mark else None
        due = len(self._unindexed) + len(index) >= self._index_every or self._closing
        error = None
        if due:
            bulk = self._unindexed + index
            bulk.sort(key=_index_key)  # in key order LMDB fills each page once, not hopping
            error = self._try(records, plan, (bulk, first + len(items) - 1))
            if error is None:
                self._unindexed = []
                return None
        if error is None or isinstance(error, DiskFullError):
            error = self._try(records, plan, (fresh, mark))
            if error is None:
                self._unindexed.extend(index)
        return error

    def _try(
        self, records: list[Pair], plan: Plan, index: tuple[list[Pair], int | None]
    ) -> EvstoreError | None:
        try:
            self._log.write(lambda txn: self._put(txn, records, plan, index))
        except EvstoreError as exc:
            return exc
        except Exception as exc:  # a bug must fail the callers, not kill the writer
            return WriteError(f"commit failed: {exc!r}")
        self._mark = False
        return None

    def _put(
        self, txn: Any, records: list[Pair], plan: Plan, index: tuple[list[Pair], int | None]
    ) -> None:
        """``index``: the index records to put, and how far the index then reaches."""
        dbs = self._log.dbs
        bulk, indexed = index
        snapshots = [
            (key := snapshot_key(eno), seal(key, encode_payload(snapshot_record(write, pos))))
            for eno, (write, pos) in plan.snapshots.items()
        ]
        with self._gate:
            # one call per database: no Python round trip per record
            if records:
                txn.cursor(db=dbs[b"events"]).putmulti(records, append=True)
            if bulk:
                txn.cursor(db=dbs[b"index"]).putmulti(bulk)
            if snapshots:
                txn.cursor(db=dbs[b"snapshots"]).putmulti(snapshots)
            # every put lets go of the GIL: outside the gate, each would wait for it
            # behind the callers (a busy event loop keeps it a whole switch interval)
            if indexed is not None:
                put_indexed(txn, dbs, indexed)
            if plan.checkpoint != self._policy.checkpoint:  # unchanged: spare a page write
                txn.put(b"checkpoint", pack_u64(plan.checkpoint), db=dbs[b"meta"])
            self._tell()
