"""The peer: the ``eventsourcing`` library (SQLite persistence) doing the same durable updates.

Optional (the ``peer`` extra), so that users see where a general event-sourcing
framework lands next to evstore and the file checkpoint. One ``Container`` aggregate per
container holds the same status as plain data; an update loads it from the application's
repository, bumps its pid (one event) and saves it: one committed SQLite transaction.

The repository keeps every aggregate in memory (``AGGREGATE_CACHE_MAXSIZE``, no fast-forward:
one process writes), as evstore and the file checkpoint do, so an update does not replay the
aggregate's events from the database. Rows are ratios against the baseline samples of the
same run, like evstore's.
"""

from __future__ import annotations

import functools
import importlib.util
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from evstore import ContainerStatus
from evstore._bench.config import BenchConfig, Steps
from evstore._bench.result import Measure, make_measure
from evstore._bench.workload import (
    Op,
    container_id,
    created_status,
    final_status,
    partition,
    scratch,
    start,
    throughput,
)
from evstore._core.extras import install_hint

LABEL = "eventsourcing (SQLite)"
MODULE = "eventsourcing"
_SAVE_BATCH = 100  # aggregates saved per transaction when building (not timed)
_SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def available() -> bool:
    """Whether the ``eventsourcing`` library can be imported."""
    return importlib.util.find_spec(MODULE) is not None


def skipped_note() -> str:
    return f"peer skipped: {install_hint('peer')}"


def count_peer_steps(cfg: BenchConfig) -> int:
    """How many progress steps ``peer_measures`` takes (0 when the peer is not run)."""
    if not (cfg.peer and available()):
        return 0
    return len(_writers(cfg)) * cfg.repeats + len(_reopen_sizes(cfg)) * (1 + cfg.repeats)


def _writers(cfg: BenchConfig) -> list[int]:
    """1 and the peer thread counts that the baseline was also measured with in this run."""
    return [1, *(n for n in cfg.peer_threads if n in cfg.threads and n != 1)]


def _reopen_sizes(cfg: BenchConfig) -> list[int]:
    """Peer reopen sizes that also have a baseline load in this run to compare with."""
    return [n for n in cfg.peer_reopen_sizes if n in cfg.reopen_sizes]


# --- the application --------------------------------------------------------------------------


@functools.cache
def _classes() -> tuple[Any, Any]:
    """The ``Containers`` application and ``Container`` aggregate, defined on first use so
    that this module imports without the library."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Container(Aggregate):
        """One container: its status as plain data, changed only by events."""

        @staticmethod
        def create_id(cid: str) -> uuid.UUID:
            return uuid.uuid5(uuid.NAMESPACE_URL, cid)

        @event("Created")
        def __init__(self, cid: str, status: dict[str, Any]) -> None:
            self.cid = cid
            self.status = status

        @event("Started")
        def start(self, pid: int, started_at: int) -> None:
            self.status["pid"] = pid
            self.status["started_at"] = started_at

        @event("PidBumped")
        def bump_pid(self) -> None:
            self.status["pid"] += 1

    class Containers(Application[uuid.UUID]):
        """Holds the containers; persistence and cache come from the environment."""

    return Containers, Container


def _environment(db: Path, containers: int) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(db),
        "AGGREGATE_CACHE_MAXSIZE": str(containers),
        "AGGREGATE_CACHE_FASTFORWARD": "n",
    }


@contextmanager
def application(db: Path, containers: int) -> Iterator[Any]:
    """A ``Containers`` application on the SQLite file ``db``, caching ``containers``
    aggregates; closed afterwards."""
    app_class, _ = _classes()
    app = app_class(env=_environment(db, containers))
    try:
        yield app
    finally:
        app.close()


def _new_container(i: int) -> Any:
    """Container ``i`` created and started in memory (its events not saved yet)."""
    _, container_class = _classes()
    created = created_status(i)
    started = start(created)
    container = container_class(cid=container_id(i), status=msgspec.to_builtins(created))
    container.start(pid=started.pid, started_at=started.started_at)
    return container


def _save_all(app: Any, containers: Sequence[Any]) -> None:
    for i in range(0, len(containers), _SAVE_BATCH):
        app.save(*containers[i : i + _SAVE_BATCH])


def durability(app: Any) -> dict[str, str]:
    """The SQLite journal mode and ``synchronous`` setting the library's connections use."""
    with app.factory.datastore.transaction(commit=False) as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal = str(cursor.fetchone()[0]).upper()
        cursor.execute("PRAGMA synchronous")
        synchronous = _SYNCHRONOUS.get(int(cursor.fetchone()[0]), "unknown")
    return {"journal_mode": journal, "synchronous": synchronous}


def durability_note(settings: dict[str, str]) -> str:
    """Whether a committed update is on disk, as after the baseline's fsync."""
    mode = f"journal_mode={settings['journal_mode']}, synchronous={settings['synchronous']}"
    if settings["synchronous"] in ("FULL", "EXTRA"):
        return f"one committed SQLite transaction per update; {mode}: fsync'd at every commit"
    return (
        f"one committed SQLite transaction per update; {mode}: commits are NOT fsync'd one by "
        "one, so this is less durable than the baseline"
    )


# --- the measures -----------------------------------------------------------------------------


def _ops(app: Any, ids: Sequence[uuid.UUID], writers: int) -> list[Op]:
    def op_for(mine: list[uuid.UUID]) -> Op:
        k = len(mine)

        def bump(n: int) -> None:
            container = app.repository.get(mine[n % k])
            container.bump_pid()
            app.save(container)

        return bump

    return [op_for(mine) for mine in partition(ids, writers)]


def peer_rate(cfg: BenchConfig, path: Path, writers: int) -> tuple[float, dict[str, str]]:
    """update_sync-equivalent/s with ``writers`` threads, on a fresh database of started
    containers; and the durability settings it ran with."""
    count = max(cfg.pool, writers)
    with scratch(path), application(path / "peer.sqlite", count) as app:
        containers = [_new_container(i) for i in range(count)]
        _save_all(app, containers)
        settings = durability(app)
        return throughput(_ops(app, [c.id for c in containers], writers), cfg.seconds), settings


def measure_peer_update_sync(
    cfg: BenchConfig, work: Path, writers: int, base: Measure, step: Steps
) -> Measure:
    """The peer's rate against the baseline samples of ``update_sync_<writers>``."""
    label = f"{writers} writer" + ("s" if writers > 1 else "")
    rates: list[float] = []
    settings: dict[str, str] = {}
    for _ in range(cfg.repeats):
        rate, settings = peer_rate(cfg, work / "peer-rate", writers)
        rates.append(rate)
        step(f"{LABEL} update, {label}")
    return make_measure(
        f"peer_update_sync_{writers}", f"{LABEL}: durable update/s, {label}", "ops/s", rates,
        base.baseline_samples,
        {"writers": writers, "containers": max(cfg.pool, writers), **settings,
         "note": durability_note(settings),
         "baseline": f"file checkpoint samples of {base.name} (same run)"},
        subject=LABEL,
    )


def build_peer_store(db: Path, size: int, events: int) -> float:
    """``size`` containers with ``events`` events each (the created one included), saved
    ``_SAVE_BATCH`` aggregates per transaction; the seconds it took."""
    t0 = time.perf_counter()
    with application(db, 1) as app:
        for first in range(0, size, _SAVE_BATCH):
            batch = [_new_container(i) for i in range(first, min(size, first + _SAVE_BATCH))]
            for container in batch:
                for _ in range(events - 2):
                    container.bump_pid()
            app.save(*batch)
    return time.perf_counter() - t0


def time_peer_reopen(db: Path, size: int, events: int) -> tuple[float, bool]:
    """Seconds to start the application and load every container; whether each loaded the
    status that was written."""
    _, container_class = _classes()
    ids = [container_class.create_id(container_id(i)) for i in range(size)]
    t0 = time.perf_counter()
    with application(db, size) as app:
        loaded = [app.repository.get(ident) for ident in ids]
        seconds = time.perf_counter() - t0
    same = all(
        msgspec.convert(c.status, ContainerStatus) == final_status(i, events)
        for i, c in enumerate(loaded)
    )
    return seconds, same


def measure_peer_reopen(
    cfg: BenchConfig, work: Path, size: int, base: Measure, step: Steps
) -> Measure:
    """The peer's restart (every aggregate loaded) against the baseline load samples of
    ``reopen_<size>``."""
    with scratch(work / f"peer-reopen-{size}") as path:
        db = path / "peer.sqlite"
        build_seconds = build_peer_store(db, size, cfg.events)
        step(f"{LABEL}: built {size:,} containers x {cfg.events} events")
        samples: list[float] = []
        exact = True
        for _ in range(cfg.repeats):
            seconds, same = time_peer_reopen(db, size, cfg.events)
            samples.append(seconds)
            exact = exact and same
            step(f"{LABEL} reopen, {size:,} containers")
    return make_measure(
        f"peer_reopen_{size}", f"{LABEL}: reopen, {size:,} containers x {cfg.events} events",
        "s", samples, base.baseline_samples,
        {"statuses_match": exact, "build_seconds": build_seconds,
         "note": "application started and every aggregate loaded from SQLite",
         "baseline": f"file checkpoint load samples of {base.name} (same run)"},
        subject=LABEL,
    )


def peer_measures(
    cfg: BenchConfig, work: Path, measures: Sequence[Measure], step: Steps,
    note: Callable[[str], None],
) -> list[Measure]:
    """The peer's rows, against the baseline samples already taken in this run; or a note
    saying why it was skipped."""
    if not cfg.peer:
        return []
    if not available():
        note(skipped_note())
        return []
    by_name = {m.name: m for m in measures}
    rows = [
        measure_peer_update_sync(cfg, work, n, by_name[f"update_sync_{n}"], step)
        for n in _writers(cfg)
    ]
    for size in _reopen_sizes(cfg):
        rows.append(measure_peer_reopen(cfg, work, size, by_name[f"reopen_{size}"], step))
    return rows
