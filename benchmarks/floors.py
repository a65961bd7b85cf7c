"""What bounds the concurrent figures of `evstore bench`: three floors, measured here.

    python benchmarks/floors.py [--seconds S | --quick]

1. asyncio: 1,000 tasks that each append an item to a shared list and await one
   ``asyncio.Event`` per batch, which a thread sets after a 0.5 ms sleep (an fsync): the
   event loop's own cost per update, with no store work at all.
2. the in-memory part of ``status.update`` (copy, update fn, diff, event encoding), with
   the writer's queue replaced by nothing: Python CPU per update, on 64 and 1,000
   containers.
3. one writer: raw LMDB, one synced commit per update putting one log record (the index
   is written in bulk, see ``evstore.index``), against the baseline (containerd's temp
   file, fsync, rename) in the same run: the best ratio a store that syncs one LMDB commit
   per update can reach.
4. a free writer: the harness's own `update`, 1,000-task and 64-thread measures with the
   writer's commit replaced by nothing that wakes its callers at once (no LMDB at all):
   the most any faster writer (another thread design, a writer process) could give.
5. a thread hand-off: two threads waking each other in turn through locks, measured first,
   while the process is otherwise quiet. A thread doing ``update_sync`` sleeps while its
   commit syncs and is woken after it: at least one hand-off per update, which is what the
   64-thread measure is made of. On a virtual machine most of a hand-off's cost can be
   waking an idle core: with the other core kept busy it can cost a tenth as much.

Each is a floor for the matching measure in the harness; the harness's ratio targets need
the sum of the floors (and the writer's share) to fit under the baseline's time per update.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb

import evstore
from evstore.bench import runner
from evstore.commit import Batch, Committer

TASKS = 1_000


class _Handoff:
    """A writer thread that takes whatever was queued, 'syncs', and wakes the batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sync_seconds: float) -> None:
        self.loop = loop
        self.cond = threading.Condition()
        self.queue: list[int] = []
        self.event: asyncio.Event | None = None
        self.sync_seconds = sync_seconds
        self.batches = 0
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
            self.batches += 1
            assert event is not None
            self.loop.call_soon_threadsafe(event.set)


async def _asyncio_floor(seconds: float) -> tuple[float, float]:
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
        entries = runner._add_running(store, containers)
        committer: Any = store.committer
        sink = Batch()
        real = committer.submit
        committer.submit = lambda write: sink
        best = float("inf")
        try:
            for _ in range(rounds):
                t0 = time.thread_time()
                for i in range(n):
                    entries[i % containers].status.update(runner.bump_pid)
                best = min(best, (time.thread_time() - t0) / n * 1e6)
                sink.items.clear()
        finally:
            committer.submit = real
    return best


def lmdb_commits(work: Path, seconds: float) -> float:
    """Synced LMDB commits/s, each putting one log record."""
    env = lmdb.open(str(work / "lmdb"), map_size=1 << 30, max_dbs=2, sync=True, metasync=True)
    try:
        events = env.open_db(b"events")
        payload = b"\x95\x01\x01\x03\x81\xa3pid\xcd\x03\xe9\xc0" + bytes(8)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += 1
            txn = env.begin(write=True)
            txn.put(n.to_bytes(16, "big"), payload, db=events, append=True)
            txn.commit()
        return n / (time.perf_counter() - t0)
    finally:
        env.close()


def thread_handoff(n: int) -> float:
    """µs per hand-off between two threads that wake each other in turn (lock ping-pong)."""
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
    return elapsed / (2 * n) * 1e6


@contextlib.contextmanager
def _free_writer() -> Iterator[None]:
    """Every commit ends at once, writing nothing."""
    real = Committer._commit

    def commit_nothing(self: Committer, batch: Batch, *, defer: bool = False) -> None:
        batch.finish(None)

    Committer._commit = commit_nothing  # type: ignore[method-assign]
    try:
        yield
    finally:
        Committer._commit = real  # type: ignore[method-assign]


def free_writer(cfg: runner.BenchConfig, work: Path) -> tuple[float, float, float]:
    """updates/s of `update` (1 writer), 1,000 async tasks and 64 threads, writing nothing."""
    with _free_writer():
        return (
            runner.evstore_rate(cfg, work / "free-update", 1, sync=False),
            runner.evstore_async_rate(cfg, work / "free-async", TASKS),
            runner.evstore_rate(cfg, work / "free-threads", 64, sync=True),
        )


def positive_seconds(text: str) -> float:
    """The length of a timed run (an argparse ``type``: its ValueError is reported)."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError(text)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=positive_seconds, default=3.0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 0.3 s, few rounds")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 0.3
    rounds, n = (1, 2_000) if args.quick else (7, 50_000)
    cfg = runner.BenchConfig(seconds=args.seconds, repeats=1)
    handoff = thread_handoff(n // 2)  # first, while no thread of ours keeps a core awake
    with tempfile.TemporaryDirectory(dir=runner.default_parent()) as tmp:
        work = Path(tmp)
        rate, loop_us = asyncio.run(_asyncio_floor(args.seconds))
        print(f"asyncio floor, {TASKS:,} tasks, one Event per batch: {rate:,.0f} updates/s, "
              f"{loop_us:.1f} us of event-loop CPU per update")
        for containers in (64, 1_000):
            print(f"in-memory part of status.update, {containers:,} containers: "
                  f"{update_cpu(work, containers, rounds, n):.2f} us of CPU per update")
        raw = lmdb_commits(work, args.seconds)
        base = runner.baseline_rate(cfg, work / "baseline", 1)
        print(f"one writer: raw LMDB {raw:,.0f} synced commits/s, baseline {base:,.0f}/s: "
              f"{raw / base:.2f}x at best")
        update, tasks, threads = free_writer(cfg, work)
        base64 = runner.baseline_rate(cfg, work / "baseline64", 64)
        print(f"free writer (commits write nothing): update {update:,.0f}/s = "
              f"{update / base:.1f}x, {TASKS:,} async tasks {tasks:,.0f}/s = {tasks / base:.1f}x"
              f" (of the one-writer baseline), 64 threads {threads:,.0f}/s = "
              f"{threads / base64:.1f}x (of the 64-writer baseline, {base64:,.0f}/s)")
        print(f"thread hand-off (two threads waking each other): {handoff:.1f} us; 10x of the "
              f"64-writer baseline leaves {1e6 / (10 * base64):.1f} us per update for everything")


if __name__ == "__main__":
    main()
