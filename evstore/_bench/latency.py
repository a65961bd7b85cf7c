"""Per-update latency and per-commit figures, taken in the same runs as the throughputs.

A caller's latency is the time one ``update_sync`` took in its loop (the loop's clock read
serves both the deadline and the sample, so recording costs one append). A commit's
duration is the committer's own clock around putting a batch and syncing it
(``Committer.record_commits``). Each run is summarised on its own; a measure reports the
median of its runs' figures, as it does for its throughput.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9))


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``ordered`` (sorted, not empty)."""
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least the first
    return ordered[int(rank) - 1]


def latency_summary(samples: Iterable[float]) -> dict[str, float]:
    """p50, p90, p99, p99.9 and max of one run's latencies (seconds), and their count."""
    ordered = sorted(samples)
    if not ordered:
        return {}
    figures = {name: percentile(ordered, p) for name, p in PERCENTILES}
    return {**figures, "max": ordered[-1], "count": float(len(ordered))}


def commit_summary(samples: Iterable[tuple[float, int]]) -> dict[str, float]:
    """Median duration (seconds) and median size (events) of one run's commits."""
    taken = list(samples)
    if not taken:
        return {}
    return {
        "median_seconds": statistics.median(s for s, _ in taken),
        "median_batch": statistics.median(n for _, n in taken),
        "commits": float(len(taken)),
        "p99_seconds": percentile(sorted(s for s, _ in taken), 99.0),
        "events": float(sum(n for _, n in taken)),
    }


def run_figures(latencies: Iterable[float], commits: Iterable[tuple[float, int]] | None) -> (
    dict[str, Any]
):
    """One run: its latency percentiles, its commits, and p99 over the median commit."""
    run: dict[str, Any] = {"latency": latency_summary(latencies)}
    if commits is not None:
        run["commits"] = commit_summary(commits)
        median = run["commits"].get("median_seconds")
        if median and run["latency"]:
            run["p99_over_commit"] = run["latency"]["p99"] / median
    return run


def median_of_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each figure as the median over the runs that have it; the runs kept as they were."""
    out: dict[str, Any] = {"runs": list(runs)}
    for part in ("latency", "commits"):
        keys = {k for run in runs for k in run.get(part, {})}
        if keys:
            out[part] = {
                k: statistics.median(run[part][k] for run in runs if k in run.get(part, {}))
                for k in sorted(keys)
            }
    ratios = [run["p99_over_commit"] for run in runs if "p99_over_commit" in run]
    if ratios:
        out["p99_over_commit"] = statistics.median(ratios)
    return out


def free_p99(detail: dict[str, Any]) -> float | None:
    """A measure's p99 with the free writer (its ``free_latency``), where that is the
    callers' own share of its p99: for one caller, and for async tasks, which take turns
    on one event loop (a task waits for the others' steps with or without a commit). None
    for many threads: with commits that cost nothing none of them sleeps, and they queue
    for the GIL as they never do on a real disk."""
    if not ("tasks" in detail or detail.get("writers") == 1):
        return None
    p99: float | None = detail.get("free_latency", {}).get("latency", {}).get("p99")
    return p99


def free_p99_over_commit(detail: dict[str, Any]) -> float | None:
    """The free writer's p99 over the median commit of the store's own runs: how much of
    the p99 target the callers use up before the store does any work."""
    free = free_p99(detail)
    median = detail.get("latency", {}).get("commits", {}).get("median_seconds")
    return free / median if free is not None and median else None
