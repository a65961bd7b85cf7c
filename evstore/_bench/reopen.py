"""The reopen rows: a store built once by a child killed with SIGKILL, reopened as the kill
left it and after a clean close, against the file checkpoint's load; and its disk use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._bench.baseline import FileCheckpoint, write_status_file
from evstore._bench.config import BenchConfig, Steps
from evstore._bench.result import Measure, make_measure
from evstore._bench.workload import (
    CEntry,
    bump_pid,
    container_id,
    created_status,
    final_status,
    round_pairs,
    scratch,
    start,
)
from evstore._core.errors import BenchError

# adds in flight while building a reopen store: each add is durable, so the more share a
# commit, the fewer fsyncs (100,000 adds: ~400 commits instead of ~3,000 with 32)
_BUILD_ADD_THREADS = 256


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
    "import sys; from evstore._bench.reopen import killed_child; killed_child(*sys.argv[1:])"
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
    """``reopen`` against ``FileCheckpoint.load`` of the fixture's files, alternating, in
    ``repeats`` rounds of ``round_seconds`` (``round_pairs``)."""
    ev: list[float] = []
    base: list[float] = []
    reports: list[dict[str, Any]] = []
    exact = True
    for _ in range(cfg.repeats):
        for _pair in round_pairs(cfg.round_seconds):
            seconds, report, same = reopen()
            ev.append(seconds)
            reports.append(report)
            seconds, same_base = time_baseline_load(fixture)
            base.append(seconds)
            exact = exact and same and same_base
        step(f"evstore {label}, {fixture.size:,} containers")
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


def disk_usage(path: Path) -> int:
    """Bytes allocated (``st_blocks * 512``) to ``path`` and everything under it, like ``du``."""
    total = path.lstat().st_blocks * 512
    for parent, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            total += os.lstat(os.path.join(parent, name)).st_blocks * 512
    return total
