"""How the command line shows entries and events: aligned columns for people, JSON for programs.

Times are Unix nanoseconds in the store; people see them as ISO 8601 in UTC with all nine
digits (``2025-11-23T08:00:00.123456789Z``), which ``parse_time`` reads back exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from .events import Event
from .model import ContainerStatus, Status, status_state
from .replay import EntryState

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO = re.compile(
    r"(?P<base>\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?)(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d\d:?\d\d)?"
)
_AGE_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def format_time(ns: int) -> str:
    """``ns`` since the epoch as ISO 8601 UTC with nanoseconds; "-" for 0 (never)."""
    if ns <= 0:
        return "-"
    seconds, fraction = divmod(ns, NS)
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an integer or ISO 8601 (UTC unless it has an offset).

    Raises ``ValueError`` for anything else.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _ISO.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is neither nanoseconds nor an ISO 8601 time")
    zone = match["zone"] or "+00:00"
    moment = datetime.fromisoformat(match["base"] + ("+00:00" if zone == "Z" else zone))
    fraction = int((match["frac"] or "0").ljust(9, "0"))
    return (moment - _EPOCH) // timedelta(seconds=1) * NS + fraction


def parse_age(text: str) -> int:
    """A span like "30d", "12h", "90m" or "45s" in ns; ``ValueError`` for anything else."""
    match = re.fullmatch(r"(\d+)([dhms])", text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h, 90m or 45s")
    return int(match[1]) * dict(_AGE_UNITS)[match[2]] * NS


def format_age(created_at: int, now: int) -> str:
    """How long before ``now`` an entry was created, in its largest unit ("3d", "12m")."""
    if created_at <= 0 or now < created_at:
        return "-"
    seconds = (now - created_at) // NS
    for unit, size in _AGE_UNITS:
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return "0s"


def state_name(status: Status) -> str:
    return status_state(status).name.lower()


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
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    first_right = len(headers) - right
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i >= first_right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    )


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
