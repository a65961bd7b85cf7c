"""The measurements: evstore against containerd's file checkpoint, in one process, on one disk.

Every measure is taken ``repeats`` times, the evstore and baseline runs alternating so that
drift in the machine hits both alike, and the median is reported with the ratio
``evstore / baseline`` (for a rate, above 1 means evstore is faster; for a time or a size,
below 1 means evstore is faster or smaller).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

import evstore
from evstore import ContainerMetadata, ContainerResources, ContainerStatus, LinuxContainerResources
from evstore._bench.baseline import FileCheckpoint, write_status_file
from evstore._bench.floors import free_writer, thread_handoff
from evstore._bench.latency import median_of_runs, run_figures
from evstore._bench.targets import checks
from evstore._core.errors import BenchError, InvalidInputError
from evstore._store.entries import Entry

if TYPE_CHECKING:
    from evstore._store.aio import AsyncEntry

Progress = Callable[[str, int, int], None]  # (what was just done, steps done, steps in all)
Op = Callable[[int], object]  # one operation; gets its iteration number
CEntry = Entry[ContainerStatus, ContainerMetadata]

_T0 = 1_700_000_000_000_000_000  # a fixed "now" in Unix ns, so runs write the same bytes
_ADD_THREADS = 32  # concurrent adds while building, so they share commits
# adds in flight while building a reopen store: each add is durable, so the more share a
# commit, the fewer fsyncs (100,000 adds: ~400 commits instead of ~3,000 with 32)
_BUILD_ADD_THREADS = 256


@dataclass(frozen=True)
class BenchConfig:
    """What to run. ``seconds`` is the length of one timed run; each measure has ``repeats``."""

    seconds: float = 5.0
    repeats: int = 5
    pool: int = 64  # containers pre-added for the throughput measures
    threads: tuple[int, ...] = (8, 64)
    tasks: tuple[int, ...] = (1, 100, 1_000)  # concurrent async tasks doing update_sync
    get_writers: int = 8  # update_sync threads running while status.get is timed
    reopen_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    events: int = 50  # events per container in the reopen store (the first is the add)
    directory: Path | None = None  # where the work directory is made
    peer: bool = True  # measure the eventsourcing library too, when it is installed
    peer_threads: tuple[int, ...] = (8, 64)  # peer thread counts (and 1), also in threads
    peer_reopen_sizes: tuple[int, ...] = (1_000,)  # peer reopen, at sizes also in reopen_sizes
    fleet_stores: int = 0  # stores shipping at once into one PostgreSQL (0: no fleet figure)
    fleet_repeats: int = 0  # runs of the fleet figure (0: ``repeats``)
    floors: bool = True  # measure each throughput's floors (free writer, thread hand-off)
    operator_containers: int = 1_000  # the store the operator commands read (0: none)

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """About two minutes on a 2-core machine."""
        base = cls(
            seconds=1.0, repeats=3, reopen_sizes=(1_000, 10_000), peer_threads=(),
            peer_reopen_sizes=(), fleet_stores=8, fleet_repeats=1,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def full(cls, **overrides: Any) -> BenchConfig:
        return dataclasses.replace(cls(fleet_stores=8), **overrides)

    def check(self) -> None:
        if self.seconds <= 0 or self.repeats < 1 or self.pool < 1 or self.events < 2:
            raise InvalidInputError("seconds, repeats, pool must be positive and events at least 2")
        counts = (
            *self.threads, *self.tasks, self.get_writers, *self.reopen_sizes,
            *self.peer_threads, *self.peer_reopen_sizes,
        )
        if self.operator_containers < 0:
            raise InvalidInputError("operator_containers must not be negative")
        if any(n < 1 for n in counts):
            raise InvalidInputError(
                "thread, task and writer counts and reopen sizes must be positive"
            )


@dataclass
class Measure:
    """One figure: the medians of both sides and their ratio ``evstore / baseline``."""

    name: str
    description: str
    unit: str  # "ops/s", "s" or "bytes"
    better: str  # "higher" or "lower"
    evstore: float
    baseline: float
    ratio: float
    evstore_samples: list[float]
    baseline_samples: list[float]
    detail: dict[str, Any] = field(default_factory=dict)
    subject: str = "evstore"  # what the "evstore" figures measured (the peer's rows say so)


@dataclass
class BenchResult:
    config: dict[str, Any]
    environment: dict[str, Any]
    measures: list[Measure]
    seconds: float
    notes: list[str] = field(default_factory=list)  # e.g. a measure skipped, and why
    growth: list[dict[str, Any]] = field(default_factory=list)  # see ``reopen_growth``
    checks: list[dict[str, Any]] = field(default_factory=list)  # see ``targets.checks``

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """The result ``to_dict`` gave (read back from ``--json``); older files without
        ``notes``, ``growth`` or ``checks`` get them filled in."""
        measures = [Measure(**_nan_for_null(m)) for m in data["measures"]]
        growth = data.get("growth") or reopen_growth(measures)
        return cls(
            data["config"], data["environment"], measures, data["seconds"],
            list(data.get("notes", [])), growth, data.get("checks") or checks(measures),
        )


def _nan_for_null(measure: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a figure without a baseline was saved as null."""
    figures = ("evstore", "baseline", "ratio")
    return {k: float("nan") if k in figures and v is None else v for k, v in measure.items()}


def make_measure(
    name: str, description: str, unit: str,
    evstore_samples: Sequence[float], baseline_samples: Sequence[float],
    detail: dict[str, Any] | None = None, subject: str = "evstore",
) -> Measure:
    ev = statistics.median(evstore_samples)
    base = statistics.median(baseline_samples)
    return Measure(
        name=name, description=description, unit=unit,
        better="higher" if unit == "ops/s" else "lower",
        evstore=ev, baseline=base, ratio=ev / base if base else float("nan"),
        evstore_samples=list(evstore_samples), baseline_samples=list(baseline_samples),
        detail=detail or {}, subject=subject,
    )


# --- the statuses written ---------------------------------------------------------------------

_RESOURCES = ContainerResources(
    linux=LinuxContainerResources(
        cpu_period=100_000, cpu_quota=50_000, cpu_shares=512,
        memory_limit_in_bytes=268_435_456, oom_score_adj=-997,
    )
)


def created_status(i: int) -> ContainerStatus:
    """A freshly created container with typical resources (what the first event holds)."""
    return ContainerStatus(created_at=_T0 + i, resources=_RESOURCES)


def start(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=1_000, started_at=status.created_at + 1_000_000)


def bump_pid(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=status.pid + 1)


def container_id(i: int) -> str:
    return f"{i:08x}" + "0" * 56  # 64 hex characters, like containerd's ids


# --- the work directory and the steps ---------------------------------------------------------


class Steps:
    """Counts finished steps and tells the progress callback, if any."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress

    def __call__(self, what: str) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress(what, self.done, self.total)


def count_steps(cfg: BenchConfig) -> int:
    """How many times ``run`` will call its progress callback."""
    floors = 1 if cfg.floors else 0  # a free-writer run beside each throughput run
    handoff = cfg.repeats * floors
    pairs = (1 + len(cfg.threads)) * cfg.repeats * (2 + floors)
    # update and async tasks (each with its floor), then status.get
    evstore_only = (1 + len(cfg.tasks)) * cfg.repeats * (1 + floors) + cfg.repeats
    # per size: the killed store built (adds, then events - 1 rounds), its clean copy, the
    # baseline files, then both reopens alternating with the baseline load
    per_size = cfg.events + 2 + cfg.repeats * 4
    from evstore._bench.fleet import count_fleet_steps
    from evstore._bench.operator import count_operator_steps
    from evstore._bench.peer import count_peer_steps

    fleet = count_fleet_steps(cfg) + count_operator_steps(cfg)
    sizes = per_size * len(cfg.reopen_sizes)
    return handoff + pairs + evstore_only + sizes + count_peer_steps(cfg) + fleet


def default_parent() -> Path:
    """The current directory if writable (so the disk measured is the user's), else the tmp dir."""
    cwd = Path.cwd()
    return cwd if os.access(cwd, os.W_OK) else Path(tempfile.gettempdir())


@contextmanager
def work_directory(parent: Path | None) -> Iterator[Path]:
    """A fresh directory under ``parent``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="evstore-bench-", dir=parent or default_parent()))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def scratch(path: Path) -> Iterator[Path]:
    """``path`` made empty for one run and removed after it."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def disk_usage(path: Path) -> int:
    """Bytes allocated (``st_blocks * 512``) to ``path`` and everything under it, like ``du``."""
    total = path.lstat().st_blocks * 512
    for parent, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            total += os.lstat(os.path.join(parent, name)).st_blocks * 512
    return total


# --- timed runs -------------------------------------------------------------------------------


def throughput(
    ops: Sequence[Op], seconds: float, finish: Callable[[], object] | None = None
) -> float:
    """Operations per second: each op looped in its own thread (inline if one) for ``seconds``.

    ``finish`` (e.g. a flush) runs at the end and is inside the time.
    """
    counts, t0 = loop_counts(ops, seconds)
    if finish is not None:
        finish()
    return sum(counts) / (time.perf_counter() - t0)


def timed_throughput(ops: Sequence[Op], seconds: float) -> tuple[float, list[float]]:
    """``throughput`` that also keeps how long each operation took (seconds), all threads'."""
    times: list[list[float]] = [[] for _ in ops]
    counts, t0 = loop_counts(ops, seconds, times)
    rate = sum(counts) / (time.perf_counter() - t0)
    return rate, [t for mine in times for t in mine]


def loop_counts(
    ops: Sequence[Op], seconds: float, times: list[list[float]] | None = None
) -> tuple[list[int], float]:
    """Each op looped in its own thread (inline if one) for ``seconds``: how many times each
    ran, and the start time. With ``times``, op ``i``'s durations go to ``times[i]``."""
    counts = [0] * len(ops)
    if len(ops) == 1:
        t0 = time.perf_counter()
        counts[0] = _loop(ops[0], t0 + seconds, None if times is None else times[0])
    else:
        t0 = _run_threads(ops, seconds, counts, times)
    return counts, t0


def _loop(op: Op, deadline: float, times: list[float] | None = None) -> int:
    n = 0
    clock = time.perf_counter
    if times is None:
        while clock() < deadline:
            op(n)
            n += 1
        return n
    record = times.append
    started = clock()
    while started < deadline:  # one clock read serves the deadline and the sample
        op(n)
        now = clock()
        record(now - started)
        started = now
        n += 1
    return n


def _run_threads(
    ops: Sequence[Op], seconds: float, counts: list[int], times: list[list[float]] | None
) -> float:
    """Start one thread per op together; return the start time once all have stopped."""
    barrier = threading.Barrier(len(ops) + 1)
    deadline = [0.0]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            counts[i] = _loop(ops[i], deadline[0], None if times is None else times[i])
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(ops))]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    barrier.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return t0


def partition(items: Sequence[Any], parts: int) -> list[list[Any]]:
    return [list(items[i::parts]) for i in range(parts)]


def _evstore_ops(entries: Sequence[CEntry], writers: int, sync: bool) -> list[Op]:
    def op_for(mine: list[CEntry]) -> Op:
        k = len(mine)
        if sync:
            return lambda n: mine[n % k].status.update_sync(bump_pid)
        return lambda n: mine[n % k].status.update(bump_pid)

    return [op_for(mine) for mine in partition(entries, writers)]


def _baseline_ops(cp: FileCheckpoint, ids: Sequence[str], writers: int) -> list[Op]:
    def op_for(mine: list[str]) -> Op:
        k = len(mine)
        return lambda n: cp.update_sync(mine[n % k], bump_pid)

    return [op_for(mine) for mine in partition(ids, writers)]


def _add_running(store: evstore.Store, count: int) -> list[CEntry]:
    """Add ``count`` containers (concurrently, sharing commits) and start them."""

    def add(i: int) -> CEntry:
        entry = store.containers.add(ContainerMetadata(container_id(i)), created_status(i))
        entry.status.update(start)
        return entry

    with ThreadPoolExecutor(_ADD_THREADS) as pool:
        entries = list(pool.map(add, range(count)))
    store.flush()
    return entries


Run = tuple[float, dict[str, Any]]  # a rate, and that run's latency and commit figures


def evstore_rate(cfg: BenchConfig, path: Path, writers: int, sync: bool) -> float:
    """update_sync/s (``update``/s and a flush, without ``sync``) of ``writers`` threads."""
    with scratch(path), evstore.open(path / "store") as store:
        entries = _add_running(store, max(cfg.pool, writers))
        ops = _evstore_ops(entries, writers, sync)
        return throughput(ops, cfg.seconds, None if sync else store.flush)


def evstore_sync_run(cfg: BenchConfig, path: Path, writers: int) -> Run:
    """``evstore_rate`` of update_sync, with each update's latency and each commit's
    duration and size."""
    with scratch(path), evstore.open(path / "store") as store:
        entries = _add_running(store, max(cfg.pool, writers))
        commits = store._writer.record_commits()
        rate, times = timed_throughput(_evstore_ops(entries, writers, True), cfg.seconds)
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
        rate, times = timed_throughput(_baseline_ops(cp, ids, writers), cfg.seconds)
        return rate, run_figures(times, None)


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
        added = await anyio.to_thread.run_sync(_add_running, store.sync, containers)
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


@dataclass
class GetRates:
    idle: float  # status.get/s on one entry, nothing else running
    loaded: float  # the same while the writers run
    writes: float  # the writers' update_sync/s meanwhile


def get_rates(cfg: BenchConfig, path: Path) -> GetRates:
    """``status.get()`` on one entry, idle, then while ``cfg.get_writers`` threads
    update_sync the other containers of the same store."""
    with scratch(path), evstore.open(path / "store") as store:
        read, *others = _add_running(store, max(cfg.pool, cfg.get_writers) + 1)

        def get(n: int) -> object:
            return read.status.get()

        idle = throughput([get], cfg.seconds)
        writers = _evstore_ops(others, cfg.get_writers, sync=True)
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


def free_rate(sample: Callable[[], float]) -> float:
    """``sample`` run with the free writer (see ``floors.free_writer``)."""
    with free_writer():
        return sample()


def measure_update_sync(
    cfg: BenchConfig, work: Path, writers: int, step: Steps, handoff: Sequence[float] = ()
) -> Measure:
    """update_sync/s of ``writers`` threads against the baseline's, alternating; the
    latency of each update and the commits in the same runs; the floors beside them."""
    ev: list[Run] = []
    base: list[Run] = []
    free: list[float] = []
    label = f"{writers} writer" + ("s" if writers > 1 else "")
    for _ in range(cfg.repeats):
        base.append(baseline_run(cfg, work / "baseline-rate", writers))
        step(f"baseline update_sync, {label}")
        ev.append(evstore_sync_run(cfg, work / "evstore-rate", writers))
        step(f"evstore update_sync, {label}")
        if cfg.floors:
            # the same harness as the run above (latencies kept too), the writer free
            free.append(free_rate(lambda: evstore_sync_run(cfg, work / "free", writers)[0]))
            step(f"floor: update_sync, {label}, free writer")
    measure = make_measure(
        f"update_sync_{writers}", f"update_sync/s, {label}", "ops/s",
        [rate for rate, _ in ev], [rate for rate, _ in base],
        {"writers": writers, "containers": max(cfg.pool, writers),
         "latency": median_of_runs([figures for _, figures in ev]),
         "baseline_latency": median_of_runs([figures for _, figures in base])},
    )
    return with_floors(measure, free, handoff if writers > 1 else ())


def against_one_writer(
    cfg: BenchConfig, name: str, description: str, sample: Callable[[], Run],
    sync_one: Measure, step: Steps, detail: dict[str, Any] | None = None,
    floor: Callable[[], float] | None = None,
) -> Measure:
    """``repeats`` evstore samples against the per-update baseline: the file checkpoint's
    ``update_sync`` with one writer (the samples of ``update_sync_1``); with ``floor``,
    a free-writer sample after each."""
    ev: list[Run] = []
    free: list[float] = []
    for _ in range(cfg.repeats):
        ev.append(sample())
        step(f"evstore {description}")
        if floor is not None and cfg.floors:
            free.append(free_rate(floor))
            step(f"floor: {description}, free writer")
    figures = [f for _, f in ev if f]
    latency = {"latency": median_of_runs(figures)} if figures else {}
    measure = make_measure(
        name, description, "ops/s", [rate for rate, _ in ev], sync_one.baseline_samples,
        {"baseline": "file checkpoint update_sync/s, 1 writer (same samples)", **(detail or {}),
         **latency},
    )
    return with_floors(measure, free)


def measure_update(cfg: BenchConfig, work: Path, sync_one: Measure, step: Steps) -> Measure:
    """``update`` without waiting, then one ``flush`` inside the time.

    containerd's ``Update`` only changes memory, so the baseline is its only durable
    update: the file checkpoint's ``update_sync`` with one writer (measured above).
    """

    def rate() -> float:
        return evstore_rate(cfg, work / "evstore-rate", 1, sync=False)

    return against_one_writer(
        cfg, "update_1", "update/s + flush, 1 writer", lambda: (rate(), {}), sync_one, step,
        floor=rate,
    )


def measure_async(
    cfg: BenchConfig, work: Path, tasks: int, sync_one: Measure, step: Steps
) -> Measure:
    """``await update_sync`` from ``tasks`` asyncio tasks, against the 1-writer baseline."""
    label = f"{tasks:,} async task" + ("s" if tasks > 1 else "")
    return against_one_writer(
        cfg, f"update_sync_async_{tasks}", f"update_sync/s, {label}",
        lambda: evstore_async_run(cfg, work / "evstore-async", tasks), sync_one, step,
        {"tasks": tasks, "containers": max(cfg.pool, tasks), "backend": "asyncio (anyio)"},
        floor=lambda: evstore_async_rate(cfg, work / "free-async", tasks),
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


@dataclass
class ReopenFixture:
    size: int
    store_path: Path
    baseline_root: Path
    expected: dict[str, ContainerStatus]
    build_seconds: float
    killed_path: Path | None = None  # the store as the SIGKILLed builder left it
    close_seconds: float = 0.0  # opening and closing the clean copy


def build_reopen(cfg: BenchConfig, work: Path, size: int, step: Steps) -> ReopenFixture:
    """A store of ``size`` containers with ``cfg.events`` events each, built once, by a
    child SIGKILLed once it is ready (the kill -9 store); a copy of it opened and closed
    (the clean store: a clean close snapshots every entry); and the statuses the updates
    should have left, as baseline files (written directly, without fsync).

    One build serves both reopens: at 100,000 containers building is most of the run.
    """
    directory = work / f"reopen-{size}"
    killed, build_seconds = build_killed(cfg, directory / "killed", size, step)
    t0 = time.perf_counter()
    shutil.copytree(killed, directory / "store")
    evstore.open(directory / "store").close()
    close_seconds = time.perf_counter() - t0
    step(f"clean copy of {size:,} containers")
    expected = {container_id(i): final_status(i, cfg.events) for i in range(size)}
    root = directory / "baseline"
    root.mkdir()
    for cid, status in expected.items():
        write_status_file(root, cid, status)
    step(f"baseline files for {size:,} containers")
    return ReopenFixture(
        size, directory / "store", root, expected, build_seconds, killed, close_seconds
    )


def final_status(i: int, events: int) -> ContainerStatus:
    """Container ``i``'s status after ``events`` events: created, started, pid bumps."""
    status = start(created_status(i))
    for _ in range(events - 2):
        status = bump_pid(status)
    return status


def _build_history(store: evstore.Store, size: int, events: int, step: Steps) -> list[CEntry]:
    def add(i: int) -> CEntry:
        return store.containers.add(ContainerMetadata(container_id(i)), created_status(i))

    with ThreadPoolExecutor(_BUILD_ADD_THREADS) as pool:
        entries = list(pool.map(add, range(size)))
    step(f"added {size:,} containers")
    for n in range(1, events):
        fn = start if n == 1 else bump_pid
        for entry in entries:
            entry.status.update(fn)
        step(f"event {n + 1}/{events} of {size:,} containers")
    store.flush()
    return entries


Reopened = tuple[float, dict[str, Any], bool]  # seconds, load report, loaded what was written


def time_reopen(path: Path, expected: dict[str, ContainerStatus]) -> Reopened:
    """Seconds for ``evstore.open``, its load report, and whether it loaded ``expected``."""
    t0 = time.perf_counter()
    store = evstore.open(path)
    seconds = time.perf_counter() - t0
    try:
        report = msgspec.to_builtins(store.load_report)
        found = {e.id: e.status.get() for e in store.containers.list()}
    finally:
        store.close()
    return seconds, report, found == expected


def time_killed_reopen(killed: Path, expected: dict[str, ContainerStatus]) -> Reopened:
    """``time_reopen`` on a fresh copy of the killed store (copied untimed): a clean close
    would snapshot the log, so each run must start from what the kill left."""
    with scratch(killed.with_name("killed-copy")) as copy:
        shutil.copytree(killed, copy, dirs_exist_ok=True)
        return time_reopen(copy, expected)


_READY = "ready"
_KILLED_CHILD = (
    "import sys; from evstore._bench.runner import killed_child; killed_child(*sys.argv[1:])"
)


def killed_child(path: str, size: str, events: str) -> None:
    """Run in a child process: build the reopen store with ``update`` and ``flush``, never
    close it, print each step and then "ready", and wait to be SIGKILLed."""

    def say(what: str, done: int, total: int) -> None:
        print(what, flush=True)

    store = evstore.open(path)
    _build_history(store, int(size), int(events), Steps(0, say))
    print(_READY, flush=True)
    sys.stdin.read()  # until killed (or the parent is gone)
    os._exit(1)  # never close


def build_killed(
    cfg: BenchConfig, path: Path, size: int, step: Steps
) -> tuple[Path, float]:
    """The reopen store of ``size`` containers built at ``path`` by a child that is
    SIGKILLed once it is ready; its path and the seconds the build took."""
    package_parent = str(Path(evstore.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-c", _KILLED_CHILD, str(path), str(size), str(cfg.events)]
    t0 = time.perf_counter()
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": pythonpath},
    ) as child:
        try:
            _follow_child(child, step)
        finally:
            child.kill()  # SIGKILL, as kill -9
            child.wait()
    return path, time.perf_counter() - t0


def _follow_child(child: subprocess.Popen[str], step: Steps) -> None:
    """Pass the child's steps on until it says it is ready."""
    assert child.stdout is not None and child.stderr is not None
    for line in child.stdout:
        if line.rstrip("\n") == _READY:
            return
        step(f"killed store: {line.strip()}")
    child.wait()
    error = child.stderr.read().strip().splitlines()
    why = error[-1] if error else f"exit status {child.returncode}"
    raise BenchError(f"building the killed store failed: {why}")


def time_baseline_load(fixture: ReopenFixture) -> tuple[float, bool]:
    t0 = time.perf_counter()
    found = FileCheckpoint(fixture.baseline_root).load()
    seconds = time.perf_counter() - t0
    return seconds, found == fixture.expected


def measure_reopen(cfg: BenchConfig, fixture: ReopenFixture, step: Steps) -> Measure:
    """Reopen after a clean close, against the baseline's load."""
    return reopen_measure(
        cfg, fixture, "reopen", "reopen", lambda: time_reopen(fixture.store_path, fixture.expected),
        step, {"build_seconds": fixture.build_seconds, "close_seconds": fixture.close_seconds,
               "built": "the kill -9 store, copied, opened and closed cleanly"},
    )


def measure_killed_reopen(cfg: BenchConfig, fixture: ReopenFixture, step: Steps) -> Measure:
    """Reopen after ``kill -9`` of the process that built the store, against the same load."""
    killed = fixture.killed_path
    assert killed is not None, "build_reopen builds the killed store"
    return reopen_measure(
        cfg, fixture, "reopen_kill9", "reopen after kill -9",
        lambda: time_killed_reopen(killed, fixture.expected), step,
        {"build_seconds": fixture.build_seconds},
    )


def reopen_measure(
    cfg: BenchConfig, fixture: ReopenFixture, name: str, label: str,
    reopen: Callable[[], Reopened], step: Steps, detail: dict[str, Any],
) -> Measure:
    """``reopen`` against ``FileCheckpoint.load`` of the fixture's files, alternating."""
    ev: list[float] = []
    base: list[float] = []
    reports: list[dict[str, Any]] = []
    exact = True
    for _ in range(cfg.repeats):
        seconds, report, same = reopen()
        ev.append(seconds)
        reports.append(report)
        step(f"evstore {label}, {fixture.size:,} containers")
        seconds, same_base = time_baseline_load(fixture)
        base.append(seconds)
        exact = exact and same and same_base
        step(f"baseline load, {fixture.size:,} containers")
    return make_measure(
        f"{name}_{fixture.size}",
        f"{label}, {fixture.size:,} containers x {cfg.events} events", "s", ev, base,
        {"load_report": reports[-1], "events_replayed": reports[-1]["events_replayed"],
         "statuses_match": exact, **detail},
    )


def measure_disk(cfg: BenchConfig, fixture: ReopenFixture) -> Measure:
    ev = disk_usage(fixture.store_path) / fixture.size
    base = disk_usage(fixture.baseline_root) / fixture.size
    return make_measure(
        f"disk_{fixture.size}",
        f"disk per container, {fixture.size:,} x {cfg.events} events", "bytes", [ev], [base],
        {"note": "evstore keeps the full history; the baseline only the last status"},
    )


# --- the whole run ----------------------------------------------------------------------------


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    """Take every measure in a fresh work directory under ``cfg.directory``."""
    cfg.check()
    step = Steps(count_steps(cfg), progress)
    t0 = time.perf_counter()
    notes: list[str] = []
    with work_directory(cfg.directory) as work:
        env = environment(work)
        measures = _throughput_measures(cfg, work, step)
        for size in cfg.reopen_sizes:
            measures.extend(_size_measures(cfg, work, size, step))
        from evstore._bench.operator import operator_measures

        measures.extend(operator_measures(cfg, work, step, notes.append))
        from evstore._bench.peer import peer_measures

        measures.extend(peer_measures(cfg, work, measures, step, notes.append))
        from evstore._bench.fleet import fleet_measures

        measures.extend(fleet_measures(cfg, work, step, notes.append))
    return BenchResult(
        _config_dict(cfg), env, measures, time.perf_counter() - t0, notes,
        reopen_growth(measures), checks(measures),
    )


_GROWTH_KINDS = (  # (measure name prefix, side, label) of each reopen curve
    ("reopen", "evstore", "evstore, clean close"),
    ("reopen_kill9", "evstore", "evstore, after kill -9"),
    ("reopen", "baseline", "baseline load (file checkpoint)"),
    ("peer_reopen", "evstore", "eventsourcing (SQLite)"),
)


def reopen_growth(measures: Sequence[Measure]) -> list[dict[str, Any]]:
    """For each reopen curve, the median time per container at each size measured.

    Flat figures mean reopen grows linearly in containers; ``growth`` is the figure at the
    largest size over the one at the smallest (above 1: faster than linear; None with one
    size).
    """
    curves: list[dict[str, Any]] = []
    for prefix, side, label in _GROWTH_KINDS:
        points = sorted(
            (int(m.name.removeprefix(prefix + "_")), getattr(m, side))
            for m in measures
            if m.name.startswith(prefix + "_") and m.name.removeprefix(prefix + "_").isdigit()
        )
        if not points:
            continue
        per = [seconds / size * 1e6 for size, seconds in points]
        curves.append({
            "kind": prefix, "side": side, "label": label, "sizes": [n for n, _ in points],
            "seconds": [s for _, s in points], "us_per_container": per,
            "growth": per[-1] / per[0] if len(per) > 1 and per[0] else None,
        })
    return curves


def _throughput_measures(cfg: BenchConfig, work: Path, step: Steps) -> list[Measure]:
    handoff = measure_handoff(cfg, step)
    one = measure_update_sync(cfg, work, 1, step)
    many = [measure_update_sync(cfg, work, n, step, handoff) for n in cfg.threads]
    tasks = [measure_async(cfg, work, n, one, step) for n in cfg.tasks]
    update = measure_update(cfg, work, one, step)
    return [one, *many, *tasks, update, measure_get_loaded(cfg, work, step)]


def _size_measures(cfg: BenchConfig, work: Path, size: int, step: Steps) -> list[Measure]:
    fixture = build_reopen(cfg, work, size, step)
    try:
        clean = measure_reopen(cfg, fixture, step)
        return [clean, measure_killed_reopen(cfg, fixture, step), measure_disk(cfg, fixture)]
    finally:
        shutil.rmtree(fixture.store_path.parent, ignore_errors=True)


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["directory"] = str(cfg.directory) if cfg.directory is not None else None
    d["threads"] = list(cfg.threads)
    d["reopen_sizes"] = list(cfg.reopen_sizes)
    d["peer_threads"] = list(cfg.peer_threads)
    d["peer_reopen_sizes"] = list(cfg.peer_reopen_sizes)
    return d


def environment(work: Path) -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "directory": str(work),
        "filesystem": filesystem_type(work),
        "versions": {name: _version(name) for name in ("evstore", "lmdb", "msgspec")},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def filesystem_type(path: Path) -> str:
    """The type of the filesystem holding ``path`` (Linux ``/proc/self/mounts``), if known."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    target = str(path.resolve())
    best, kind = "", "unknown"
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind
