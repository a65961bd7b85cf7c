"""The PostgreSQL fleet's commands: ``ship`` a store's log to the fleet database, and
``fleet ls`` / ``fleet history`` to ask it without writing SQL. Each needs the fleet extra,
named in one line when it is missing."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

import evstore
from evstore._cli.options import DSN_OPTION, JSON_FLAG, STORE_PATH
from evstore._cli.output import echo_json, plural, progress_bar
from evstore._core.extras import require
from evstore._core.states import STATE_NAMES

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from evstore._fleet.database import FleetEntry
    from evstore._fleet.shipping import Hooks


@click.command()
@STORE_PATH
@DSN_OPTION
@click.option("--node", required=True, help="This node's name in the fleet database.")
@click.option("--once", is_flag=True, help="Exit once the database holds the whole log.")
@click.option(
    "--batch", type=click.IntRange(min=1), default=None,
    help="Events per PostgreSQL transaction (default 1,000).",
)
def ship(path: Path, dsn: str, node: str, once: bool, batch: int | None) -> None:
    """Ship every event of the store at PATH to PostgreSQL, as NODE, exactly once.

    Each batch, with the current-state rows it changes, is one transaction, and a run
    resumes from what the database holds for NODE: kill it at any moment and run it again.
    Without --once it follows new events until SIGINT or SIGTERM and waits out database
    restarts. Logs a line per batch on stderr; reads beside a running writer.
    """
    require("fleet", "evstore ship")
    from evstore._fleet.shipping import BATCH, ShipOptions, ship_store

    stop = threading.Event()
    with evstore.open(path, readonly=True) as store, stop_on_signals(stop):
        total = store.last_position
        # the bar is for --once; a follower only logs
        with progress_bar("shipping", total, 1_000 if once else total + 1) as (bar, task):
            hooks = ship_log(node, bar, task)
            options = ShipOptions(batch or BATCH, follow=not once, stop=stop, hooks=hooks)
            report = ship_store(store, dsn, node, options)
    summary = (
        f"{node}: shipped {plural(report.shipped, 'event')};"
        f" the database is at position {report.position:,}"
    )
    if once and not report.caught_up:
        click.echo(f"interrupted: {summary}; run again to resume", err=True)
        raise SystemExit(130)
    click.echo(summary)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of killing, so the batch in flight finishes."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ship_log(node: str, bar: Progress, task: TaskID) -> Hooks:
    """A line on stderr per batch and per retry, above the bar (when there is one). Built
    here, not at module level, because ``Hooks`` comes with the shipper and PostgreSQL."""
    from evstore._fleet.shipping import BatchReport, Hooks

    class ShipLog(Hooks):
        """A line on stderr per batch and per retry, above the bar (when there is one)."""

        def __init__(self, node: str, bar: Progress, task: TaskID) -> None:
            self.node = node
            self.bar = bar
            self.task = task

        def say(self, line: str) -> None:
            self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

        def started(self, position: int, store_position: int) -> None:
            self.bar.update(self.task, completed=position)
            self.say(
                f"{self.node}: resuming after position {position:,};"
                f" the store is at {store_position:,}"
            )

        def batch(self, report: BatchReport) -> None:
            self.bar.update(self.task, completed=report.position)
            span = (
                f"positions {report.first:,}-{report.position:,}" if report.events > 1
                else f"position {report.first:,}"
            )
            self.say(
                f"{self.node}: shipped {plural(report.events, 'event')} ({span},"
                f" {report.shipped:,} in all); lag {plural(report.lag_events, 'event')},"
                f" {report.lag_seconds:,.3f} s"
            )

        def retry(self, reason: str, delay: float) -> None:
            self.say(f"{self.node}: PostgreSQL unavailable ({reason}); retrying in {delay:.1f} s")

    return ShipLog(node, bar, task)


@click.group()
def fleet() -> None:
    """Ask the fleet database that 'evstore ship' fills, without writing SQL."""


@fleet.command(name="ls")
@DSN_OPTION
@click.option("--node", help="Only this node's entries.")
@click.option(
    "--state", type=click.Choice(STATE_NAMES, case_sensitive=False), help="Only this state."
)
@JSON_FLAG
def fleet_ls(dsn: str, node: str | None, state: str | None, as_json: bool) -> None:
    """List the live containers and sandboxes of every node (as of what was shipped).

    --json prints an array of objects with node, id, entity, state, pid, exit_code,
    created_at, the whole status and the position of the entry's last event.
    """
    require("fleet", "evstore fleet ls")
    from evstore._cli.render import entry_object
    from evstore._fleet.database import list_current, reading

    with reading(dsn) as conn:
        found = list_current(conn, node, state.lower() if state else None)
    if as_json:
        echo_json([
            {"node": row.node, **entry_object(row.state), "position": row.position}
            for row in found
        ])
    else:
        click.echo(fleet_table(found, time.time_ns()))


def fleet_table(found: Iterable[FleetEntry], now: int) -> str:
    from evstore._cli import render

    rows = (
        (
            row.node, row.state.id, row.state.entity, render.state_name(row.state.status).upper(),
            str(row.state.status.pid), str(render.exit_code(row.state.status)),
            render.format_age(row.state.status.created_at, now),
        )
        for row in found
    )
    return render.columns(("node", "id", "entity", "state", "pid", "exit code", "age"), rows, 3)


@fleet.command(name="history")
@DSN_OPTION
@click.argument("node")
@click.argument("ident", metavar="ID")
@JSON_FLAG
def fleet_history(dsn: str, node: str, ident: str, as_json: bool) -> None:
    """Show every shipped event of container or sandbox ID on NODE, oldest first;
    --json prints an array of event objects (node, position, entity, id, seq, time,
    type, changes)."""
    require("fleet", "evstore fleet history")
    import msgspec

    from evstore._cli.render import events_table
    from evstore._fleet.database import node_history, node_ids, reading
    from evstore._history.ids import choose

    with reading(dsn) as conn:
        ident = choose(ident, node_ids(conn, node, ident), f"id shipped from node {node!r}")
        events = node_history(conn, node, ident)
    if as_json:
        echo_json([{"node": node, **msgspec.structs.asdict(event)} for event in events])
    else:
        click.echo(f"{events[0].entity} {ident} on {node}: {len(events):,} event(s)")
        click.echo(events_table(events))
