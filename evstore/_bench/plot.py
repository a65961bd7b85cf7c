"""``evstore bench --plot``: the results as one PNG with three panels.

(a) update_sync throughput against concurrency (writers, threads or async tasks), (b) reopen
time against container count, (c) update_sync latency percentiles (evstore and baseline).
It reads the JSON form of a result (``BenchResult.to_dict``), so a saved ``--json`` file
plots the same as a fresh run. matplotlib comes with the ``plot`` extra and is imported only
here and only when plotting.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evstore._core.extras import install_hint

MODULE = "matplotlib"

Series = tuple[str, list[tuple[int, float]], str]  # label, (x, y) points, line style

# (measure name pattern, side, label, style) of each line; the number in the name is x
THROUGHPUT_LINES = (
    (r"update_sync_(\d+)", "evstore", "evstore, threads", "o-"),
    (r"update_sync_async_(\d+)", "evstore", "evstore, async tasks", "s-"),
    (r"update_sync_(\d+)", "baseline", "baseline (file checkpoint), threads", "^--"),
    (r"peer_update_sync_(\d+)", "evstore", "eventsourcing (SQLite), threads", "d:"),
)
REOPEN_LINES = (
    (r"reopen_(\d+)", "evstore", "evstore, clean close", "o-"),
    (r"reopen_kill9_(\d+)", "evstore", "evstore, after kill -9", "s-"),
    (r"reopen_(\d+)", "baseline", "baseline load (file checkpoint)", "^--"),
    (r"peer_reopen_(\d+)", "evstore", "eventsourcing (SQLite)", "d:"),
)


def missing() -> str | None:
    """Why ``--plot`` cannot work here (matplotlib is not installed), or None."""
    if importlib.util.find_spec(MODULE) is None:
        return f"--plot needs matplotlib, which is not installed: {install_hint('plot')}"
    return None


def series(
    measures: Iterable[dict[str, Any]], lines: Iterable[tuple[str, str, str, str]],
    scale: float = 1.0,
) -> list[Series]:
    """The points of each line found in ``measures`` (JSON measure objects), by x."""
    found: list[Series] = []
    measures = list(measures)
    for pattern, side, label, style in lines:
        points = sorted(
            (int(match.group(1)), m[side] * scale)
            for m in measures
            if (match := re.fullmatch(pattern, m["name"]))
        )
        if points:
            found.append((label, points, style))
    return found


# (measure name pattern, floor kind, label, style) of each floor line in panel (a)
FLOOR_LINES = (
    (r"update_sync_(\d+)", "free writer", "floor: free writer, threads", "o:"),
    (r"update_sync_async_(\d+)", "free writer", "floor: free writer, async tasks", "s:"),
)


def floor_series(measures: Iterable[dict[str, Any]]) -> list[Series]:
    """The free-writer floors measured beside the throughputs, as lines by concurrency."""
    found: list[Series] = []
    measures = list(measures)
    for pattern, kind, label, style in FLOOR_LINES:
        points = sorted(
            (int(match.group(1)), floor["rate"])
            for m in measures
            if (match := re.fullmatch(pattern, m["name"]))
            for floor in m.get("detail", {}).get("floors", [])
            if floor["kind"] == kind
        )
        if points:
            found.append((label, points, style))
    return found


LATENCY_POINTS = ("p50", "p90", "p99", "p99.9")


def latency_lines(measures: Iterable[dict[str, Any]]) -> list[tuple[str, list[float], str]]:
    """Each update_sync measure's latency percentiles (ms): evstore's, then the baseline's."""
    found = []
    measures = list(measures)
    for key, side, style in (("latency", "evstore", "o-"), ("baseline_latency", "baseline", "^--")):
        for m in measures:
            latency = m.get("detail", {}).get(key, {}).get("latency", {})
            if all(point in latency for point in LATENCY_POINTS):
                label = f"{side}, {m['description'].removeprefix('update_sync/s, ')}"
                found.append((label, [latency[p] * 1e3 for p in LATENCY_POINTS], style))
    return found


def write_plot(result: dict[str, Any], path: Path) -> None:
    """Draw the panels of ``result`` (``BenchResult.to_dict()``) into the PNG ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure = Figure(figsize=(18, 5.5), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas: no display, no global pyplot state
    rates, reopen, latency = figure.subplots(1, 3)
    measures = result["measures"]
    throughput = series(measures, THROUGHPUT_LINES) + floor_series(measures)
    _draw(rates, throughput, "writers / threads / async tasks", "updates/s")
    rates.set_title("(a) durable update throughput against concurrency")
    rates.set_ylim(bottom=0)
    reopen_ms = series(measures, REOPEN_LINES, scale=1000.0)
    _draw(reopen, reopen_ms, "containers", "reopen time (ms)")
    reopen.set_title(f"(b) reopen time, {result['config'].get('events', '?')} events each")
    reopen.set_yscale("log")
    reopen.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,g}"))
    reopen.yaxis.set_minor_formatter(NullFormatter())
    _draw_latency(latency, latency_lines(measures))
    figure.suptitle(_caption(result), fontsize="small")
    figure.savefig(path, format="png", dpi=120)


def _draw_latency(axes: Any, lines: list[tuple[str, list[float], str]]) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    xs = range(len(LATENCY_POINTS))
    for label, values, style in lines:
        axes.plot(xs, values, style, label=label)
    axes.set_xticks(list(xs), list(LATENCY_POINTS))
    axes.set_xlabel("percentile of update_sync calls")
    axes.set_ylabel("latency per update (ms)")
    axes.set_title("(c) update_sync latency (median of runs)")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,g}"))
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.grid(True, which="both", alpha=0.3)
    if lines:
        axes.legend(fontsize="small")


def _draw(axes: Any, lines: list[Series], xlabel: str, ylabel: str) -> None:
    from matplotlib.ticker import NullLocator

    for label, points, style in lines:
        axes.plot([x for x, _ in points], [y for _, y in points], style, label=label)
    axes.set_xscale("log")
    xs = sorted({x for _, points, _ in lines for x, _ in points})
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xticks(xs, [f"{x:,}" for x in xs])  # the counts measured, written out
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, which="both", alpha=0.3)
    if lines:
        axes.legend(fontsize="small")


def _caption(result: dict[str, Any]) -> str:
    env = result.get("environment", {})
    cfg = result.get("config", {})
    return (
        f"evstore bench: median of {cfg.get('repeats', '?')} runs of {cfg.get('seconds', '?')} s;"
        f" {env.get('filesystem', '?')}, {env.get('cpus', '?')} CPUs,"
        f" Python {env.get('python', '?')}, {env.get('time', '')}"
    )
