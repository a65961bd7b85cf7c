"""The commands that only read a store: ``ls``, ``pods``, ``history``, ``replay``, ``export``.

They open the store read-only, beside a running writer, and print a table (``render``) or,
with --json, JSON for programs.
"""

from __future__ import annotations

import sys
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import click

import evstore
from evstore._cli.options import JSON_FLAG, STORE_PATH, Parsed
from evstore._cli.output import echo_json, tracked
from evstore._core.times import format_time, parse_time

if TYPE_CHECKING:
    from evstore._history.replay import EntryState
    from evstore._views.pods import Pods


def show_entries(states: list[EntryState], as_json: bool, now: int, header: str | None) -> None:
    """A table (after ``header``, if any) or, with --json, a JSON array of entry objects."""
    from evstore._cli.render import entries_table, entry_object

    if as_json:
        echo_json([entry_object(state) for state in states])
        return
    if header is not None:
        click.echo(header)
    click.echo(entries_table(states, now))


@click.command(name="ls")
@STORE_PATH
@JSON_FLAG
def ls(path: Path, as_json: bool) -> None:
    """List the containers and sandboxes of the store at PATH.

    Shows each one's state, pid, exit code and age; --json prints an array of objects with
    id, entity, state, pid, exit_code, created_at and the whole status. Reads beside a
    running writer.
    """
    from evstore._history.replay import EntryState

    with evstore.open(path, readonly=True) as store:
        states = [
            EntryState(entity, entry.id, entry.status.get())
            for entity, entries in (("container", store.containers), ("sandbox", store.sandboxes))
            for entry in entries.list()
        ]
    states.sort(key=lambda state: (state.entity, state.id))
    show_entries(states, as_json, time.time_ns(), None)


@click.command()
@STORE_PATH
@click.argument("ident", metavar="ID")
@JSON_FLAG
def history(path: Path, ident: str, as_json: bool) -> None:
    """Show every event of container or sandbox ID, across its incarnations, deleted ones
    included; --json prints an array of event objects."""
    from evstore._cli.render import events_table
    from evstore._history.replay import dropped_events

    with evstore.open(path, readonly=True) as store:
        ident = store.resolve_id(ident)
        events = store.history(ident)
        dropped = dropped_events(store, ident)
    if as_json:
        echo_json(events)
        return
    entity = f"{events[0].entity} " if events else ""
    click.echo(f"{entity}{ident}: {len(events):,} event(s)")
    if dropped:
        click.echo(f"(events 1..{dropped} dropped by compaction)")
    if events:
        click.echo(events_table(events))


@click.command()
@STORE_PATH
@click.option(
    "--time", "at_time", type=Parsed("TIME", parse_time),
    help="Wall-clock time: Unix nanoseconds, or ISO 8601 (UTC unless it has an offset).",
)
@click.option("--position", type=click.IntRange(min=0), help="Global log position.")
@JSON_FLAG
def replay(path: Path, at_time: int | None, position: int | None, as_json: bool) -> None:
    """Show every entry live at a point of the log, with its status there.

    Give exactly one of --time and --position. The table's ages are as of that point.
    """
    if (at_time is None) == (position is None):
        raise click.UsageError("give exactly one of --time and --position")
    from evstore._history.replay import feed_start, replay_feed

    with evstore.open(path, readonly=True) as store:
        last = store.last_position
        total = min(last, position) if position is not None else last
        with closing(tracked(store.events(), "replaying", total)) as feed:  # ends the bar
            states, point = replay_feed(feed, position, at_time, feed_start(store))
    when = at_time if at_time is not None else point.time
    header = f"at position {point.position}, {format_time(when)}: {len(states):,} entries"
    show_entries(states, as_json, when, header)


@click.command()
@STORE_PATH
@click.option(
    "--since", type=click.IntRange(min=0), default=0, show_default=True,
    help="Only events after this position.",
)
def export(path: Path, since: int) -> None:
    """Stream the events after --since as JSON lines, one event object a line, in order."""
    import msgspec

    out = sys.stdout.buffer
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    with evstore.open(path, readonly=True) as store:
        total = store.last_position
        for event in tracked(store.events(since), "exporting", total):
            encoder.encode_into(event, buffer, len(buffer))
            buffer += b"\n"
            if len(buffer) >= 1 << 16:
                out.write(buffer)
                buffer.clear()
    out.write(buffer)
    out.flush()


@click.command()
@STORE_PATH
@click.option(
    "--all", "show_all", is_flag=True, help="Every live container and sandbox, in any state."
)
@JSON_FLAG
def pods(path: Path, show_all: bool, as_json: bool) -> None:
    """Show the store at PATH as the kubelet sees it: containers and sandboxes in pods.

    Without --all only running containers and ready sandboxes; --json prints an array of
    pod objects (id, name, namespace, created_at, containers, sandboxes). Reads beside a
    running writer.
    """
    with evstore.open(path, readonly=True) as store:
        found = store.pods(all=show_all)
    if as_json:
        echo_json(list(found))
    elif not found:
        click.echo("no pods (only entries with a kubelet config belong to pods)")
    else:
        click.echo(pods_table(found))


def pods_table(found: Pods) -> str:
    """One row per sandbox and container, in the columns ``ls`` prints and with its state
    names (the kubelet's view, and ``--json``, show a ready sandbox as running)."""
    from evstore._cli.render import columns
    from evstore._views.pods import SANDBOX_STATES

    sandbox_state = {kubelet: state.name for state, kubelet in SANDBOX_STATES.items()}
    rows: list[tuple[str, ...]] = []
    for pod in found:
        head = (pod.name, pod.namespace, pod.id)
        rows += [
            (*head, "sandbox", s.id, s.name, s.image or "-", sandbox_state[s.state])
            for s in pod.sandboxes
        ]
        rows += [
            (*head, "container", c.id, c.name, c.image or "-", c.state.upper())
            for c in pod.containers
        ]
    return columns(("pod", "namespace", "uid", "kind", "id", "name", "image", "state"), rows)
