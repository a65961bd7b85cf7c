"""The fleet benchmark figure, on a small configuration against the suite's PostgreSQL (no
timing asserts), and how the bench table shows a figure without a baseline."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

import evstore._bench.fleet as fleet_module
from evstore._bench import BenchConfig, BenchResult, count_steps
from evstore._bench.config import Steps
from evstore._bench.fleet import (
    FleetConfig,
    count_fleet_steps,
    fleet_measures,
    fleet_rows,
    measure_fleet,
    percentile,
)
from evstore._cli.bench import format_ratio, format_value, results_table
from evstore._fleet.pgserver import PgServer


def test_fleet_ships_every_store_and_measures_ingest_and_lag(
    tmp_path: Path, pg_server: PgServer
) -> None:
    fleet = FleetConfig(stores=3, backlog=400, rate=60, seconds=0.5, repeats=2, batch=100)
    steps: list[str] = []
    runs = measure_fleet(
        fleet, pg_server, tmp_path, Steps(0, lambda what, done, total: steps.append(what))
    )
    assert len(steps) == 1 + fleet.repeats
    for n, run in enumerate(runs):
        assert run.exact
        # the backlog (grown by the earlier repeats' live events) plus this repeat's writes
        live = int(fleet.rate * fleet.seconds) * fleet.stores
        assert run.events == fleet.stores * fleet.backlog + (n + 1) * live
        assert len(run.lags) == live
        assert run.ingest > 0 and 0 < run.p50 <= run.p99 < 60

    rows = fleet_rows(fleet, runs, "15")
    assert [m.name for m in rows] == ["fleet_ingest_3", "fleet_lag_p50_3", "fleet_lag_p99_3"]
    for m in rows:
        assert math.isnan(m.baseline) and math.isnan(m.ratio) and m.baseline_samples == []
        assert len(m.evstore_samples) == fleet.repeats and m.detail["exact"] is True
        assert format_value(m.baseline, m.unit) == "—" and format_ratio(m) == "—"
    assert [m.better for m in rows] == ["higher", "lower", "lower"]
    result = BenchResult({"repeats": 2, "seconds": 0.5}, {}, rows, 1.0)
    assert len(results_table(result).rows) == 3


def test_fleet_figure_is_off_unless_asked_and_on_in_quick_and_full(tmp_path: Path) -> None:
    cfg = BenchConfig(seconds=0.1, repeats=1, reopen_sizes=(10,))
    notes: list[str] = []
    assert cfg.fleet_stores == 0 and count_fleet_steps(cfg) == 0
    assert fleet_measures(cfg, tmp_path, Steps(0, None), notes.append) == []
    assert notes == []
    assert BenchConfig.quick().fleet_stores == BenchConfig.full().fleet_stores == 8
    on = dataclasses.replace(cfg, fleet_stores=8)
    assert count_fleet_steps(on) == 2
    assert count_steps(on) == count_steps(cfg) + 2


def test_fleet_is_skipped_with_a_note_without_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet_module, "find_bindir", lambda: None)
    cfg = BenchConfig(seconds=0.1, repeats=1, reopen_sizes=(10,), fleet_stores=8)
    notes: list[str] = []
    assert fleet_measures(cfg, tmp_path, Steps(0, None), notes.append) == []
    assert notes == ["fleet skipped: no PostgreSQL server binaries (apt-get install postgresql)"]
    assert count_fleet_steps(cfg) == 0


def test_percentile_interpolates() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(map(float, range(101))), 99) == 99.0
    assert percentile([0.0, 10.0], 99) == 9.9
    assert percentile([5.0], 99) == 5.0
