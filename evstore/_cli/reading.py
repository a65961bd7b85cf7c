"""The commands that only read a store: ``ls``, ``pods``, ``history``, ``replay``, ``export``.

They open the store read-only, beside a running writer, and print a table (``render``) or,
with --json, JSON for programs; what ``ls``, ``pods`` and ``history`` do is in ``lookups``,
which the quick lane calls too.
"""

from __future__ import annotations

import sys
from contextlib import closing
from pathlib import Path

import click

import evstore
from evstore._cli import lookups
from evstore._cli.options import JSON_FLAG, STORE_PATH, Parsed
from evstore._cli.output import tracked
from evstore._core.times import format_time, parse_time


@click.command(name="ls")
@STORE_PATH
@JSON_FLAG
def ls(path: Path, as_json: bool) -> None:
    """List the containers and sandboxes of the store at PATH.

    Shows each one's state, pid, exit code and age; --json prints an array of objects with
    id, entity, state, pid, exit_code, created_at and the whole status. Reads beside a
    running writer.
    """
    lookups.ls(path, as_json)


@click.command()
@STORE_PATH
@click.argument("ident", metavar="ID")
@JSON_FLAG
def history(path: Path, ident: str, as_json: bool) -> None:
    """Show every event of container or sandbox ID, across its incarnations, deleted ones
    included; --json prints an array of event objects."""
    lookups.history(path, ident, as_json)


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
    lookups.show_entries(states, as_json, when, header)


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
    lookups.pods(path, show_all, as_json)
