"""The tables ``evstore bench`` prints under its main one: latency, floors, targets.

They read the JSON form of the measures' details, so a result saved with ``--json`` shows
the same; a result without such details (an older file) shows none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table

from evstore._bench.latency import free_p99, free_p99_over_commit

if TYPE_CHECKING:
    from evstore._bench.result import BenchResult, Measure


def extra_tables(result: BenchResult) -> list[Table]:
    """The latency, floor and target tables that ``result`` has data for."""
    tables = (latency_table(result.measures), floor_table(result.measures),
              target_table(result.checks))
    return [table for table in tables if table is not None]


def _ms(seconds: float | None) -> str:
    """Milliseconds in at most five characters or so: 0.52, 8.04, 26.6, 262."""
    if seconds is None:
        return ""
    ms = seconds * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def _label(m: Measure) -> str:
    return m.description.removeprefix("update_sync/s, ")


def latency_table(measures: list[Measure]) -> Table | None:
    """Per-update latency of update_sync (evstore, and the baseline at the same thread
    counts), with the median commit of the same runs."""
    rows = []
    for m in measures:
        figures = m.detail.get("latency", {})
        if figures.get("latency"):
            free = free_p99(m.detail)
            rows.append((_label(m), {**figures, "free_p99": free,
                                     "free_over_commit": free_p99_over_commit(m.detail)}))
    for m in measures:
        figures = m.detail.get("baseline_latency", {})
        if figures.get("latency"):
            rows.append((f"baseline, {_label(m)}", figures))
    if not rows:
        return None
    table = Table(
        title="update_sync latency per update, ms, and the commits (put and fsync) of the"
        " same runs: median, p99 (c. p99), median events (batch); p99/c. = p99 / median"
        " commit; free p99: the p99 of the same harness with commits that cost nothing"
        " (the callers' own share: one writer, async tasks), and free/c. that over the"
        " median commit (medians of runs)",
        box=box.SIMPLE, pad_edge=False,
    )
    table.add_column("evstore", no_wrap=True)
    for name in ("p50", "p99", "p99.9", "commit", "c. p99", "batch", "p99/c.", "free p99",
                 "free/c."):
        table.add_column(name, justify="right", no_wrap=True)
    for label, figures in rows:
        latency, commits = figures["latency"], figures.get("commits", {})
        table.add_row(
            label, _ms(latency.get("p50")), _ms(latency.get("p99")), _ms(latency.get("p99.9")),
            _ms(commits.get("median_seconds")), _ms(commits.get("p99_seconds")),
            f"{commits['median_batch']:,.0f}" if "median_batch" in commits else "",
            _times(figures.get("p99_over_commit")), _ms(figures.get("free_p99")),
            _times(figures.get("free_over_commit")),
        )
    return table


def _times(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def floor_table(measures: list[Measure]) -> Table | None:
    """Each throughput against its floors, measured in the same run."""
    rows = [(m, floor) for m in measures for floor in m.detail.get("floors", [])]
    if not rows:
        return None
    table = Table(title="throughput against its floor (the same harness, the store's work free)")
    for name in ("measure", "evstore", "floor", "floor rate", "fraction"):
        table.add_column(name, justify="left" if name in ("measure", "floor") else "right")
    for m, floor in rows:
        table.add_row(m.description, f"{m.evstore:,.0f}/s", floor["kind"],
                      f"{floor['rate']:,.0f}/s", f"{floor['fraction']:.2f}")
    return table


def target_table(found: list[dict[str, Any]]) -> Table | None:
    """Each target of issue 19 with its figure in this run, met or missed."""
    if not found:
        return None
    table = Table(title="targets (issue 19), each a ratio within this run")
    for name in ("target", "figure", "limit", ""):
        table.add_column(name, justify="left" if name == "target" else "right")
    for item in found:
        unit = item["unit"]
        # a fraction near its limit shows a third digit: 0.796 reads as missed, 0.80 not
        figure = f"{item['figure']:.2f}x" if unit == "x" else f"{item['figure']:.3f} {unit}"
        limit = "" if item["limit"] is None else f"{item['op']} {item['limit']:g}"
        mark = {True: "met", False: "MISSED", None: "(reported)"}[item["met"]]
        table.add_row(item["what"], figure, limit, mark)
    return table
