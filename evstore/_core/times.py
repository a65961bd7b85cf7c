"""Times as people write and read them: ISO 8601 in UTC with all nine digits
(``2025-11-23T08:00:00.123456789Z``) and ages ("30d"), over the store's Unix nanoseconds.

Standard library only, so that the command line can parse its options, and the store can
word its errors, without loading the rendering of tables.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta

from evstore._core.errors import InvalidInputError

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.cache
def _iso() -> re.Pattern[str]:
    """ISO 8601 as ``parse_time`` reads it, compiled on first use: the commands that only
    print times never need it."""
    return re.compile(
        r"(?P<base>\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?)(?:\.(?P<frac>\d{1,9}))?"
        r"(?P<zone>Z|[+-]\d\d:?\d\d)?"
    )


AGE_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def format_time(ns: int) -> str:
    """``ns`` since the epoch as ISO 8601 UTC with nanoseconds; "-" for 0 (never)."""
    if ns <= 0:
        return "-"
    seconds, fraction = divmod(ns, NS)
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch from an integer or ISO 8601 (UTC unless it has an offset).

    Raises ``InvalidInputError`` (a ``ValueError``) for anything else.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _iso().fullmatch(text)
    if match is None:
        raise InvalidInputError(f"{text!r} is neither nanoseconds nor an ISO 8601 time")
    zone = match["zone"] or "+00:00"
    try:
        moment = datetime.fromisoformat(match["base"] + ("+00:00" if zone == "Z" else zone))
    except ValueError as exc:  # a month 13, an hour 25
        raise InvalidInputError(f"{text!r}: {exc}") from exc
    fraction = int((match["frac"] or "0").ljust(9, "0"))
    return (moment - _EPOCH) // timedelta(seconds=1) * NS + fraction


def parse_age(text: str) -> int:
    """A span like "30d", "12h", "90m" or "45s" in ns; ``InvalidInputError`` for anything else."""
    match = re.fullmatch(r"(\d+)([dhms])", text.strip())
    if match is None:
        raise InvalidInputError(f"{text!r} is not an age such as 30d, 12h, 90m or 45s")
    return int(match[1]) * dict(AGE_UNITS)[match[2]] * NS


def format_age(created_at: int, now: int) -> str:
    """How long before ``now`` an entry was created, in its largest unit ("3d", "12m")."""
    if created_at <= 0 or now < created_at:
        return "-"
    seconds = (now - created_at) // NS
    for unit, size in AGE_UNITS:
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return "0s"
