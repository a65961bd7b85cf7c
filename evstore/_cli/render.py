"""How the command line shows entries and events: aligned columns for people, JSON for programs.

Times are Unix nanoseconds in the store; people see them as ISO 8601 in UTC with all nine
digits (``2025-11-23T08:00:00.123456789Z``), which ``parse_time`` reads back exactly (both
in ``times``, re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from evstore._core.events import Event
from evstore._core.model import ContainerStatus, Status, state_name
from evstore._core.times import NS, format_age, format_time, parse_age, parse_time
from evstore._history.replay import EntryState

__all__ = [
    "NS", "columns", "entries_table", "entry_object", "events_table", "exit_code", "format_age",
    "format_time", "parse_age", "parse_time", "state_name",
]

def exit_code(status: Status) -> int:
    return status.exit_code if isinstance(status, ContainerStatus) else status.exit_status


def entry_object(state: EntryState) -> dict[str, Any]:
    """One entry as JSON data: the common fields first, then its whole status."""
    status = state.status
    return {
        "id": state.id, "entity": state.entity, "state": state_name(status), "pid": status.pid,
        "exit_code": exit_code(status), "created_at": status.created_at,
        "status": msgspec.to_builtins(status),
    }


def columns(headers: Sequence[str], rows: Iterable[Sequence[str]], right: int = 0) -> str:
    """Rows as aligned columns under upper-case headers, as ``kubectl get`` prints them
    (the last ``right`` columns aligned right): quick for 10,000 rows, and easy to grep."""
    table = [[header.upper() for header in headers], *rows]
    # every row has a cell per header (strict), and one format lays a row out in C
    widths = [max(map(len, column)) for column in zip(*table, strict=True)]
    first_right = len(headers) - right
    line = "  ".join(
        f"{{:{'>' if i >= first_right else '<'}{width}}}" for i, width in enumerate(widths)
    ).format
    return "\n".join(line(*row).rstrip() for row in table)


def entries_table(states: Iterable[EntryState], now: int) -> str:
    rows = (
        (
            state.id, state.entity, state_name(state.status).upper(), str(state.status.pid),
            str(exit_code(state.status)), format_age(state.status.created_at, now),
        )
        for state in states
    )
    return columns(("id", "entity", "state", "pid", "exit code", "age"), rows, right=3)


def events_table(events: Iterable[Event]) -> str:
    rows = (
        (
            str(event.position), str(event.seq), format_time(event.time), event.type,
            msgspec.json.encode(event.changes).decode(),
        )
        for event in events
    )
    return columns(("position", "seq", "time", "type", "changes"), rows)
