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
from typing import Any

import msgspec

import evstore
from evstore import (
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    LinuxContainerResources,
)
from evstore.entries import Entry

from .baseline import FileCheckpoint, write_status_file

Progress = Callable[[str, int, int], None]  # (what was just done, steps done, steps in all)
Op = Callable[[int], object]  # one operation; gets its iteration number
CEntry = Entry[ContainerStatus, ContainerMetadata]

_T0 = 1_700_000_000_000_000_000  # a fixed "now" in Unix ns, so runs write the same bytes
_ADD_THREADS = 32  # concurrent adds while building, so they share commits


@dataclass(frozen=True)
class BenchConfig:
    """What to run. ``seconds`` is the length of one timed run; each measure has ``repeats``."""

    seconds: float = 5.0
    repeats: int = 5
    pool: int = 64  # containers pre-added for the throughput measures
    threads: tuple[int, ...] = (8, 64)
    reopen_sizes: tuple[int, ...] = (5_000, 10_000)
    events: int = 50  # events per container in the reopen store (the first is the add)
    directory: Path | None = None  # where the work directory is made

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """Under a minute on a 2-core machine."""
        base = cls(seconds=1.0, repeats=3, reopen_sizes=(1_000,))
        return dataclasses.replace(base, **overrides)

    @classmethod
    def full(cls, **overrides: Any) -> BenchConfig:
        return dataclasses.replace(cls(), **overrides)

    def check(self) -> None:
        if self.seconds <= 0 or self.repeats < 1 or self.pool < 1 or self.events < 2:
            raise ValueError("seconds, repeats, pool must be positive and events at least 2")
        if any(n < 1 for n in (*self.threads, *self.reopen_sizes)):
            raise ValueError("thread counts and reopen sizes must be positive")


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


@dataclass
class BenchResult:
    config: dict[str, Any]
    environment: dict[str, Any]
    measures: list[Measure]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data."""
        return dataclasses.asdict(self)


def make_measure(
    name: str, description: str, unit: str,
    evstore_samples: Sequence[float], baseline_samples: Sequence[float],
    detail: dict[str, Any] | None = None,
) -> Measure:
    ev = statistics.median(evstore_samples)
    base = statistics.median(baseline_samples)
    return Measure(
        name=name, description=description, unit=unit,
        better="higher" if unit == "ops/s" else "lower",
        evstore=ev, baseline=base, ratio=ev / base if base else float("nan"),
        evstore_samples=list(evstore_samples), baseline_samples=list(baseline_samples),
        detail=detail or {},
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
    pairs = (1 + len(cfg.threads)) * cfg.repeats * 2 + cfg.repeats
    per_size = 1 + (cfg.events - 1) + 1 + cfg.repeats * 2
    return pairs + per_size * len(cfg.reopen_sizes)


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
    counts = [0] * len(ops)
    if len(ops) == 1:
        t0 = time.perf_counter()
        counts[0] = _loop(ops[0], t0 + seconds)
    else:
        t0 = _run_threads(ops, seconds, counts)
    if finish is not None:
        finish()
    return sum(counts) / (time.perf_counter() - t0)


def _loop(op: Op, deadline: float) -> int:
    n = 0
    clock = time.perf_counter
    while clock() < deadline:
        op(n)
        n += 1
    return n


def _run_threads(ops: Sequence[Op], seconds: float, counts: list[int]) -> float:
    """Start one thread per op together; return the start time once all have stopped."""
    barrier = threading.Barrier(len(ops) + 1)
    deadline = [0.0]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        barrier.wait()
        try:
            counts[i] = _loop(ops[i], deadline[0])
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


def _partition(items: Sequence[Any], parts: int) -> list[list[Any]]:
    return [list(items[i::parts]) for i in range(parts)]


def _evstore_ops(entries: Sequence[CEntry], writers: int, sync: bool) -> list[Op]:
    def op_for(mine: list[CEntry]) -> Op:
        k = len(mine)
        if sync:
            return lambda n: mine[n % k].status.update_sync(bump_pid)
        return lambda n: mine[n % k].status.update(bump_pid)

    return [op_for(mine) for mine in _partition(entries, writers)]


def _baseline_ops(cp: FileCheckpoint, ids: Sequence[str], writers: int) -> list[Op]:
    def op_for(mine: list[str]) -> Op:
        k = len(mine)
        return lambda n: cp.update_sync(mine[n % k], bump_pid)

    return [op_for(mine) for mine in _partition(ids, writers)]


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


def evstore_rate(cfg: BenchConfig, path: Path, writers: int, sync: bool) -> float:
    with scratch(path), evstore.open(path / "store") as store:
        entries = _add_running(store, max(cfg.pool, writers))
        ops = _evstore_ops(entries, writers, sync)
        return throughput(ops, cfg.seconds, None if sync else store.flush)


def baseline_rate(cfg: BenchConfig, path: Path, writers: int) -> float:
    with scratch(path):
        cp = FileCheckpoint(path / "containers")
        ids = [container_id(i) for i in range(max(cfg.pool, writers))]
        for i, cid in enumerate(ids):
            cp.add(cid, start(created_status(i)))
        return throughput(_baseline_ops(cp, ids, writers), cfg.seconds)


# --- the measures -----------------------------------------------------------------------------


def measure_update_sync(
    cfg: BenchConfig, work: Path, writers: int, step: Steps
) -> Measure:
    ev: list[float] = []
    base: list[float] = []
    label = f"{writers} writer" + ("s" if writers > 1 else "")
    for _ in range(cfg.repeats):
        base.append(baseline_rate(cfg, work / "baseline-rate", writers))
        step(f"baseline update_sync, {label}")
        ev.append(evstore_rate(cfg, work / "evstore-rate", writers, sync=True))
        step(f"evstore update_sync, {label}")
    return make_measure(
        f"update_sync_{writers}", f"update_sync/s, {label}", "ops/s", ev, base,
        {"writers": writers, "containers": max(cfg.pool, writers)},
    )


def measure_update(cfg: BenchConfig, work: Path, sync_one: Measure, step: Steps) -> Measure:
    """``update`` without waiting, then one ``flush`` inside the time.

    containerd's ``Update`` only changes memory, so the baseline is its only durable
    update: the file checkpoint's ``update_sync`` with one writer (measured above).
    """
    ev: list[float] = []
    for _ in range(cfg.repeats):
        ev.append(evstore_rate(cfg, work / "evstore-rate", 1, sync=False))
        step("evstore update + flush, 1 writer")
    return make_measure(
        "update_1", "update/s + flush, 1 writer", "ops/s", ev, sync_one.baseline_samples,
        {"baseline": "file checkpoint update_sync/s, 1 writer (same samples)"},
    )


@dataclass
class ReopenFixture:
    size: int
    store_path: Path
    baseline_root: Path
    expected: dict[str, ContainerStatus]
    build_seconds: float


def build_reopen(cfg: BenchConfig, work: Path, size: int, step: Steps) -> ReopenFixture:
    """A store of ``size`` containers with ``cfg.events`` events each, and the same statuses
    as baseline files (written directly, without fsync)."""
    directory = work / f"reopen-{size}"
    t0 = time.perf_counter()
    with evstore.open(directory / "store") as store:
        entries = _build_history(store, size, cfg.events, step)
        expected = {e.id: e.status.get() for e in entries}
    build_seconds = time.perf_counter() - t0
    root = directory / "baseline"
    root.mkdir()
    for cid, status in expected.items():
        write_status_file(root, cid, status)
    step(f"baseline files for {size:,} containers")
    return ReopenFixture(size, directory / "store", root, expected, build_seconds)


def _build_history(store: evstore.Store, size: int, events: int, step: Steps) -> list[CEntry]:
    def add(i: int) -> CEntry:
        return store.containers.add(ContainerMetadata(container_id(i)), created_status(i))

    with ThreadPoolExecutor(_ADD_THREADS) as pool:
        entries = list(pool.map(add, range(size)))
    step(f"added {size:,} containers")
    for n in range(1, events):
        fn = start if n == 1 else bump_pid
        for entry in entries:
            entry.status.update(fn)
        step(f"event {n + 1}/{events} of {size:,} containers")
    store.flush()
    return entries


def time_reopen(fixture: ReopenFixture) -> tuple[float, dict[str, Any], bool]:
    """Seconds for ``evstore.open``, its load report, and whether it loaded what was written."""
    t0 = time.perf_counter()
    store = evstore.open(fixture.store_path)
    seconds = time.perf_counter() - t0
    try:
        report = msgspec.to_builtins(store.load_report)
        found = {e.id: e.status.get() for e in store.containers.list()}
    finally:
        store.close()
    return seconds, report, found == fixture.expected


def time_baseline_load(fixture: ReopenFixture) -> tuple[float, bool]:
    t0 = time.perf_counter()
    found = FileCheckpoint(fixture.baseline_root).load()
    seconds = time.perf_counter() - t0
    return seconds, found == fixture.expected


def measure_reopen(cfg: BenchConfig, fixture: ReopenFixture, step: Steps) -> Measure:
    ev: list[float] = []
    base: list[float] = []
    reports: list[dict[str, Any]] = []
    exact = True
    for _ in range(cfg.repeats):
        seconds, report, same = time_reopen(fixture)
        ev.append(seconds)
        reports.append(report)
        step(f"evstore reopen, {fixture.size:,} containers")
        seconds, same_base = time_baseline_load(fixture)
        base.append(seconds)
        exact = exact and same and same_base
        step(f"baseline load, {fixture.size:,} containers")
    return make_measure(
        f"reopen_{fixture.size}",
        f"reopen, {fixture.size:,} containers x {cfg.events} events", "s", ev, base,
        {"load_report": reports[-1], "statuses_match": exact,
         "build_seconds": fixture.build_seconds},
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
    with work_directory(cfg.directory) as work:
        env = environment(work)
        measures = _throughput_measures(cfg, work, step)
        for size in cfg.reopen_sizes:
            measures.extend(_size_measures(cfg, work, size, step))
    return BenchResult(_config_dict(cfg), env, measures, time.perf_counter() - t0)


def _throughput_measures(cfg: BenchConfig, work: Path, step: Steps) -> list[Measure]:
    one = measure_update_sync(cfg, work, 1, step)
    many = [measure_update_sync(cfg, work, n, step) for n in cfg.threads]
    return [one, *many, measure_update(cfg, work, one, step)]


def _size_measures(cfg: BenchConfig, work: Path, size: int, step: Steps) -> list[Measure]:
    fixture = build_reopen(cfg, work, size, step)
    try:
        return [measure_reopen(cfg, fixture, step), measure_disk(cfg, fixture)]
    finally:
        shutil.rmtree(fixture.store_path.parent, ignore_errors=True)


def _config_dict(cfg: BenchConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    d["directory"] = str(cfg.directory) if cfg.directory is not None else None
    d["threads"] = list(cfg.threads)
    d["reopen_sizes"] = list(cfg.reopen_sizes)
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
