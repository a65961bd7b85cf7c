"""The ``evstore`` command line.

Every subcommand runs under ``Cli``, which turns user mistakes into one line on stderr and a
non-zero exit instead of a traceback: usage errors (bad option or value) exit 2, an
``EvstoreError`` or an ``OSError`` (unwritable directory, full disk) prints ``error: ...`` and
exits 1, and Ctrl-C prints ``interrupted`` and exits 130 (the shell's code for SIGINT).

Loading this module loads click and little else, so that ``--help`` and every command start
quickly: each command imports the machinery it runs (the store, PostgreSQL's driver, the
benchmark, rich for bars and tables) in its body.
"""

from __future__ import annotations

import errno
import io
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

import evstore
from evstore._core.errors import EvstoreError
from evstore._core.extras import require
from evstore._core.states import STATE_NAMES
from evstore._core.times import format_time, parse_age, parse_time

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from evstore._bench import BenchConfig, BenchResult, Measure
    from evstore._core.events import Event
    from evstore._fleet.database import FleetEntry
    from evstore._fleet.shipping import Hooks
    from evstore._history.replay import EntryState
    from evstore._ops.compact import CompactReport, DropReport
    from evstore._views.pods import Pods


T = TypeVar("T")


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
            raise UsageFailure(exc.format_message()) from exc
        except KeyboardInterrupt as exc:
            raise Interrupted() from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # the help text, shown as it is
        except click.UsageError as exc:
            raise UsageFailure(exc.format_message()) from exc
        except EvstoreError as exc:
            raise UserError(_describe(exc)) from exc
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click quietly exits on a closed pipe
            raise UserError(_describe(exc)) from exc
        except KeyboardInterrupt as exc:
            raise Interrupted() from exc


@click.group(cls=Cli)
@click.version_option(package_name="evstore", message="evstore %(version)s")
def main() -> None:
    """evstore: an event-sourced container and sandbox status store on LMDB."""
    _escape_what_output_cannot_encode()


def _escape_what_output_cannot_encode() -> None:
    """Output in an encoding that lacks a character of a name or message (ASCII, say) shows
    it escaped (``caf\\xe9``) instead of dying halfway through a table."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


# --- bench ------------------------------------------------------------------------------------


def _check_json_target(
    ctx: click.Context, param: click.Parameter, value: Path | None
) -> Path | None:
    """Refuse an unwritable ``--json`` or ``--plot`` file before the run, not after it."""
    if value is None:
        return None
    parent = value.parent if str(value.parent) else Path(".")
    if value.is_dir():
        raise click.BadParameter(f"{value} is a directory", ctx, param)
    if not parent.is_dir():
        raise click.BadParameter(f"cannot write {value}: no directory {parent}", ctx, param)
    writable = os.access(value, os.W_OK) if value.exists() else os.access(parent, os.W_OK)
    if not writable:
        raise click.BadParameter(f"cannot write {value}", ctx, param)
    return value


@main.command()
@click.option(
    "--quick", is_flag=True, help="Short runs, 1,000 and 10,000 containers (about two minutes)."
)
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
@click.option(
    "--plot", "plot_file", type=click.Path(dir_okay=False, path_type=Path),
    callback=_check_json_target,
    help="Also draw throughput against concurrency and reopen time against containers"
    " into this PNG (needs the plot extra).",
)
@click.option(
    "--from-json", "from_json", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Show (and --plot) a result saved with --json instead of running; --quick, --dir"
    " and --repeats are then ignored.",
)
def bench(
    quick: bool, json_file: Path | None, directory: Path | None, repeats: int | None,
    plot_file: Path | None, from_json: Path | None,
) -> None:
    """Measure evstore against containerd's fsync'd JSON file checkpoint, on the same disk."""
    import msgspec
    from rich.console import Console

    from evstore._bench import plot as bench_plot

    if plot_file is not None and (why := bench_plot.missing()) is not None:
        raise UserError(why)  # before a run of minutes, not after it
    console = Console()
    if from_json is not None:
        result = load_result(from_json)
    else:
        result = _run_with_progress(_bench_config(quick, directory, repeats))
    show_result(console, result)
    if json_file is not None:
        # strict JSON: a figure with no baseline (NaN) is written as null
        json_file.write_bytes(msgspec.json.format(msgspec.json.encode(result.to_dict())) + b"\n")
        console.print(f"results written to {json_file}")
    if plot_file is not None:
        bench_plot.write_plot(result.to_dict(), plot_file)
        console.print(f"plot written to {plot_file}")


def load_result(path: Path) -> BenchResult:
    """A result saved by ``--json``; a file that is not one is a user error."""
    import msgspec

    from evstore._bench import BenchResult

    try:
        return BenchResult.from_dict(msgspec.json.decode(path.read_bytes()))
    except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
        raise UserError(f"{path}: not a result of evstore bench --json ({exc!r})") from exc


def show_result(console: Console, result: BenchResult) -> None:
    console.print(results_table(result))
    growth = growth_table(result)
    if growth is not None:
        console.print(growth)
    from evstore._bench.report import extra_tables

    for table in extra_tables(result):
        console.print(table)
    console.print(_footer(result))
    for note in result.notes:
        console.print(note, markup=False, highlight=False)


def _bench_config(quick: bool, directory: Path | None, repeats: int | None) -> BenchConfig:
    from evstore._bench import BenchConfig

    overrides: dict[str, Any] = {"directory": directory}
    if repeats is not None:
        overrides["repeats"] = repeats
    return BenchConfig.quick(**overrides) if quick else BenchConfig.full(**overrides)


def _run_with_progress(cfg: BenchConfig) -> BenchResult:
    from evstore import _bench as harness

    with progress_bar("starting", harness.count_steps(cfg), min_total=0) as (bar, task):

        def advance(what: str, done: int, total: int) -> None:
            bar.update(task, description=what, completed=done, total=total)

        return harness.run(cfg, advance)


# --- verify -----------------------------------------------------------------------------------


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
def verify(path: Path, as_json: bool) -> None:
    """Check every record, sequence, position and snapshot of the store at PATH.

    Exits 0 only when the store is sound; otherwise lists what it found and exits 1.
    --json prints one object: path, ok, the counts checked and the problems.
    """
    from evstore._ops.verify import check_in_process, count_events

    total = count_events(path)  # walks the store in a child first: a damaged page kills only it
    with progress_bar("verifying", total, min_total=50_000) as (bar, task):
        report = check_in_process(path, lambda done: bar.advance(task, done))
    if as_json:
        echo_json({
            "path": str(path), "ok": report.ok, "events": report.events,
            "entries": report.entries, "snapshots": report.snapshots,
            "index_entries": report.index_entries, "bases": report.bases,
            "problems": report.problems,
        })
        if not report.ok:
            raise SystemExit(1)
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    verdict = "sound" if report.ok else f"{len(report.problems)} problem(s)"
    click.echo(
        f"{path}: {verdict}; {report.events:,} events, {report.entries:,} entries,"
        f" {report.snapshots:,} snapshots, {report.index_entries:,} index entries"
        + (f", {report.bases:,} retention bases" if report.bases else "")
        + " checked"
    )
    if not report.ok:
        raise SystemExit(1)


# --- shared by the store commands -------------------------------------------------------------

STORE_PATH = click.argument("path", type=click.Path(path_type=Path))
JSON_FLAG = click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")


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


def echo_json(data: Any) -> None:
    import msgspec

    out = sys.stdout.buffer
    out.write(msgspec.json.encode(data) + b"\n")
    out.flush()


def show_entries(states: list[EntryState], as_json: bool, now: int, header: str | None) -> None:
    """A table (after ``header``, if any) or, with --json, a JSON array of entry objects."""
    from evstore._cli.render import entries_table, entry_object

    if as_json:
        echo_json([entry_object(state) for state in states])
        return
    if header is not None:
        click.echo(header)
    click.echo(entries_table(states, now))


# --- ls, history, replay, export ----------------------------------------------------------------


@main.command(name="ls")
@STORE_PATH
@JSON_FLAG
def ls(path: Path, as_json: bool) -> None:
    """List the containers and sandboxes of the store at PATH.

    Shows each one's state, pid, exit code and age; --json prints an array of objects with
    id, entity, state, pid, exit_code, created_at and the whole status. Reads beside a
    running writer.
    """
    from evstore._history.replay import EntryState

    with evstore.open(path, readonly=True) as store:
        states = [
            EntryState(entity, entry.id, entry.status.get())
            for entity, entries in (("container", store.containers), ("sandbox", store.sandboxes))
            for entry in entries.list()
        ]
    states.sort(key=lambda state: (state.entity, state.id))
    show_entries(states, as_json, time.time_ns(), None)


@main.command()
@STORE_PATH
@click.argument("ident", metavar="ID")
@JSON_FLAG
def history(path: Path, ident: str, as_json: bool) -> None:
    """Show every event of container or sandbox ID, across its incarnations, deleted ones
    included; --json prints an array of event objects."""
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
    click.echo(f"{entity}{ident}: {len(events):,} event(s)")
    if dropped:
        click.echo(f"(events 1..{dropped} dropped by compaction)")
    if events:
        click.echo(events_table(events))


if TYPE_CHECKING:  # click 8.5 made ParamType generic; older clicks cannot subscript it
    ParamType = click.ParamType[int, Any]
else:
    ParamType = click.ParamType


class Parsed(ParamType):
    """An option value read by one of the ``render`` parsers; its ``ValueError`` is a usage
    error."""

    def __init__(self, name: str, parse: Callable[[str], int]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return value if isinstance(value, int) else self.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@main.command()
@STORE_PATH
@click.option(
    "--time", "at_time", type=Parsed("TIME", parse_time),
    help="Wall-clock time: Unix nanoseconds, or ISO 8601 (UTC unless it has an offset).",
)
@click.option("--position", type=click.IntRange(min=0), help="Global log position.")
@JSON_FLAG
def replay(path: Path, at_time: int | None, position: int | None, as_json: bool) -> None:
    """Show every entry live at a point of the log, with its status there.

    Give exactly one of --time and --position. The table's ages are as of that point.
    """
    if (at_time is None) == (position is None):
        raise click.UsageError("give exactly one of --time and --position")
    from evstore._history.replay import feed_start, replay_feed

    with evstore.open(path, readonly=True) as store:
        last = store.last_position
        total = min(last, position) if position is not None else last
        with closing(tracked(store.events(), "replaying", total)) as feed:  # ends the bar
            states, point = replay_feed(feed, position, at_time, feed_start(store))
    when = at_time if at_time is not None else point.time
    header = f"at position {point.position}, {format_time(when)}: {len(states):,} entries"
    show_entries(states, as_json, when, header)


@main.command()
@STORE_PATH
@click.option(
    "--since", type=click.IntRange(min=0), default=0, show_default=True,
    help="Only events after this position.",
)
def export(path: Path, since: int) -> None:
    """Stream the events after --since as JSON lines, one event object a line, in order."""
    import msgspec

    out = sys.stdout.buffer
    encoder = msgspec.json.Encoder()
    buffer = bytearray()
    with evstore.open(path, readonly=True) as store:
        total = store.last_position
        for event in tracked(store.events(since), "exporting", total):
            encoder.encode_into(event, buffer, len(buffer))
            buffer += b"\n"
            if len(buffer) >= 1 << 16:
                out.write(buffer)
                buffer.clear()
    out.write(buffer)
    out.flush()


# --- compact, import-containerd -----------------------------------------------------------------


@main.command()
@STORE_PATH
@click.option(
    "--drop-before", type=Parsed("TIME", parse_time),
    help="Drop the events older than TIME that a snapshot covers (ns or ISO 8601).",
)
@click.option(
    "--keep", type=Parsed("AGE", parse_age), help="Drop the history older than AGE (30d, 12h)."
)
@JSON_FLAG
def compact(path: Path, drop_before: int | None, keep: int | None, as_json: bool) -> None:
    """Reclaim the free space in the store file at PATH.

    Keeps every event unless a retention option (--drop-before or --keep) says otherwise:
    then the history before that time goes, as far as snapshots cover it, and the entries
    deleted by then go entirely. Needs the store to itself: it fails while a writer or any
    other process has it open. Ctrl-C does not stop it halfway: the compaction in progress
    finishes (the store is swapped whole or not at all), then it exits 130. --json prints
    one object: path, before, after, reclaimed and what was dropped (null without a
    retention option).
    """
    if drop_before is not None and keep is not None:
        raise click.UsageError("give at most one of --drop-before and --keep")
    if keep is not None:
        drop_before = time.time_ns() - keep
    from evstore._ops.compact import compact as compact_store

    with progress_bar("compacting", None), finishing_on_interrupt() as interrupted:
        report = run_in_thread(lambda: compact_store(path, drop_before))
    if as_json:
        echo_json({
            "path": str(path), "before": report.before, "after": report.after,
            "reclaimed": report.reclaimed, "dropped": report.dropped,
        })
    else:
        _show_compaction(path, report)
    if interrupted:
        raise SystemExit(128 + interrupted[0])


def _show_compaction(path: Path, report: CompactReport) -> None:
    if report.dropped is not None:
        click.echo(describe_drop(report.dropped))
    click.echo(
        f"{path}: {report.before:,} -> {report.after:,} bytes"
        f" ({report.reclaimed:,} bytes reclaimed)"
    )


@contextmanager
def finishing_on_interrupt() -> Iterator[list[int]]:
    """Ctrl-C (SIGINT) or SIGTERM while work that must not stop halfway runs in another
    thread: say at once that it will finish, and note the signal (in the list given) for
    the caller to exit with after it (130 for SIGINT, 143 for SIGTERM)."""
    received: list[int] = []

    def note(signum: int, _frame: object) -> None:
        if not received:
            click.echo("interrupted: finishing the compaction in progress, then exiting",
                       err=True)
        received.append(signum)

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, note) for sig in signals}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread, so that this (main) thread handles signals while it runs: a
    long C call such as LMDB's copy would otherwise hold them until it returned."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=target, name="evstore-work")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


def describe_drop(dropped: DropReport) -> str:
    """What retention did, in a few lines for the operator."""
    if not dropped.events:
        where = f"position {dropped.floor:,}" if dropped.floor else "the start of the log"
        return f"nothing to drop: the history already starts after {where}"
    lines = [
        f"dropped {dropped.events:,} events up to position {dropped.floor:,}"
        f" ({format_time(dropped.floor_time)}) from {dropped.entries:,} entries",
    ]
    if dropped.removed:
        lines.append(f"removed {len(dropped.removed):,} deleted entries: "
                     + _some(dropped.removed))
    if dropped.kept:
        lines.append(f"kept the whole history of {len(dropped.kept):,} damaged entries: "
                     + _some(dropped.kept))
    return "\n".join(lines)


def _some(ids: list[str], shown: int = 10) -> str:
    more = f" and {len(ids) - shown:,} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more


@main.command(name="import-containerd")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@STORE_PATH
@JSON_FLAG
def import_containerd_command(root: Path, path: Path, as_json: bool) -> None:
    """Import containerd's container checkpoints under ROOT into the store at PATH.

    ROOT is containerd's CRI plugin root or its containers/ directory (<id>/status in it;
    anything else is refused and nothing written); PATH is created if
    missing. A status that cannot be read comes in as UNKNOWN, as containerd would load it,
    and is listed; ids already in the store are skipped, so a rerun imports nothing twice.
    --json prints one object: the imported and skipped ids, and unknown (id: reason).
    """
    from evstore._views.importer import container_dirs, import_containerd

    total = len(container_dirs(root))
    with evstore.open(path) as store, progress_bar("importing", total, 100) as (bar, task):
        report = import_containerd(
            root, store, lambda done, total: bar.update(task, completed=done, total=total)
        )
    if as_json:
        echo_json(report)
        return
    for ident, reason in sorted(report.unknown.items()):
        click.echo(f"unknown: {ident}: {reason}")
    click.echo(
        f"imported {len(report.imported):,} containers ({len(report.unknown):,} unknown),"
        f" skipped {len(report.skipped):,} already in the store"
    )


# --- pods -------------------------------------------------------------------------------------


@main.command()
@STORE_PATH
@click.option(
    "--all", "show_all", is_flag=True, help="Every live container and sandbox, in any state."
)
@JSON_FLAG
def pods(path: Path, show_all: bool, as_json: bool) -> None:
    """Show the store at PATH as the kubelet sees it: containers and sandboxes in pods.

    Without --all only running containers and ready sandboxes; --json prints an array of
    pod objects (id, name, namespace, created_at, containers, sandboxes). Reads beside a
    running writer.
    """
    with evstore.open(path, readonly=True) as store:
        found = store.pods(all=show_all)
    if as_json:
        echo_json(list(found))
    elif not found:
        click.echo("no pods (only entries with a kubelet config belong to pods)")
    else:
        click.echo(pods_table(found))


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


# --- ship, fleet ------------------------------------------------------------------------------

DSN_OPTION = click.option(
    "--dsn", required=True, envvar="EVSTORE_DSN", show_envvar=True,
    help="PostgreSQL connection string, e.g. 'host=db.example dbname=fleet user=evstore'.",
)


@main.command()
@STORE_PATH
@DSN_OPTION
@click.option("--node", required=True, help="This node's name in the fleet database.")
@click.option("--once", is_flag=True, help="Exit once the database holds the whole log.")
@click.option(
    "--batch", type=click.IntRange(min=1), default=None,
    help="Events per PostgreSQL transaction (default 1,000).",
)
def ship(path: Path, dsn: str, node: str, once: bool, batch: int | None) -> None:
    """Ship every event of the store at PATH to PostgreSQL, as NODE, exactly once.

    Each batch, with the current-state rows it changes, is one transaction, and a run
    resumes from what the database holds for NODE: kill it at any moment and run it again.
    Without --once it follows new events until SIGINT or SIGTERM and waits out database
    restarts. Logs a line per batch on stderr; reads beside a running writer.
    """
    require("fleet", "evstore ship")
    from evstore._fleet.shipping import BATCH, ShipOptions, ship_store

    stop = threading.Event()
    with evstore.open(path, readonly=True) as store, stop_on_signals(stop):
        total = store.last_position
        # the bar is for --once; a follower only logs
        with progress_bar("shipping", total, 1_000 if once else total + 1) as (bar, task):
            hooks = ship_log(node, bar, task)
            options = ShipOptions(batch or BATCH, follow=not once, stop=stop, hooks=hooks)
            report = ship_store(store, dsn, node, options)
    summary = (
        f"{node}: shipped {plural(report.shipped, 'event')};"
        f" the database is at position {report.position:,}"
    )
    if once and not report.caught_up:
        click.echo(f"interrupted: {summary}; run again to resume", err=True)
        raise SystemExit(130)
    click.echo(summary)


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of killing, so the batch in flight finishes."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ship_log(node: str, bar: Progress, task: TaskID) -> Hooks:
    """A line on stderr per batch and per retry, above the bar (when there is one). Built
    here, not at module level, because ``Hooks`` comes with the shipper and PostgreSQL."""
    from evstore._fleet.shipping import BatchReport, Hooks

    class ShipLog(Hooks):
        """A line on stderr per batch and per retry, above the bar (when there is one)."""

        def __init__(self, node: str, bar: Progress, task: TaskID) -> None:
            self.node = node
            self.bar = bar
            self.task = task

        def say(self, line: str) -> None:
            self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

        def started(self, position: int, store_position: int) -> None:
            self.bar.update(self.task, completed=position)
            self.say(
                f"{self.node}: resuming after position {position:,};"
                f" the store is at {store_position:,}"
            )

        def batch(self, report: BatchReport) -> None:
            self.bar.update(self.task, completed=report.position)
            span = (
                f"positions {report.first:,}-{report.position:,}" if report.events > 1
                else f"position {report.first:,}"
            )
            self.say(
                f"{self.node}: shipped {plural(report.events, 'event')} ({span},"
                f" {report.shipped:,} in all); lag {plural(report.lag_events, 'event')},"
                f" {report.lag_seconds:,.3f} s"
            )

        def retry(self, reason: str, delay: float) -> None:
            self.say(f"{self.node}: PostgreSQL unavailable ({reason}); retrying in {delay:.1f} s")

    return ShipLog(node, bar, task)


@main.group()
def fleet() -> None:
    """Ask the fleet database that 'evstore ship' fills, without writing SQL."""


@fleet.command(name="ls")
@DSN_OPTION
@click.option("--node", help="Only this node's entries.")
@click.option(
    "--state", type=click.Choice(STATE_NAMES, case_sensitive=False), help="Only this state."
)
@JSON_FLAG
def fleet_ls(dsn: str, node: str | None, state: str | None, as_json: bool) -> None:
    """List the live containers and sandboxes of every node (as of what was shipped).

    --json prints an array of objects with node, id, entity, state, pid, exit_code,
    created_at, the whole status and the position of the entry's last event.
    """
    require("fleet", "evstore fleet ls")
    from evstore._cli.render import entry_object
    from evstore._fleet.database import list_current, reading

    with reading(dsn) as conn:
        found = list_current(conn, node, state.lower() if state else None)
    if as_json:
        echo_json([
            {"node": row.node, **entry_object(row.state), "position": row.position}
            for row in found
        ])
    else:
        click.echo(fleet_table(found, time.time_ns()))


def fleet_table(found: Iterable[FleetEntry], now: int) -> str:
    from evstore._cli import render

    rows = (
        (
            row.node, row.state.id, row.state.entity, render.state_name(row.state.status).upper(),
            str(row.state.status.pid), str(render.exit_code(row.state.status)),
            render.format_age(row.state.status.created_at, now),
        )
        for row in found
    )
    return render.columns(("node", "id", "entity", "state", "pid", "exit code", "age"), rows, 3)


@fleet.command(name="history")
@DSN_OPTION
@click.argument("node")
@click.argument("ident", metavar="ID")
@JSON_FLAG
def fleet_history(dsn: str, node: str, ident: str, as_json: bool) -> None:
    """Show every shipped event of container or sandbox ID on NODE, oldest first;
    --json prints an array of event objects (node, position, entity, id, seq, time,
    type, changes)."""
    require("fleet", "evstore fleet history")
    import msgspec

    from evstore._cli.render import events_table
    from evstore._fleet.database import node_history, node_ids, reading
    from evstore._history.ids import choose

    with reading(dsn) as conn:
        ident = choose(ident, node_ids(conn, node, ident), f"id shipped from node {node!r}")
        events = node_history(conn, node, ident)
    if as_json:
        echo_json([{"node": node, **msgspec.structs.asdict(event)} for event in events])
    else:
        click.echo(f"{events[0].entity} {ident} on {node}: {len(events):,} event(s)")
        click.echo(events_table(events))


# --- the table --------------------------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "—"  # no baseline for this figure
    if unit == "ops/s":
        return f"{value:,.0f}/s"
    if unit == "s":
        return f"{value * 1000:,.1f} ms" if value < 10 else f"{value:,.2f} s"
    if unit == "bytes":
        return f"{value:,.0f} B"
    return f"{value:g} {unit}"


def format_ratio(m: Measure) -> str:
    if math.isnan(m.ratio):
        return "—"
    wins = m.ratio > 1 if m.better == "higher" else m.ratio < 1
    colour = "green" if wins else "red"
    return f"[{colour}]{m.ratio:.2f}x[/{colour}]"


def results_table(result: BenchResult) -> Table:
    from rich.table import Table

    table = Table(title="evstore vs containerd file checkpoint (median of runs)")
    table.add_column("measure")
    table.add_column("evstore", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("better", justify="center")
    measures = result.measures
    for m, after in zip(measures, [*measures[1:], None], strict=True):
        table.add_row(
            m.description, format_value(m.evstore, m.unit), format_value(m.baseline, m.unit),
            format_ratio(m), m.better,
            end_section=after is not None and after.subject != m.subject,  # the peer apart
        )
    return table


def growth_table(result: BenchResult) -> Table | None:
    """Reopen time per container at each size: flat rows mean linear growth."""
    if not result.growth:
        return None
    from rich.table import Table

    sizes = sorted({n for curve in result.growth for n in curve["sizes"]})
    table = Table(title="reopen time per container (µs; a flat row grows linearly)")
    table.add_column("reopen")
    for n in sizes:
        table.add_column(f"{n:,} containers", justify="right")
    table.add_column("largest / smallest", justify="right")
    for curve in result.growth:
        per = dict(zip(curve["sizes"], curve["us_per_container"], strict=True))
        cells = [f"{per[n]:,.1f} µs" if n in per else "" for n in sizes]
        growth = curve["growth"]
        table.add_row(curve["label"], *cells, "" if growth is None else f"{growth:.2f}x")
    return table


def _footer(result: BenchResult) -> str:
    env = result.environment
    cfg = result.config
    peer = sorted({m.subject for m in result.measures} - {"evstore"})
    peers = (
        f" {', '.join(peer)} rows: that library's figure in the evstore column, ratio ="
        " it / baseline." if peer else ""
    )
    return (
        f"ratio = evstore / baseline.{peers} {cfg['repeats']} runs of {cfg['seconds']:g} s per"
        f" measure; {env['filesystem']} at {Path(env['directory']).parent}, {env['cpus']} CPUs,"
        f" Python {env['python']}; took {result.seconds:.0f} s."
    )


from evstore._cli.record import record  # noqa: E402 (its own module; registered here)

main.add_command(record)

if __name__ == "__main__":
    main()
