"""The commands that check or change a store file: ``verify``, ``compact`` and
``import-containerd``."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

import evstore
from evstore._cli.options import JSON_FLAG, STORE_PATH, Parsed
from evstore._cli.output import echo_json, progress_bar
from evstore._core.times import format_time, parse_age, parse_time

if TYPE_CHECKING:
    from evstore._ops.compact import CompactReport, DropReport

T = TypeVar("T")


@click.command()
@STORE_PATH
@JSON_FLAG
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


@click.command()
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


@click.command(name="import-containerd")
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
