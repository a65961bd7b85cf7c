"""What bounds the concurrent figures of `evstore bench`: three floors, measured here.

    python benchmarks/floors.py [--seconds S | --quick]

1. asyncio: 1,000 tasks that each append an item to a shared list and await one
   ``asyncio.Event`` per batch, which a thread sets after a 0.5 ms sleep (an fsync): the
   event loop's own cost per update, with no store work at all.
2. the in-memory part of ``status.update`` (copy, update fn, diff, event encoding), with
   the writer's queue replaced by nothing: Python CPU per update, on 64 and 1,000
   containers.
3. one writer: raw LMDB, one synced commit per update putting one log record (the index
   is written in bulk, see ``evstore._storage.index``), against the baseline (containerd's temp
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
The free writer and the hand-off are also measured by ``evstore bench`` itself, beside
each throughput in the same run (``evstore._bench.floors`` holds all of them).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from evstore._bench.async_tasks import evstore_async_rate
from evstore._bench.config import BenchConfig
from evstore._bench.floors import (
    TASKS,
    asyncio_floor,
    free_writer,
    lmdb_commits,
    thread_handoff,
    update_cpu,
)
from evstore._bench.throughput import baseline_rate, evstore_rate
from evstore._bench.workload import default_parent


def free_rates(cfg: BenchConfig, work: Path) -> tuple[float, float, float]:
    """updates/s of `update` (1 writer), 1,000 async tasks and 64 threads, writing nothing."""
    with free_writer():
        return (
            evstore_rate(cfg, work / "free-update", 1, sync=False),
            evstore_async_rate(cfg, work / "free-async", TASKS),
            evstore_rate(cfg, work / "free-threads", 64, sync=True),
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
    cfg = BenchConfig(seconds=args.seconds, repeats=1)
    handoff = thread_handoff(n // 2) * 1e6  # first, while no thread of ours keeps a core awake
    with tempfile.TemporaryDirectory(dir=default_parent()) as tmp:
        work = Path(tmp)
        rate, loop_us = asyncio.run(asyncio_floor(args.seconds))
        print(f"asyncio floor, {TASKS:,} tasks, one Event per batch: {rate:,.0f} updates/s, "
              f"{loop_us:.1f} us of event-loop CPU per update")
        for containers in (64, 1_000):
            print(f"in-memory part of status.update, {containers:,} containers: "
                  f"{update_cpu(work, containers, rounds, n):.2f} us of CPU per update")
        raw = lmdb_commits(work, args.seconds)
        base = baseline_rate(cfg, work / "baseline", 1)
        print(f"one writer: raw LMDB {raw:,.0f} synced commits/s, baseline {base:,.0f}/s: "
              f"{raw / base:.2f}x at best")
        update, tasks, threads = free_rates(cfg, work)
        base64 = baseline_rate(cfg, work / "baseline64", 64)
        print(f"free writer (commits write nothing): update {update:,.0f}/s = "
              f"{update / base:.1f}x, {TASKS:,} async tasks {tasks:,.0f}/s = {tasks / base:.1f}x"
              f" (of the one-writer baseline), 64 threads {threads:,.0f}/s = "
              f"{threads / base64:.1f}x (of the 64-writer baseline, {base64:,.0f}/s)")
        print(f"thread hand-off (two threads waking each other): {handoff:.1f} us; 10x of the "
              f"64-writer baseline leaves {1e6 / (10 * base64):.1f} us per update for everything")


if __name__ == "__main__":
    main()
