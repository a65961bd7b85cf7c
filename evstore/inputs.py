"""Checks of what callers pass in: a wrong type or range is an ``InvalidInputError`` that
names the argument, not a ``TypeError`` from deep inside nor a quiet wrong answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InvalidInputError

MAX_POSITION = 2**64 - 1  # log keys hold positions as unsigned 64-bit integers


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


def path(value: Any) -> Path:
    """A store's directory: a ``str`` or a path-like object that gives one."""
    try:
        return Path(value)
    except TypeError as exc:
        raise InvalidInputError(
            f"path must be a str or os.PathLike, not {type(value).__name__}"
        ) from exc


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, not {type(value).__name__}")
    return value


def positive_int(text: str) -> int:
    """A count given on a script's command line (an argparse ``type``, which reports the
    ``ValueError`` as an invalid value of this name)."""
    return integer("count", int(text), least=1)
