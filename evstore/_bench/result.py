"""The figures a run gives: each measure, the whole result (what ``--json`` saves), and the
reopen curves derived from the measures."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evstore._bench.targets import checks


@dataclass
class Measure:
    """One figure: the medians of both sides and their ratio ``evstore / baseline``."""

    name: str
    description: str
    unit: str  # "ops/s", "s" or "bytes"
    better: str  # "higher" or "lower"
    evstore: float
    baseline: float
    ratio: float
    evstore_samples: list[float]
    baseline_samples: list[float]
    detail: dict[str, Any] = field(default_factory=dict)
    subject: str = "evstore"  # what the "evstore" figures measured (the peer's rows say so)


@dataclass
class BenchResult:
    config: dict[str, Any]
    environment: dict[str, Any]
    measures: list[Measure]
    seconds: float
    notes: list[str] = field(default_factory=list)  # e.g. a measure skipped, and why
    growth: list[dict[str, Any]] = field(default_factory=list)  # see ``reopen_growth``
    checks: list[dict[str, Any]] = field(default_factory=list)  # see ``targets.checks``

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """The result ``to_dict`` gave (read back from ``--json``); older files without
        ``notes``, ``growth`` or ``checks`` get them filled in."""
        measures = [Measure(**_nan_for_null(m)) for m in data["measures"]]
        growth = data.get("growth") or reopen_growth(measures)
        return cls(
            data["config"], data["environment"], measures, data["seconds"],
            list(data.get("notes", [])), growth, data.get("checks") or checks(measures),
        )


def _nan_for_null(measure: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a figure without a baseline was saved as null."""
    figures = ("evstore", "baseline", "ratio")
    return {k: float("nan") if k in figures and v is None else v for k, v in measure.items()}


def make_measure(
    name: str, description: str, unit: str,
    evstore_samples: Sequence[float], baseline_samples: Sequence[float],
    detail: dict[str, Any] | None = None, subject: str = "evstore",
) -> Measure:
    ev = statistics.median(evstore_samples)
    base = statistics.median(baseline_samples)
    return Measure(
        name=name, description=description, unit=unit,
        better="higher" if unit == "ops/s" else "lower",
        evstore=ev, baseline=base, ratio=ev / base if base else float("nan"),
        evstore_samples=list(evstore_samples), baseline_samples=list(baseline_samples),
        detail=detail or {}, subject=subject,
    )


_GROWTH_KINDS = (  # (measure name prefix, side, label) of each reopen curve
    ("reopen", "evstore", "evstore, clean close"),
    ("reopen_kill9", "evstore", "evstore, after kill -9"),
    ("reopen", "baseline", "baseline load (file checkpoint)"),
    ("peer_reopen", "evstore", "eventsourcing (SQLite)"),
)


def reopen_growth(measures: Sequence[Measure]) -> list[dict[str, Any]]:
    """For each reopen curve, the median time per container at each size measured.

    Flat figures mean reopen grows linearly in containers; ``growth`` is the figure at the
    largest size over the one at the smallest (above 1: faster than linear; None with one
    size).
    """
    curves: list[dict[str, Any]] = []
    for prefix, side, label in _GROWTH_KINDS:
        points = sorted(
            (int(m.name.removeprefix(prefix + "_")), getattr(m, side))
            for m in measures
            if m.name.startswith(prefix + "_") and m.name.removeprefix(prefix + "_").isdigit()
        )
        if not points:
            continue
        per = [seconds / size * 1e6 for size, seconds in points]
        curves.append({
            "kind": prefix, "side": side, "label": label, "sizes": [n for n, _ in points],
            "seconds": [s for _, s in points], "us_per_container": per,
            "growth": per[-1] / per[0] if len(per) > 1 and per[0] else None,
        })
    return curves
