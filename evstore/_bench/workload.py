"""What every row writes and how it times it: the statuses, the work directories, the timed
loops and the stores of running containers. Rows and the orchestrator import this; it
imports no row."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

import evstore
from evstore import ContainerMetadata, ContainerResources, ContainerStatus, LinuxContainerResources
from evstore._bench.baseline import FileCheckpoint
from evstore._store.entries import Entry

Op = Callable[[int], object]  # one operation; gets its iteration number
CEntry = Entry[ContainerStatus, ContainerMetadata]

_T0 = 1_700_000_000_000_000_000  # a fixed "now" in Unix ns, so runs write the same bytes
_ADD_THREADS = 32  # concurrent adds while building, so they share commits


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


def final_status(i: int, events: int) -> ContainerStatus:
    """Container ``i``'s status after ``events`` events: created, started, pid bumps."""
    status = start(created_status(i))
    for _ in range(events - 2):
        status = bump_pid(status)
    return status


# --- the work directory -----------------------------------------------------------------------


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


# --- timed runs -------------------------------------------------------------------------------


def round_pairs(seconds: float) -> Iterator[int]:
    """The samples of one round of a short measure (a reopen, a command): as many as fit
    in ``seconds``, at least one. A figure of a few milliseconds varies by half from one
    sample to the next on a shared machine, and a median of five is then a coin toss; a
    measure that takes longer than the round is sampled once per round, as before."""
    end = time.perf_counter() + seconds
    taken = 0
    while taken == 0 or time.perf_counter() < end:
        yield taken
        taken += 1


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


def evstore_ops(entries: Sequence[CEntry], writers: int, sync: bool) -> list[Op]:
    def op_for(mine: list[CEntry]) -> Op:
        k = len(mine)
        if sync:
            return lambda n: mine[n % k].status.update_sync(bump_pid)
        return lambda n: mine[n % k].status.update(bump_pid)

    return [op_for(mine) for mine in partition(entries, writers)]


def baseline_ops(cp: FileCheckpoint, ids: Sequence[str], writers: int) -> list[Op]:
    def op_for(mine: list[str]) -> Op:
        k = len(mine)
        return lambda n: cp.update_sync(mine[n % k], bump_pid)

    return [op_for(mine) for mine in partition(ids, writers)]


def add_running(store: evstore.Store, count: int) -> list[CEntry]:
    """Add ``count`` containers (concurrently, sharing commits) and start them."""

    def add(i: int) -> CEntry:
        entry = store.containers.add(ContainerMetadata(container_id(i)), created_status(i))
        entry.status.update(start)
        return entry

    with ThreadPoolExecutor(_ADD_THREADS) as pool:
        entries = list(pool.map(add, range(count)))
    store.flush()
    return entries
