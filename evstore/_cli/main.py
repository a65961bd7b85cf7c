"""The ``evstore`` command line: the group, how it fails, and its commands, loaded on use.

Every subcommand runs under ``Cli``, which turns user mistakes into one line on stderr and a
non-zero exit instead of a traceback (see ``errors``): usage errors exit 2, an
``EvstoreError`` or an ``OSError`` (unwritable directory, full disk) prints ``error: ...`` and
exits 1, and Ctrl-C prints ``interrupted`` and exits 130.

Loading this module loads click and little else: a command's module (and with it the store,
PostgreSQL's driver, the benchmark or rich) is imported only when that command runs, and
``--help`` lists the commands from their one-line summaries below.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from typing import Any

import click

from evstore._cli.errors import Interrupted, UsageFailure, UserError, describe
from evstore._cli.output import escape_unencodable
from evstore._core.errors import EvstoreError
from evstore._core.version import __version__

# name -> (its module in evstore._cli, the command's name there, the first sentence of its
# help: what ``evstore --help`` shows; a test checks that they agree)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "bench": ("bench", "bench", "Measure evstore against containerd's fsync'd JSON file"
              " checkpoint, on the same disk."),
    "compact": ("operations", "compact", "Reclaim the free space in the store file at PATH."),
    "export": ("reading", "export", "Stream the events after --since as JSON lines, one event"
               " object a line, in order."),
    "fleet": ("fleet", "fleet", "Ask the fleet database that 'evstore ship' fills, without"
              " writing SQL."),
    "history": ("reading", "history", "Show every event of container or sandbox ID, across its"
                " incarnations, deleted ones included; --json prints an array of event"
                " objects."),
    "import-containerd": ("operations", "import_containerd_command", "Import containerd's"
                          " container checkpoints under ROOT into the store at PATH."),
    "ls": ("reading", "ls", "List the containers and sandboxes of the store at PATH."),
    "pods": ("reading", "pods", "Show the store at PATH as the kubelet sees it: containers and"
             " sandboxes in pods."),
    "record": ("record", "record", "Record every container and pod sandbox change of the CRI"
               " runtime at ENDPOINT into the store at PATH (created if missing)."),
    "replay": ("reading", "replay", "Show every entry live at a point of the log, with its"
               " status there."),
    "ship": ("fleet", "ship", "Ship every event of the store at PATH to PostgreSQL, as NODE,"
             " exactly once."),
    "verify": ("operations", "verify", "Check every record, sequence, position and snapshot of"
               " the store at PATH."),
}


class Cli(click.Group):
    """A group whose subcommands load when they run and report errors as one line (see the
    module docstring)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, name, _summary = COMMANDS[cmd_name]
            command = getattr(import_module(f"evstore._cli.{module}"), name)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries, as click lists them, without loading them."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        # a stand-in command shortens the summary to the width as the command itself would
        rows = [(name, click.Command(name, help=summary(name)).get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with _in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with _in_one_line():
            return super().invoke(ctx)


@contextmanager
def _in_one_line() -> Iterator[None]:
    """Turn what parsing or running a command raises into ``Cli``'s one-line failures."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # the help text, shown as it is
    except click.UsageError as exc:
        raise UsageFailure(exc.format_message()) from exc
    except EvstoreError as exc:
        raise UserError(describe(exc)) from exc
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            raise  # click quietly exits on a closed pipe
        raise UserError(describe(exc)) from exc
    except KeyboardInterrupt as exc:
        raise Interrupted() from exc


def shown_failure(exc: EvstoreError | OSError) -> int:
    """Show what a command that ran without click's parsing (``quick``) raised, as a
    command run under ``Cli`` shows it, and return its exit code."""
    try:
        with _in_one_line():
            raise exc
    except click.ClickException as failure:
        failure.show()
        return failure.exit_code
    except OSError:  # a closed pipe: exit 1 without a word, as click does
        _discard_output()
        return 1


def _discard_output() -> None:
    """Send what is left for stdout, a closed pipe, nowhere, so that flushing it at exit
    does not fail again (as Python's documentation on SIGPIPE advises)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def summary(name: str) -> str:
    """The one line ``evstore --help`` shows for command ``name``."""
    return COMMANDS[name][2]


@click.group(cls=Cli)
@click.version_option(__version__, message="evstore %(version)s")
def main() -> None:
    """evstore: an event-sourced container and sandbox status store on LMDB."""
    escape_unencodable()


if __name__ == "__main__":
    main()
