"""Floors: what the store's figures would be if its own work cost nothing.

- a free writer: the harness's own runs with every commit ending at once, writing nothing
  (no LMDB, no fsync). What is left is the callers' Python: the update in memory, the
  queue, the wake-ups. A throughput over this floor says how much of the limit the store
  reaches; ``evstore bench`` measures it beside each throughput, in the same run.
- a thread hand-off: two threads waking each other in turn through locks. A thread doing
  ``update_sync`` sleeps while its commit syncs and is woken after it, so every update of a
  thread that does not commit itself pays at least one. On a virtual machine most of it
  can be waking an idle core.
- for ``benchmarks/floors.py``: asyncio's own wake-up cost with no store work, the CPU of
  the in-memory part of ``status.update``, and raw LMDB synced commits against the
  baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evstore
from evstore._bench.workload import add_running, bump_pid
from evstore._storage.commit import Batch, Committer
from evstore._storage.rawcommits import lmdb_commits as lmdb_commits  # its floor row

TASKS = 1_000


@contextlib.contextmanager
def free_writer() -> Iterator[None]:
    """Every commit of every store opened meanwhile ends at once, writing nothing."""
    real = Committer._commit

    def commit_nothing(self: Committer, batch: Batch, *, defer: bool = False) -> None:
        batch.finish(None)

    Committer._commit = commit_nothing  # type: ignore[method-assign]
    try:
        yield
    finally:
        Committer._commit = real  # type: ignore[method-assign]


def thread_handoff(n: int) -> float:
    """Seconds per hand-off between two threads that wake each other in turn (lock
    ping-pong), over ``n`` round trips."""
    mine, theirs = threading.Lock(), threading.Lock()
    mine.acquire()
    theirs.acquire()

    def other() -> None:
        for _ in range(n):
            mine.acquire()
            theirs.release()

    thread = threading.Thread(target=other)
    thread.start()
    t0 = time.perf_counter()
    for _ in range(n):
        mine.release()
        theirs.acquire()
    elapsed = time.perf_counter() - t0
    thread.join()
    return elapsed / (2 * n)


# --- the script's extra floors ----------------------------------------------------------------


class _Handoff:
    """A writer thread that takes whatever was queued, 'syncs', and wakes the batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sync_seconds: float) -> None:
        self.loop = loop
        self.cond = threading.Condition()
        self.queue: list[int] = []
        self.event: asyncio.Event | None = None
        self.sync_seconds = sync_seconds
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, item: int) -> asyncio.Event:
        with self.cond:
            self.queue.append(item)
            if self.event is None:
                self.event = asyncio.Event()
            self.cond.notify()
            return self.event

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                self.queue = []
                event, self.event = self.event, None
            time.sleep(self.sync_seconds)
            assert event is not None
            self.loop.call_soon_threadsafe(event.set)


async def asyncio_floor(seconds: float) -> tuple[float, float]:
    """1,000 tasks appending to a list and awaiting one Event per batch, set by a thread
    after a 0.5 ms sleep: updates/s, and µs of event-loop CPU per update."""
    handoff = _Handoff(asyncio.get_running_loop(), 0.0005)
    counts = [0] * TASKS

    async def task(i: int, deadline: float) -> None:
        n = 0
        while time.perf_counter() < deadline:
            await handoff.submit(n).wait()
            n += 1
        counts[i] = n

    t0, cpu0 = time.perf_counter(), time.thread_time()
    await asyncio.gather(*(task(i, t0 + seconds) for i in range(TASKS)))
    done = sum(counts)
    return done / (time.perf_counter() - t0), (time.thread_time() - cpu0) / done * 1e6


def update_cpu(work: Path, containers: int, rounds: int = 7, n: int = 50_000) -> float:
    """Least thread CPU per ``status.update`` over ``rounds``, the queue a no-op (µs)."""
    with evstore.open(work / f"update-{containers}") as store:
        entries = add_running(store, containers)
        committer: Any = store._writer
        sink = Batch()
        real = committer.submit
        committer.submit = lambda write: sink
        best = float("inf")
        try:
            for _ in range(rounds):
                t0 = time.thread_time()
                for i in range(n):
                    entries[i % containers].status.update(bump_pid)
                best = min(best, (time.thread_time() - t0) / n * 1e6)
                sink.items.clear()
        finally:
            committer.submit = real
    return best
