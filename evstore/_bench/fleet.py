"""The fleet figure: several stores shipping at once into one PostgreSQL.

Each store gets its own ``evstore ship`` process in follow mode, as on a fleet of nodes, all
into one throwaway local server (fsync on). Two things are measured, each ``repeats`` times
on a fresh database:

- **ingest**: events per second the database takes while every shipper works through its
  store's backlog, from the first row seen to the last;
- **end-to-end lag**: writers then add events to every store at a steady rate (acknowledged
  ``update_sync``), and a poller notes when each event's row becomes visible in PostgreSQL;
  lag is that moment minus the time the event was written (its ``time`` column), so it
  includes the shipper's polling of the log. Median and 99th percentile over all events.

There is no baseline: containerd has nothing like it, so the rows show "—" for it.
"""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._bench.config import BenchConfig, Steps
from evstore._bench.result import Measure
from evstore._bench.workload import bump_pid, container_id, created_status, scratch, start
from evstore._core.errors import BenchError
from evstore._core.extras import install_hint, missing
from evstore._fleet.pgserver import PgServer, create_database, find_bindir, throwaway_server
from evstore._store.entries import Entry

if TYPE_CHECKING:
    import psycopg  # the fleet extra, imported where a run needs it

CONTAINERS = 100  # per store; the backlog and the live events are spread over them
BACKLOG_PER_SECOND = 5_000  # backlog events per store for each second of ``cfg.seconds``
RATE = 250.0  # events/s written to each store while lag is measured
POLL = 0.01  # seconds between the poller's looks at the database
TIMEOUT = 300.0  # seconds to wait for the shippers to catch up before giving up
NS = 1_000_000_000

CEntry = Entry[ContainerStatus, ContainerMetadata]


@dataclass(frozen=True)
class FleetConfig:
    stores: int = 8
    backlog: int = 5_000  # events in each store before its shipper starts
    rate: float = RATE
    seconds: float = 1.0  # how long the writers write while lag is measured
    repeats: int = 1
    batch: int = 1_000

    @classmethod
    def of(cls, cfg: BenchConfig) -> FleetConfig:
        return cls(
            stores=cfg.fleet_stores, backlog=max(CONTAINERS, int(BACKLOG_PER_SECOND * cfg.seconds)),
            seconds=cfg.seconds, repeats=cfg.fleet_repeats or cfg.repeats,
        )


@dataclass
class FleetRun:
    """One repeat's figures."""

    ingest: float  # events/s
    lags: list[float]  # seconds, one per live event
    events: int  # in the database at the end, all nodes
    exact: bool  # every node's rows are exactly its store's positions 1..last

    @property
    def p50(self) -> float:
        return statistics.median(self.lags)

    @property
    def p99(self) -> float:
        return percentile(self.lags, 99)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile, interpolated between the nearest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def skipped_note() -> str | None:
    """Why the fleet rows cannot be measured here, or None when they can."""
    if missing("fleet"):
        return f"fleet skipped: needs the fleet extra: {install_hint('fleet')}"
    if find_bindir() is None:
        return "fleet skipped: no PostgreSQL server binaries (apt-get install postgresql)"
    return None


def count_fleet_steps(cfg: BenchConfig) -> int:
    """Progress steps of ``fleet_measures``: the stores built, then one per repeat."""
    runs = cfg.fleet_repeats or cfg.repeats
    return 1 + runs if cfg.fleet_stores and skipped_note() is None else 0


def fleet_measures(
    cfg: BenchConfig, work: Path, step: Steps, note: Callable[[str], None]
) -> list[Measure]:
    """The fleet rows, or a note saying why there are none."""
    if not cfg.fleet_stores:
        return []
    if (why := skipped_note()) is not None:
        note(why)
        return []
    fleet = FleetConfig.of(cfg)
    with throwaway_server(fsync=True) as server, scratch(work / "fleet") as directory:
        runs = measure_fleet(fleet, server, directory, step)
        version = server_version(server)
    return fleet_rows(fleet, runs, version)


def fleet_rows(fleet: FleetConfig, runs: Sequence[FleetRun], version: str) -> list[Measure]:
    detail = {
        "stores": fleet.stores, "backlog_per_store": fleet.backlog, "batch": fleet.batch,
        "write_rate_per_store": fleet.rate, "write_seconds": fleet.seconds,
        "live_events": [len(r.lags) for r in runs], "events": [r.events for r in runs],
        "exact": all(r.exact for r in runs), "postgresql": version, "fsync": True,
        "baseline": "none (containerd ships nothing)",
    }
    n = fleet.stores
    written = f"{fleet.rate * n:,.0f} events/s written"
    return [
        no_baseline(f"fleet_ingest_{n}", f"fleet: events/s into one PostgreSQL, {n} shippers",
                    "ops/s", [r.ingest for r in runs], detail),
        no_baseline(f"fleet_lag_p50_{n}", f"fleet: end-to-end lag, median ({written})", "s",
                    [r.p50 for r in runs], detail),
        no_baseline(f"fleet_lag_p99_{n}", f"fleet: end-to-end lag, p99 ({written})", "s",
                    [r.p99 for r in runs], detail),
    ]


def no_baseline(
    name: str, description: str, unit: str, samples: Sequence[float], detail: dict[str, Any]
) -> Measure:
    """A figure with nothing to compare against: baseline and ratio are NaN."""
    return Measure(
        name=name, description=description, unit=unit,
        better="higher" if unit == "ops/s" else "lower",
        evstore=statistics.median(samples), baseline=math.nan, ratio=math.nan,
        evstore_samples=list(samples), baseline_samples=[], detail=dict(detail),
    )


def server_version(server: PgServer) -> str:
    import psycopg

    with psycopg.connect(server.dsn()) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]) if row else "unknown"


# --- the run ----------------------------------------------------------------------------------


def measure_fleet(
    fleet: FleetConfig, server: PgServer, directory: Path, step: Steps | None = None
) -> list[FleetRun]:
    """Build the stores once; then, each repeat, ship them all into a fresh database."""
    with ExitStack() as stack:
        stores = [
            stack.enter_context(evstore.open(directory / f"node-{i}"))
            for i in range(fleet.stores)
        ]
        entries = [build_backlog(store, fleet.backlog) for store in stores]
        if step is not None:
            step(f"fleet: {fleet.stores} stores of {fleet.backlog:,} events")
        runs = []
        for repeat in range(fleet.repeats):
            dsn = create_database(server, f"fleet_{repeat}")
            runs.append(one_run(fleet, dsn, directory, stores, entries))
            if step is not None:
                step(f"fleet: {fleet.stores} stores shipped into PostgreSQL")
        return runs


def build_backlog(store: evstore.Store, events: int) -> list[CEntry]:
    """``CONTAINERS`` containers, then updates round-robin up to ``events`` events."""
    entries = [
        store.containers.add(ContainerMetadata(container_id(i)), created_status(i))
        for i in range(CONTAINERS)
    ]
    for n in range(events - CONTAINERS):
        entries[n % CONTAINERS].status.update(start if n < CONTAINERS else bump_pid)
    store.flush()
    return entries


def one_run(
    fleet: FleetConfig, dsn: str, directory: Path, stores: Sequence[evstore.Store],
    entries: Sequence[list[CEntry]],
) -> FleetRun:
    import psycopg

    nodes = [f"node-{i}" for i in range(len(stores))]
    with psycopg.connect(dsn, autocommit=True) as conn, shippers(fleet, dsn, directory, nodes):
        backlog = sum(store.last_position for store in stores)
        ingest = time_ingest(conn, backlog)
        rows = conn.execute("select node, max(position) from evstore_events group by node")
        seen: dict[str, int] = {node: position for node, position in rows.fetchall()}
        stop = threading.Event()
        t0 = time.time_ns()
        writers = [
            threading.Thread(target=write_steadily, args=(mine, fleet.rate, fleet.seconds, stop))
            for mine in entries
        ]
        for writer in writers:
            writer.start()
        try:
            lags = watch_lag(conn, nodes, stores, writers, seen, t0)
        finally:
            stop.set()
            for writer in writers:
                writer.join()
        exact, events = check_exact(conn, nodes, stores)
    return FleetRun(ingest, lags, events, exact)


@contextmanager
def shippers(fleet: FleetConfig, dsn: str, directory: Path, nodes: Sequence[str]) -> Iterator[None]:
    """One ``evstore ship`` follower per node, stopped with SIGTERM (which must end them
    cleanly) when the block ends."""
    package_parent = str(Path(evstore.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    with ExitStack() as stack:
        children: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        for node in nodes:
            log = stack.enter_context(open(directory / f"{node}.log", "wb"))
            argv = [
                sys.executable, "-m", "evstore", "ship", str(directory / node),
                "--dsn", dsn, "--node", node, "--batch", str(fleet.batch),
            ]
            children.append((subprocess.Popen(argv, stdout=log, stderr=log, env=env), log))
        try:
            yield
        finally:
            for child, _log in children:
                child.send_signal(signal.SIGTERM)
            failed = [child.args for child, _log in children if child.wait(60) != 0]
        if failed:
            raise BenchError(f"a shipper did not stop cleanly; see {directory}/*.log")


def time_ingest(conn: psycopg.Connection[Any], total: int) -> float:
    """Events/s from the first row seen to the last of ``total``."""
    first_at = first_count = None
    deadline = time.monotonic() + TIMEOUT
    while True:
        now = time.perf_counter()
        shipped = count_events(conn)
        if shipped and first_at is None:
            first_at, first_count = now, shipped
        if shipped >= total and first_at is not None and first_count is not None:
            return (total - first_count) / (now - first_at) if now > first_at else math.inf
        if time.monotonic() > deadline:
            raise BenchError(f"fleet: only {shipped:,} of {total:,} events shipped")
        time.sleep(POLL)


def count_events(conn: psycopg.Connection[Any]) -> int:
    """Rows in ``evstore_events`` (0 before the first shipper made the table)."""
    row = conn.execute("select to_regclass('evstore_events') is not null").fetchone()
    if not (row and row[0]):
        return 0
    row = conn.execute("select count(*) from evstore_events").fetchone()
    return int(row[0]) if row else 0


def write_steadily(
    entries: Sequence[CEntry], rate: float, seconds: float, stop: threading.Event
) -> None:
    """Durable updates at ``rate`` per second for ``seconds``, round-robin."""
    t0 = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = t0 + n / rate - time.perf_counter()
        if delay > 0 and stop.wait(delay):
            return
        entries[n % len(entries)].status.update_sync(bump_pid)


def watch_lag(
    conn: psycopg.Connection[Any], nodes: Sequence[str], stores: Sequence[evstore.Store],
    writers: Sequence[threading.Thread], seen: dict[str, int], since: int,
) -> list[float]:
    """Until the writers are done and every node has caught up with its store: the lag of
    each event written after ``since`` (ns), as the moment its row was first seen after the
    positions in ``seen`` (node: the last position seen before the writers started)."""
    lags: list[float] = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        looked_at = time.time_ns()
        rows = conn.execute(
            """select e.node, e.position, e.time from evstore_events e
               join unnest(%s::text[], %s::bigint[]) as s(node, after)
               on e.node = s.node and e.position > s.after""",
            (list(nodes), [seen.get(node, 0) for node in nodes]),
        ).fetchall()
        for node, position, written in rows:
            seen[node] = max(seen.get(node, 0), position)
            if written >= since:
                lags.append(max(0, looked_at - written) / NS)
        writing = any(writer.is_alive() for writer in writers)
        behind = [n for n, s in zip(nodes, stores, strict=True) if seen.get(n, 0) < s.last_position]
        if not writing and not behind:
            return lags
        if time.monotonic() > deadline:
            raise BenchError("fleet: the shippers did not catch up with the writers")
        time.sleep(POLL)


def check_exact(
    conn: psycopg.Connection[Any], nodes: Sequence[str], stores: Sequence[evstore.Store]
) -> tuple[bool, int]:
    """Whether each node holds exactly positions 1..last of its store; the events in all."""
    rows = dict(
        (node, (count, low, high))
        for node, count, low, high in conn.execute(
            "select node, count(*), min(position), max(position) from evstore_events group by node"
        ).fetchall()
    )
    exact = all(
        rows.get(node) == (store.last_position, 1, store.last_position)
        for node, store in zip(nodes, stores, strict=True)
    )
    return exact, sum(count for count, _low, _high in rows.values())
