"""``evstore bench``: run the benchmark (``evstore._bench``) behind a progress bar, or load
a saved result, and show it as tables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from evstore._cli.errors import UserError
from evstore._cli.options import writable_file
from evstore._cli.output import progress_bar

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from evstore._bench import BenchConfig, BenchResult, Measure


@click.command()
@click.option(
    "--quick", is_flag=True, help="Short runs, 1,000 and 10,000 containers (about two minutes)."
)
@click.option(
    "--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
    callback=writable_file, help="Also write the results as JSON to this file.",
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
    callback=writable_file,
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


# --- the tables -------------------------------------------------------------------------------


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
