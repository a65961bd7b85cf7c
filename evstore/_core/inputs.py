"""Checks of what callers pass in: a wrong type or range is an ``InvalidInputError`` that
names the argument, not a ``TypeError`` from deep inside nor a quiet wrong answer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from evstore._core.errors import InvalidInputError

MAX_POSITION = 2**64 - 1  # log keys hold positions as unsigned 64-bit integers
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1: NUL, newline, escape...


def integer(name: str, value: Any, *, least: int = 0, most: int | None = None) -> int:
    """``value``, if it is an integer (a bool is not) in ``least..most``."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < least
        or (most is not None and value > most)
    ):
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            least, f"an integer of at least {least}"
        )
        bound = f" up to {most}" if most is not None else ""
        raise InvalidInputError(f"{name} must be {kind}{bound}, not {value!r}")
    return value


def since(value: Any) -> int:
    """A feed's starting point: events after this position are read."""
    return integer("since", value, most=MAX_POSITION - 1)


def path(value: Any, name: str = "path") -> Path:
    """A directory (a store's, by default): a ``str`` or a path-like object that gives one."""
    try:
        return Path(value)
    except TypeError as exc:
        raise InvalidInputError(
            f"{name} must be a str or os.PathLike, not {type(value).__name__}"
        ) from exc


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    return value


def positive_int(text: str) -> int:
    """A count given on a script's command line (an argparse ``type``, which reports the
    ``ValueError`` as an invalid value of this name)."""
    return integer("count", int(text), least=1)


def entry_id(value: Any, most_bytes: int) -> str:
    """An entry's id: non-empty UTF-8 text of at most ``most_bytes`` bytes, with no control
    character, since ids are printed one a line and in columns (``evstore ls``)."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"id must be a non-empty string of <= {most_bytes} bytes")
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"id {value!r} is not valid UTF-8 text") from exc
    if size > most_bytes:
        raise InvalidInputError(f"id must be a non-empty string of <= {most_bytes} bytes")
    bad = _CONTROL.search(value)
    if bad is not None:
        raise InvalidInputError(
            f"id {value!r} has a control character ({bad.group()!r} at {bad.start()})"
        )
    return value


def file_mode(value: Any) -> int:
    """Permission bits for a new store's files: the owner must keep read and write."""
    mode = integer("mode", value, most=0o777)
    if mode & 0o600 != 0o600:
        raise InvalidInputError(f"mode {mode:#o} must let the owner read and write (0o600)")
    return mode
