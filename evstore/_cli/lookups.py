"""What ``ls``, ``pods`` and ``history`` look up and print, without click: their click
commands (``reading``) call these, and so does the quick lane (``quick``), which runs their
usual forms before click would have loaded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import evstore
from evstore._cli.output import echo, echo_json

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
        echo(header)
    echo(entries_table(states, now))


def ls(path: Path, as_json: bool = False) -> None:
    """``evstore ls``: every live entry with its status, containers first, by id."""
    from evstore._history.replay import EntryState

    with evstore.open(path, readonly=True) as store:
        states = [  # what the store holds, by id, read only to be shown
            EntryState(entity, metadata.id, status)
            for entity, entries in (("container", store.containers), ("sandbox", store.sandboxes))
            for metadata, status in entries._held()
        ]
    show_entries(states, as_json, time.time_ns(), None)


def history(path: Path, ident: str, as_json: bool = False) -> None:
    """``evstore history``: every event of one id (or unique prefix), deleted incarnations
    included, and how many compaction dropped."""
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
    echo(f"{entity}{ident}: {len(events):,} event(s)")
    if dropped:
        echo(f"(events 1..{dropped} dropped by compaction)")
    if events:
        echo(events_table(events))


def pods(path: Path, show_all: bool = False, as_json: bool = False) -> None:
    """``evstore pods``: the kubelet's view, running containers and ready sandboxes only
    unless ``show_all``."""
    with evstore.open(path, readonly=True) as store:
        found = store.pods(all=show_all)
    if as_json:
        echo_json(list(found))
    elif not found:
        echo("no pods (only entries with a kubelet config belong to pods)")
    else:
        echo(pods_table(found))


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
