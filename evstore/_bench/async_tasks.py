"""The async rows: ``await update_sync`` from many asyncio tasks through the anyio front."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from evstore import ContainerMetadata, ContainerStatus
from evstore._bench.config import BenchConfig, Steps
from evstore._bench.latency import run_figures
from evstore._bench.result import Measure
from evstore._bench.throughput import Run, against_one_writer
from evstore._bench.workload import add_running, bump_pid, partition, scratch

if TYPE_CHECKING:
    from evstore._store.aio import AsyncEntry


def evstore_async_rate(cfg: BenchConfig, path: Path, tasks: int) -> float:
    return evstore_async_run(cfg, path, tasks)[0]


def evstore_async_run(cfg: BenchConfig, path: Path, tasks: int) -> Run:
    """update_sync/s of ``tasks`` asyncio tasks through the anyio front, each on its own
    containers (round-robin, like the writer threads), with latencies and commits."""
    import anyio  # the async front is loaded only when measured, as in ``evstore``

    with scratch(path):
        return anyio.run(
            _async_rate, path / "store", max(cfg.pool, tasks), tasks, cfg.seconds,
            backend="asyncio",
        )


async def _async_rate(path: Path, containers: int, tasks: int, seconds: float) -> Run:
    import anyio

    from evstore._store.aio import open_async

    async with open_async(path) as store:
        added = await anyio.to_thread.run_sync(add_running, store.sync, containers)
        entries = [store.containers.get(entry.id) for entry in added]
        counts = [0] * tasks
        times: list[list[float]] = [[] for _ in range(tasks)]
        commits = store.sync._writer.record_commits()
        t0 = time.perf_counter()
        async with anyio.create_task_group() as group:
            for i, mine in enumerate(partition(entries, tasks)):
                group.start_soon(_async_loop, mine, t0 + seconds, counts, times, i)
        rate = sum(counts) / (time.perf_counter() - t0)
        return rate, run_figures([t for mine in times for t in mine], commits)


async def _async_loop(
    mine: list[AsyncEntry[ContainerStatus, ContainerMetadata]], deadline: float,
    counts: list[int], times: list[list[float]], i: int,
) -> None:
    n = 0
    k = len(mine)
    clock = time.perf_counter
    record = times[i].append
    started = clock()
    while started < deadline:
        await mine[n % k].status.update_sync(bump_pid)
        now = clock()
        record(now - started)
        started = now
        n += 1
    counts[i] = n


def measure_async(
    cfg: BenchConfig, work: Path, tasks: int, sync_one: Measure, step: Steps
) -> Measure:
    """``await update_sync`` from ``tasks`` asyncio tasks, against the 1-writer baseline."""
    label = f"{tasks:,} async task" + ("s" if tasks > 1 else "")
    return against_one_writer(
        cfg, f"update_sync_async_{tasks}", f"update_sync/s, {label}",
        lambda: evstore_async_run(cfg, work / "evstore-async", tasks), sync_one, step,
        {"tasks": tasks, "containers": max(cfg.pool, tasks), "backend": "asyncio (anyio)"},
        floor=lambda: evstore_async_run(cfg, work / "free-async", tasks),
    )
