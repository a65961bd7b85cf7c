"""The ``evstore`` command line.

Every subcommand runs under ``Cli``, which turns user mistakes into one line on stderr and a
non-zero exit instead of a traceback: usage errors (bad option or value) exit 2, an
``EvstoreError`` or an ``OSError`` (unwritable directory, full disk) prints ``error: ...`` and
exits 1.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from evstore.bench import BenchConfig, BenchResult, Measure, count_steps, run
from evstore.errors import EvstoreError
from evstore.verify import count_events
from evstore.verify import verify as verify_store


class UserError(click.ClickException):
    """A failure the user can act on: shown as one ``error: ...`` line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()) or "failed")

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)


class UsageFailure(UserError):
    """A bad option or argument: exits 2, as click's own usage errors do."""

    exit_code = 2


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


class Cli(click.Group):
    """A group whose subcommands report errors as one line (see the module docstring)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise  # the help text, shown as it is
        except click.UsageError as exc:
            raise UsageFailure(exc.format_message()) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # the help text, shown as it is
        except click.UsageError as exc:
            raise UsageFailure(exc.format_message()) from None
        except EvstoreError as exc:
            raise UserError(_describe(exc)) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click quietly exits on a closed pipe
            raise UserError(_describe(exc)) from None


@click.group(cls=Cli)
def main() -> None:
    """evstore: an event-sourced container and sandbox status store on LMDB."""


# --- bench ------------------------------------------------------------------------------------


def _check_json_target(
    ctx: click.Context, param: click.Parameter, value: Path | None
) -> Path | None:
    """Refuse an unwritable ``--json`` file before the run, not after it."""
    if value is None:
        return None
    parent = value.parent if str(value.parent) else Path(".")
    if value.is_dir():
        raise click.BadParameter(f"{value} is a directory", ctx, param)
    writable = os.access(value, os.W_OK) if value.exists() else os.access(parent, os.W_OK)
    if not parent.is_dir() or not writable:
        raise click.BadParameter(f"cannot write {value}", ctx, param)
    return value


@main.command()
@click.option("--quick", is_flag=True, help="Short runs and 1,000 containers (under a minute).")
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
    callback=_check_json_target, help="Also write the results as JSON to this file.",
)
@click.option(
    "--dir", "directory",
    type=click.Path(exists=True, file_okay=False, writable=True, path_type=Path),
    help="Measure on this directory's disk (default: the current directory, else the tmp dir).",
)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=None,
    help="Runs of each measure; the median is reported (default 3 quick, 5 full).",
)
def bench(quick: bool, json_file: Path | None, directory: Path | None, repeats: int | None) -> None:
    """Measure evstore against containerd's fsync'd JSON file checkpoint, on the same disk."""
    cfg = _bench_config(quick, directory, repeats)
    console = Console()
    result = _run_with_progress(cfg, console)
    console.print(results_table(result))
    console.print(_footer(result))
    if json_file is not None:
        json_file.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        console.print(f"results written to {json_file}")


def _bench_config(quick: bool, directory: Path | None, repeats: int | None) -> BenchConfig:
    overrides: dict[str, Any] = {"directory": directory}
    if repeats is not None:
        overrides["repeats"] = repeats
    return BenchConfig.quick(**overrides) if quick else BenchConfig.full(**overrides)


def _run_with_progress(cfg: BenchConfig, console: Console) -> BenchResult:
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, refresh_per_second=4) as bar:
        task = bar.add_task("starting", total=count_steps(cfg))

        def advance(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        return run(cfg, advance)


# --- verify -----------------------------------------------------------------------------------


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def verify(path: Path) -> None:
    """Check every record, sequence, position and snapshot of the store at PATH.

    Exits 0 only when the store is sound; otherwise lists what it found and exits 1.
    """
    console = Console(stderr=True)
    total = count_events(path)
    columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=total < 50_000) as bar:
        task = bar.add_task("verify", total=total)
        report = verify_store(path, lambda done: bar.advance(task, done))
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    verdict = "sound" if report.ok else f"{len(report.problems)} problem(s)"
    click.echo(
        f"{path}: {verdict}; {report.events:,} events, {report.entries:,} entries,"
        f" {report.snapshots:,} snapshots, {report.index_entries:,} index entries checked"
    )
    if not report.ok:
        raise SystemExit(1)


# --- the table --------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if unit == "ops/s":
        return f"{value:,.0f}/s"
    if unit == "s":
        return f"{value * 1000:,.1f} ms" if value < 10 else f"{value:,.2f} s"
    if unit == "bytes":
        return f"{value:,.0f} B"
    return f"{value:g} {unit}"


def format_ratio(m: Measure) -> str:
    wins = m.ratio > 1 if m.better == "higher" else m.ratio < 1
    colour = "green" if wins else "red"
    return f"[{colour}]{m.ratio:.2f}x[/{colour}]"


def results_table(result: BenchResult) -> Table:
    table = Table(title="evstore vs containerd file checkpoint (median of runs)")
    table.add_column("measure")
    table.add_column("evstore", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("better", justify="center")
    for m in result.measures:
        table.add_row(
            m.description, format_value(m.evstore, m.unit), format_value(m.baseline, m.unit),
            format_ratio(m), m.better,
        )
    return table


def _footer(result: BenchResult) -> str:
    env = result.environment
    cfg = result.config
    return (
        f"ratio = evstore / baseline. {cfg['repeats']} runs of {cfg['seconds']:g} s per measure; "
        f"{env['filesystem']} at {Path(env['directory']).parent}, {env['cpus']} CPUs, "
        f"Python {env['python']}; took {result.seconds:.0f} s."
    )


if __name__ == "__main__":
    main()
