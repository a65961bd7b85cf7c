"""How the command line fails: one line on stderr and an exit code, never a traceback.

A user mistake or an ``EvstoreError`` is ``error: ...`` and exit 1, a bad option or argument
exit 2 (as click's own usage errors), Ctrl-C ``interrupted`` and exit 130 (the shell's code
for SIGINT). ``evstore._cli.main.Cli`` turns what a command raises into these.
"""

from __future__ import annotations

from typing import IO, Any

import click


class UserError(click.ClickException):
    """A failure the user can act on: shown as one ``error: ...`` line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()) or "failed")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class UsageFailure(UserError):
    """A bad option or argument: exits 2, as click's own usage errors do."""

    exit_code = 2


class Interrupted(click.ClickException):
    """Ctrl-C: one line and exit 130, instead of click's "Aborted!" and 1."""

    exit_code = 130

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=file is None)


def describe(exc: BaseException) -> str:
    """An exception's message, or its type's name when it has none."""
    text = str(exc)
    return text if text else type(exc).__name__
