"""``evstore ship``: every event of a store in PostgreSQL exactly once, with the current state
of each entry, against a real server (tests/pgserver.py); killed, rerun and restarted."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from damage import eno_of, event_key_of, flip_byte, rewrite

import evstore
from evstore import (
    ContainerMetadata,
    ContainerStatus,
    FleetError,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
)
from evstore._cli.render import state_name
from evstore._fleet.pgserver import PgServer, create_database
from evstore._fleet.shipping import BatchReport, Hooks, ShipOptions, ship
from evstore._history.replay import states_at
from evstore._ops.compact import compact

EVSTORE = str(Path(sys.executable).with_name("evstore"))


def replace(**fields: object) -> Any:
    return lambda s: msgspec.structs.replace(s, **fields)


def populate(store: evstore.Store, prefix: str, containers: int, bumps: int = 2) -> None:
    """Containers that start, change ``bumps`` times and exit (every third OOMKilled, every
    fourth then deleted), and a sandbox that goes ready then not ready."""
    entries = [
        store.containers.add(
            ContainerMetadata(id=f"{prefix}{n}"), ContainerStatus(created_at=n + 1)
        )
        for n in range(containers)
    ]
    for entry in entries:
        entry.status.update(replace(pid=100, started_at=5))
    for bump in range(bumps):
        for entry in entries:
            entry.status.update(replace(pid=101 + bump))
    for n, entry in enumerate(entries):
        exit_code, reason = (137, "OOMKilled") if n % 3 == 0 else (0, "Completed")
        entry.status.update(replace(finished_at=9, exit_code=exit_code, reason=reason))
    store.flush()
    for n, entry in enumerate(entries):
        if n % 4 == 0:
            store.containers.delete(entry.id)
    sandbox = store.sandboxes.add(SandboxMetadata(id=f"{prefix}sb"), SandboxStatus(created_at=3))
    sandbox.status.update_sync(replace(state=SandboxState.READY, pid=7))
    sandbox.status.update_sync(replace(state=SandboxState.NOTREADY))


def make_store(path: Path, prefix: str, containers: int, bumps: int = 2) -> Path:
    with evstore.open(path) as store:
        populate(store, prefix, containers, bumps)
    return path


def shipped_events(dsn: str, node: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select position, entity, id, seq, time, type, changes from evstore_events"
            " where node = %s order by position", (node,),
        ).fetchall()


def shipped_current(dsn: str, node: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select entity, id, state, status, position from evstore_current where node = %s",
            (node,),
        ).fetchall()
    return {(entity, ident): tuple(rest) for entity, ident, *rest in rows}


def count(dsn: str, node: str | None = None) -> int:
    """Events shipped (0 before the shipper made the tables)."""
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute(
                "select count(*) from evstore_events where %(n)s::text is null or node = %(n)s",
                {"n": node},
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    assert row is not None
    return int(row[0])


def assert_shipped(dsn: str, node: str, path: Path) -> None:
    """The database holds exactly the store's events for ``node`` (none twice, none missing)
    and, for every live entry, its state and status after the store's last event."""
    with evstore.open(path, readonly=True) as store:
        events = list(store.events())
        live = states_at(store, position=store.last_position) if events else []
    assert shipped_events(dsn, node) == [
        (e.position, e.entity, e.id, e.seq, e.time, e.type, e.changes) for e in events
    ]
    last = {(e.entity, e.id): e.position for e in events}
    assert shipped_current(dsn, node) == {
        (s.entity, s.id): (
            state_name(s.status), msgspec.to_builtins(s.status), last[s.entity, s.id]
        )
        for s in live
    }


def wait_for(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def evstore_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVSTORE, *map(str, args)], capture_output=True, text=True, timeout=120)


# --- shipping --------------------------------------------------------------------------------


def test_two_nodes_into_one_database(tmp_path: Path, pg_dsn: str) -> None:
    a = make_store(tmp_path / "a", "a", 12)
    b = make_store(tmp_path / "b", "b", 7, bumps=4)
    first = ship(a, pg_dsn, "node-a", ShipOptions(batch=10))
    second = ship(b, pg_dsn, "node-b")
    assert (first.resumed_from, first.shipped, first.caught_up) == (0, first.position, True)
    assert first.batches == -(-first.shipped // 10)
    assert (second.resumed_from, second.shipped) == (0, second.position)
    assert_shipped(pg_dsn, "node-a", a)
    assert_shipped(pg_dsn, "node-b", b)
    assert count(pg_dsn) == first.shipped + second.shipped
    # deleted containers have no current row; states are lowercase names
    current = shipped_current(pg_dsn, "node-a")
    assert ("container", "a0") not in current and ("container", "a4") not in current
    assert current["container", "a3"][:2] == (
        "exited", {"pid": 102, "created_at": 4, "started_at": 5, "finished_at": 9,
                   "exit_code": 137, "reason": "OOMKilled"},
    )
    assert current["sandbox", "asb"][0] == "notready"


def test_rerun_ships_nothing_twice(tmp_path: Path, pg_dsn: str) -> None:
    path = make_store(tmp_path / "s", "c", 5)
    first = ship(path, pg_dsn, "n1")
    again = ship(path, pg_dsn, "n1")
    assert (again.resumed_from, again.position, again.shipped, again.batches) == (
        first.position, first.position, 0, 0,
    )
    assert count(pg_dsn) == first.shipped
    assert_shipped(pg_dsn, "n1", path)


def test_new_events_ship_incrementally(tmp_path: Path, pg_dsn: str) -> None:
    path = make_store(tmp_path / "s", "c", 4)
    first = ship(path, pg_dsn, "n1")
    with evstore.open(path) as store:
        store.containers.get("c1").status.update_sync(replace(pid=555))  # exited: an update
        store.containers.delete("c2")
        store.containers.add(ContainerMetadata(id="c0"), ContainerStatus(created_at=77))
        sandbox = store.sandboxes.add(SandboxMetadata(id="s9"), SandboxStatus(created_at=8))
        sandbox.status.update_sync(replace(state=SandboxState.READY))
        added = store.last_position - first.position
    reports: list[BatchReport] = []

    class Record(Hooks):
        def batch(self, report: BatchReport) -> None:
            reports.append(report)

    second = ship(path, pg_dsn, "n1", ShipOptions(batch=2, hooks=Record()))
    assert (second.resumed_from, second.shipped) == (first.position, added)
    assert [(r.first, r.events) for r in reports] == [
        (first.position + 1, 2), (first.position + 3, 2), (first.position + 5, 1),
    ]
    assert reports[-1].lag_events == 0 and reports[-1].shipped == added
    assert all(r.committed_at >= r.times[-1] for r in reports)
    assert_shipped(pg_dsn, "n1", path)
    current = shipped_current(pg_dsn, "n1")
    assert current["container", "c0"][0:2] == ("created", {"created_at": 77})
    assert ("container", "c2") not in current
    assert current["sandbox", "s9"][0] == "ready"


def test_current_state_across_runs_matches_one_run_over_a_damaged_record(
    tmp_path: Path, pg_dsn: str
) -> None:
    """An unreadable record that a snapshot covers: the fleet table shows the entry as the
    store does (the snapshot ends the break in its fold), in the fold a rerun resumes from
    the database as in one uninterrupted run (a break the store shows: test_one_fold)."""
    path = tmp_path / "s"
    with evstore.open(path) as store:
        entry = store.containers.add(ContainerMetadata(id="d1"), ContainerStatus(created_at=1))
        entry.status.update_sync(replace(pid=9, started_at=2))
        entry.status.update_sync(replace(pid=10))
        store.containers.add(ContainerMetadata(id="ok"), ContainerStatus(created_at=1))
    rewrite(path, b"events", event_key_of(path, (eno_of(path, "d1"), 2)), flip_byte())
    ship(path, pg_dsn, "runs", ShipOptions(batch=1))
    assert shipped_current(pg_dsn, "runs")["container", "d1"][0] == "running"
    with evstore.open(path) as store:
        assert store.containers.get("d1").status.get().pid == 10
        store.containers.get("d1").status.update_sync(replace(finished_at=3, exit_code=1))
    ship(path, pg_dsn, "runs", ShipOptions(batch=1))
    ship(path, pg_dsn, "once")
    assert_shipped(pg_dsn, "runs", path)
    assert shipped_current(pg_dsn, "runs") == shipped_current(pg_dsn, "once")
    assert shipped_current(pg_dsn, "runs")["container", "d1"][0] == "exited"


def test_follow_ships_new_events_until_stopped(tmp_path: Path, pg_dsn: str) -> None:
    path = make_store(tmp_path / "s", "c", 3)
    stop = threading.Event()
    options = ShipOptions(follow=True, poll=0.02, stop=stop)
    with evstore.open(path) as store:
        result: list[Any] = []
        follower = threading.Thread(target=lambda: result.append(ship(path, pg_dsn, "n1", options)))
        follower.start()
        try:
            wait_for(lambda: count(pg_dsn) == store.last_position, what="the backlog")
            store.containers.add(ContainerMetadata(id="late"), ContainerStatus(created_at=5))
            wait_for(lambda: count(pg_dsn) == store.last_position, what="the new event")
        finally:
            stop.set()
            follower.join(30)
    assert not follower.is_alive()
    assert result[0].retries == 0
    assert_shipped(pg_dsn, "n1", path)


# --- errors ----------------------------------------------------------------------------------


def test_ship_refuses_bad_input(tmp_path: Path, pg_server: PgServer) -> None:
    path = make_store(tmp_path / "s", "c", 1)
    with pytest.raises(FleetError, match="invalid PostgreSQL DSN"):
        ship(path, "host=127.0.0.1 nonsense", "n1")
    with pytest.raises(FleetError, match="cannot connect to PostgreSQL"):
        ship(path, f"host=127.0.0.1 port={pg_server.port} dbname=missing user=postgres", "n1")
    with pytest.raises(evstore.InvalidInputError, match="node"):
        ship(path, pg_server.dsn(), " ")
    with pytest.raises(evstore.NotFoundError):
        ship(tmp_path / "nothing", pg_server.dsn(), "n1")


def test_cli_ship_errors_are_one_line(tmp_path: Path, pg_server: PgServer) -> None:
    path = make_store(tmp_path / "s", "c", 1)
    for args, message in [
        ((path, "--dsn", "host=127.0.0.1 port=1", "--node", "n", "--once"),
         "error: cannot connect to PostgreSQL: connection failed:"),
        ((path, "--dsn", "=x", "--node", "n", "--once"), "error: invalid PostgreSQL DSN:"),
        ((tmp_path / "none", "--dsn", pg_server.dsn(), "--node", "n", "--once"),
         f"error: {tmp_path / 'none'}: no evstore store there"),
    ]:
        result = evstore_cli("ship", *args)
        assert result.returncode == 1
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr


def test_ship_refuses_a_store_whose_unshipped_history_was_dropped(
    tmp_path: Path, pg_dsn: str
) -> None:
    path = make_store(tmp_path / "s", "c", 3)
    shipped = ship(path, pg_dsn, "shipped-first")
    compact(path, drop_before=time.time_ns())
    again = ship(path, pg_dsn, "shipped-first")  # nothing it lacks was dropped
    assert (again.resumed_from, again.shipped) == (shipped.position, 0)
    with pytest.raises(evstore.HistoryDroppedError, match="dropped by compaction"):
        ship(path, pg_dsn, "too-late")
    assert count(pg_dsn, "too-late") == 0


# --- killed, restarted -----------------------------------------------------------------------


def test_sigkill_mid_batch_then_rerun_leaves_exactly_the_store(tmp_path: Path, pg_dsn: str) -> None:
    path = make_store(tmp_path / "s", "c", 200, bumps=25)  # about 6,000 events
    with evstore.open(path, readonly=True) as store:
        total = store.last_position
    argv = [EVSTORE, "ship", path, "--dsn", pg_dsn, "--node", "n1", "--once", "--batch", "7"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as shipper:
        try:
            wait_for(lambda: count(pg_dsn) >= 300 or shipper.poll() is not None, what="rows")
        finally:
            shipper.send_signal(signal.SIGKILL)
        assert shipper.wait() == -signal.SIGKILL
    partial = count(pg_dsn)
    assert 300 <= partial < total
    with psycopg.connect(pg_dsn) as conn:  # whole batches only, from position 1 up
        row = conn.execute("select max(position), count(*) from evstore_events").fetchone()
    assert row == (partial, partial)

    result = evstore_cli("ship", path, "--dsn", pg_dsn, "--node", "n1", "--once", "--batch", "500")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"n1: shipped {total - partial:,} events;" \
        f" the database is at position {total:,}\n"
    lines = result.stderr.splitlines()
    assert lines[0] == f"n1: resuming after position {partial:,}; the store is at {total:,}"
    assert lines[1].startswith(
        f"n1: shipped 500 events (positions {partial + 1:,}-{partial + 500:,}, 500 in all);"
        f" lag {total - partial - 500:,} events, "
    )
    assert len(lines) == 1 + -(-(total - partial) // 500)
    assert_shipped(pg_dsn, "n1", path)


def test_follow_rides_out_a_postgres_restart(tmp_path: Path, own_pg_server: PgServer) -> None:
    dsn = create_database(own_pg_server, "fleet")
    path = make_store(tmp_path / "s", "c", 5)
    argv = [EVSTORE, "ship", path, "--dsn", dsn, "--node", "n1"]
    with evstore.open(path) as store, subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as shipper:
        try:
            wait_for(lambda: count(dsn) == store.last_position, what="the backlog")
            own_pg_server.stop()
            populate(store, "down", 3)  # written while the database is away
            time.sleep(0.5)  # long enough for the shipper to fail and back off
            own_pg_server.start()
            populate(store, "up", 3)
            wait_for(lambda: count(dsn) == store.last_position, what="the events after restart")
        finally:
            shipper.send_signal(signal.SIGTERM)
            out, err = shipper.communicate(timeout=30)
    assert shipper.returncode == 0, err
    assert "PostgreSQL unavailable" in err and "retrying in 0.1 s" in err
    with evstore.open(path, readonly=True) as store:
        assert out == f"n1: shipped {store.last_position:,} events;" \
            f" the database is at position {store.last_position:,}\n"
    assert_shipped(dsn, "n1", path)
