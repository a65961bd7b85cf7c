"""What the commands share to show their work: a progress bar on stderr, JSON on stdout.

rich loads only when a bar is made, so commands that print a table or JSON start without it.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from evstore._core.events import Event


@contextmanager
def progress_bar(
    description: str, total: int | None, min_total: int = 10_000
) -> Iterator[tuple[Progress, TaskID]]:
    """A bar on stderr, shown only on a terminal and for work of at least ``min_total``
    steps (``total=None``: a spinner for work that cannot be counted)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    text = TextColumn("{task.description}")  # what the work is at, as the caller updates it
    columns = (
        (SpinnerColumn(), text, TimeElapsedColumn()) if total is None else
        (text, BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    )
    hidden = not console.is_terminal or (total is not None and total < min_total)
    bar = Progress(*columns, console=console, transient=True, disable=hidden)
    # a hidden bar is never started: rich before 14.3 printed a blank line when one stopped
    with nullcontext() if hidden else bar:
        yield bar, bar.add_task(description, total=total)


def tracked(events: Iterable[Event], description: str, total: int) -> Generator[Event]:
    """The events, moving a bar by position as they go by."""
    with progress_bar(description, total) as (bar, task):
        for count, event in enumerate(events, 1):
            if count % 1_000 == 0:
                bar.update(task, completed=event.position)
            yield event


def echo(text: str) -> None:
    """``text`` and a newline on stdout, flushed, as ``click.echo`` prints a table or a
    line (none has colours to strip), for the commands that run without click."""
    out = sys.stdout
    out.write(f"{text}\n")
    out.flush()


def escape_unencodable() -> None:
    """Output in an encoding that lacks a character of a name or message (ASCII, say) shows
    it escaped (``caf\\xe9``) instead of dying halfway through a table."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def echo_json(data: Any) -> None:
    """``data`` as one line of JSON on stdout."""
    import msgspec

    out = sys.stdout.buffer
    out.write(msgspec.json.encode(data) + b"\n")
    out.flush()


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")
