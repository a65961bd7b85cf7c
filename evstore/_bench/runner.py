"""The whole run: every row, evstore against containerd's file checkpoint, in one process, on
one disk.

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
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from evstore._bench.async_tasks import measure_async
from evstore._bench.config import BenchConfig, Progress, Steps
from evstore._bench.fleet import count_fleet_steps, fleet_measures
from evstore._bench.operator import count_operator_steps, operator_measures
from evstore._bench.peer import count_peer_steps, peer_measures
from evstore._bench.reopen import (
    build_reopen,
    measure_disk,
    measure_killed_reopen,
    measure_reopen,
)
from evstore._bench.result import BenchResult, Measure, reopen_growth
from evstore._bench.targets import checks
from evstore._bench.throughput import (
    measure_get_loaded,
    measure_handoff,
    measure_update,
    measure_update_sync,
)
from evstore._bench.workload import work_directory


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
    fleet = count_fleet_steps(cfg) + count_operator_steps(cfg)
    sizes = per_size * len(cfg.reopen_sizes)
    return handoff + pairs + evstore_only + sizes + count_peer_steps(cfg) + fleet


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
        measures.extend(operator_measures(cfg, work, step, notes.append))
        measures.extend(peer_measures(cfg, work, measures, step, notes.append))
        measures.extend(fleet_measures(cfg, work, step, notes.append))
    return BenchResult(
        _config_dict(cfg), env, measures, time.perf_counter() - t0, notes,
        reopen_growth(measures), checks(measures),
    )


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
