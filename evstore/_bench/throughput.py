"""The throughput rows: update_sync with writer threads, update with a flush, status.get
under load, each against the file checkpoint, with their floors beside them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import evstore
from evstore._bench.baseline import FileCheckpoint
from evstore._bench.config import BenchConfig, Steps
from evstore._bench.floors import free_writer, thread_handoff
from evstore._bench.latency import median_of_runs, run_figures
from evstore._bench.result import Measure, make_measure
from evstore._bench.workload import (
    add_running,
    baseline_ops,
    container_id,
    created_status,
    evstore_ops,
    loop_counts,
    scratch,
    start,
    throughput,
    timed_throughput,
)

Run = tuple[float, dict[str, Any]]  # a rate, and that run's latency and commit figures


def evstore_rate(cfg: BenchConfig, path: Path, writers: int, sync: bool) -> float:
    """update_sync/s (``update``/s and a flush, without ``sync``) of ``writers`` threads."""
    with scratch(path), evstore.open(path / "store") as store:
        entries = add_running(store, max(cfg.pool, writers))
        ops = evstore_ops(entries, writers, sync)
        return throughput(ops, cfg.seconds, None if sync else store.flush)


def evstore_sync_run(cfg: BenchConfig, path: Path, writers: int) -> Run:
    """``evstore_rate`` of update_sync, with each update's latency and each commit's
    duration and size."""
    with scratch(path), evstore.open(path / "store") as store:
        entries = add_running(store, max(cfg.pool, writers))
        commits = store._writer.record_commits()
        rate, times = timed_throughput(evstore_ops(entries, writers, True), cfg.seconds)
        return rate, run_figures(times, commits)


def baseline_rate(cfg: BenchConfig, path: Path, writers: int) -> float:
    return baseline_run(cfg, path, writers)[0]


def baseline_run(cfg: BenchConfig, path: Path, writers: int) -> Run:
    """The file checkpoint's update_sync/s with ``writers`` threads, and each's latency."""
    with scratch(path):
        cp = FileCheckpoint(path / "containers")
        ids = [container_id(i) for i in range(max(cfg.pool, writers))]
        for i, cid in enumerate(ids):
            cp.add(cid, start(created_status(i)))
        rate, times = timed_throughput(baseline_ops(cp, ids, writers), cfg.seconds)
        return rate, run_figures(times, None)


@dataclass
class GetRates:
    idle: float  # status.get/s on one entry, nothing else running
    loaded: float  # the same while the writers run
    writes: float  # the writers' update_sync/s meanwhile


def get_rates(cfg: BenchConfig, path: Path) -> GetRates:
    """``status.get()`` on one entry, idle, then while ``cfg.get_writers`` threads
    update_sync the other containers of the same store."""
    with scratch(path), evstore.open(path / "store") as store:
        read, *others = add_running(store, max(cfg.pool, cfg.get_writers) + 1)

        def get(n: int) -> object:
            return read.status.get()

        idle = throughput([get], cfg.seconds)
        writers = evstore_ops(others, cfg.get_writers, sync=True)
        counts, t0 = loop_counts([get, *writers], cfg.seconds)
        elapsed = time.perf_counter() - t0
        return GetRates(idle, counts[0] / elapsed, sum(counts[1:]) / elapsed)


# --- the measures -----------------------------------------------------------------------------


HANDOFF_TRIPS = 5_000  # round trips per thread hand-off sample (10,000 hand-offs)


def measure_handoff(cfg: BenchConfig, step: Steps) -> list[float]:
    """``repeats`` samples of one thread hand-off (seconds), taken first, while no thread
    of ours keeps a core awake."""
    samples = []
    for _ in range(cfg.repeats if cfg.floors else 0):
        samples.append(thread_handoff(HANDOFF_TRIPS))
        step("floor: thread hand-off")
    return samples


def with_floors(
    measure: Measure, free: Sequence[float], handoff: Sequence[float] = ()
) -> Measure:
    """Put each floor (its samples, median rate, and the measure's fraction of it) in
    ``detail["floors"]``, the one its target reads first: the thread hand-off where callers
    sleep on a commit another thread makes, else the free writer."""
    floors = []
    if handoff:
        rates = [1 / s for s in handoff]
        floors.append(_floor("thread hand-off", rates, measure.evstore,
                             "one hand-off per update: 1 / the median hand-off time"))
    if free:
        floors.append(_floor("free writer", list(free), measure.evstore,
                             "the same runs with commits that write nothing"))
    if floors:
        measure.detail["floors"] = floors
    return measure


def _floor(kind: str, rates: list[float], rate: float, what: str) -> dict[str, Any]:
    floor = statistics.median(rates)
    fraction = rate / floor if floor else float("nan")  # a floor run that did nothing
    return {"kind": kind, "rate": floor, "samples": rates, "fraction": fraction, "what": what}


def free_run(sample: Callable[[], Run]) -> Run:
    """``sample`` run with the free writer (see ``floors.free_writer``)."""
    with free_writer():
        return sample()


def free_latency(measure: Measure, free: Sequence[Run]) -> Measure:
    """Keep the free-writer runs' latencies beside the measure's own: what a caller waits
    with commits that cost nothing (its own Python, the queue, the wake-ups, the other
    callers). Where that bounds the measure's p99 from below is ``latency.free_p99``'s
    to say: not for many threads."""
    figures = [f for _, f in free if f.get("latency")]
    if figures:
        measure.detail["free_latency"] = median_of_runs(figures)
    return measure


def measure_update_sync(
    cfg: BenchConfig, work: Path, writers: int, step: Steps, handoff: Sequence[float] = ()
) -> Measure:
    """update_sync/s of ``writers`` threads against the baseline's, alternating; the
    latency of each update and the commits in the same runs; the floors beside them."""
    ev: list[Run] = []
    base: list[Run] = []
    free: list[Run] = []
    label = f"{writers} writer" + ("s" if writers > 1 else "")
    for _ in range(cfg.repeats):
        base.append(baseline_run(cfg, work / "baseline-rate", writers))
        step(f"baseline update_sync, {label}")
        ev.append(evstore_sync_run(cfg, work / "evstore-rate", writers))
        step(f"evstore update_sync, {label}")
        if cfg.floors:
            # the same harness as the run above (latencies kept too), the writer free
            free.append(free_run(lambda: evstore_sync_run(cfg, work / "free", writers)))
            step(f"floor: update_sync, {label}, free writer")
    measure = make_measure(
        f"update_sync_{writers}", f"update_sync/s, {label}", "ops/s",
        [rate for rate, _ in ev], [rate for rate, _ in base],
        {"writers": writers, "containers": max(cfg.pool, writers),
         "latency": median_of_runs([figures for _, figures in ev]),
         "baseline_latency": median_of_runs([figures for _, figures in base])},
    )
    measure = free_latency(measure, free)
    return with_floors(measure, [rate for rate, _ in free], handoff if writers > 1 else ())


def against_one_writer(
    cfg: BenchConfig, name: str, description: str, sample: Callable[[], Run],
    sync_one: Measure, step: Steps, detail: dict[str, Any] | None = None,
    floor: Callable[[], Run] | None = None,
) -> Measure:
    """``repeats`` evstore samples against the per-update baseline: the file checkpoint's
    ``update_sync`` with one writer (the samples of ``update_sync_1``); with ``floor``,
    a free-writer sample after each."""
    ev: list[Run] = []
    free: list[Run] = []
    for _ in range(cfg.repeats):
        ev.append(sample())
        step(f"evstore {description}")
        if floor is not None and cfg.floors:
            free.append(free_run(floor))
            step(f"floor: {description}, free writer")
    figures = [f for _, f in ev if f]
    latency = {"latency": median_of_runs(figures)} if figures else {}
    measure = make_measure(
        name, description, "ops/s", [rate for rate, _ in ev], sync_one.baseline_samples,
        {"baseline": "file checkpoint update_sync/s, 1 writer (same samples)", **(detail or {}),
         **latency},
    )
    return with_floors(free_latency(measure, free), [rate for rate, _ in free])


def measure_update(cfg: BenchConfig, work: Path, sync_one: Measure, step: Steps) -> Measure:
    """``update`` without waiting, then one ``flush`` inside the time.

    containerd's ``Update`` only changes memory, so the baseline is its only durable
    update: the file checkpoint's ``update_sync`` with one writer (measured above).
    """

    def run() -> Run:
        return evstore_rate(cfg, work / "evstore-rate", 1, sync=False), {}

    return against_one_writer(
        cfg, "update_1", "update/s + flush, 1 writer", run, sync_one, step, floor=run,
    )


def measure_get_loaded(cfg: BenchConfig, work: Path, step: Steps) -> Measure:
    """``status.get()`` while writers run, against its idle speed (the "baseline" side)."""
    runs: list[GetRates] = []
    for _ in range(cfg.repeats):
        runs.append(get_rates(cfg, work / "evstore-get"))
        step(f"evstore status.get, idle and with {cfg.get_writers} writers")
    return make_measure(
        f"get_loaded_{cfg.get_writers}",
        f"status.get/s, {cfg.get_writers} writers (baseline: idle)", "ops/s",
        [r.loaded for r in runs], [r.idle for r in runs],
        {"baseline": "status.get/s on the same entry with no writer, in the same store",
         "target": "ratio >= 0.5 (no slower than 2x idle)", "writers": cfg.get_writers,
         "update_sync_per_s": [r.writes for r in runs]},
    )
