"""The benchmark harness and the ``evstore bench`` command (no timing asserts)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

import evstore.bench
import evstore.cli
from evstore import (
    ContainerResources,
    ContainerStatus,
    EvstoreError,
    HugepageLimit,
    LinuxContainerResources,
    WindowsContainerResources,
)
from evstore._extras import install_hint
from evstore.bench import BenchConfig, BenchResult, FileCheckpoint, count_steps, peer, run, runner
from evstore.bench import plot as bench_plot
from evstore.bench.baseline import STATUS_FILE, encode_status
from evstore.bench.runner import Progress, make_measure

REPO = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"  # the signature every PNG file starts with


# --- the runner -------------------------------------------------------------------------------


def test_runner_takes_every_measure(tmp_path: Path) -> None:
    cfg = BenchConfig(
        seconds=0.2, repeats=2, pool=8, threads=(2, 8), tasks=(1, 12), get_writers=3,
        reopen_sizes=(20, 50), peer_threads=(2, 8), peer_reopen_sizes=(20,),
        directory=tmp_path,
    )
    calls: list[tuple[int, int]] = []
    result = run(cfg, lambda what, done, total: calls.append((done, total)))

    names = [m.name for m in result.measures]
    assert names == [
        "update_sync_1", "update_sync_2", "update_sync_8", "update_sync_async_1",
        "update_sync_async_12", "update_1", "get_loaded_3", "reopen_20", "reopen_kill9_20",
        "disk_20", "reopen_50", "reopen_kill9_50", "disk_50", "peer_update_sync_1",
        "peer_update_sync_2", "peer_update_sync_8", "peer_reopen_20",
    ]
    assert result.notes == []
    for m in result.measures:
        assert m.evstore > 0 and m.baseline > 0, m.name
        assert math.isclose(m.ratio, m.evstore / m.baseline), m.name
        assert all(s > 0 for s in (*m.evstore_samples, *m.baseline_samples)), m.name
        assert m.better == ("higher" if m.unit == "ops/s" else "lower")
    timed = [m for m in result.measures if not m.name.startswith("disk")]
    assert all(len(m.evstore_samples) == cfg.repeats for m in timed)

    measures = {m.name: m for m in result.measures}
    for name in ("reopen_50", "reopen_kill9_50"):
        reopen = measures[name].detail
        assert reopen["statuses_match"] is True, name
        assert reopen["load_report"]["loaded"] == 50, name
        assert reopen["load_report"]["unknown"] == {}, name
    assert measures["reopen_50"].detail["events_replayed"] == 0  # closed cleanly
    assert measures["reopen_kill9_50"].detail["events_replayed"] > 0  # killed, never closed

    for n in (1, 2, 8):  # the peer, against the baseline samples of the same run
        peer_rate = measures[f"peer_update_sync_{n}"]
        assert peer_rate.subject == peer.LABEL
        assert peer_rate.baseline_samples == measures[f"update_sync_{n}"].baseline_samples
        assert peer_rate.detail["synchronous"] in ("FULL", "EXTRA")  # fsync'd per commit
    peer_reopen = measures["peer_reopen_20"]
    assert peer_reopen.detail["statuses_match"] is True
    assert peer_reopen.baseline_samples == measures["reopen_20"].baseline_samples
    assert all(m.subject == "evstore" for m in result.measures if not m.name.startswith("peer"))

    growth = {(g["kind"], g["side"]): g for g in result.growth}
    assert set(growth) == {
        ("reopen", "evstore"), ("reopen_kill9", "evstore"), ("reopen", "baseline"),
        ("peer_reopen", "evstore"),
    }
    clean = growth[("reopen", "evstore")]
    assert clean["sizes"] == [20, 50]
    assert clean["seconds"] == [measures["reopen_20"].evstore, measures["reopen_50"].evstore]
    per = [s / n * 1e6 for s, n in zip(clean["seconds"], clean["sizes"], strict=True)]
    assert clean["us_per_container"] == pytest.approx(per)
    assert clean["growth"] == pytest.approx(per[1] / per[0])
    assert growth[("peer_reopen", "evstore")]["growth"] is None  # one size only

    one_writer = measures["update_sync_1"].baseline_samples
    for name in ("update_sync_async_1", "update_sync_async_12", "update_1"):
        assert measures[name].baseline_samples == one_writer, name
    assert measures["update_sync_async_12"].detail["containers"] == 12
    get = measures["get_loaded_3"].detail
    assert get["writers"] == 3 and all(rate > 0 for rate in get["update_sync_per_s"])

    assert calls[-1] == (count_steps(cfg), count_steps(cfg))
    assert [done for done, _ in calls] == list(range(1, count_steps(cfg) + 1))
    assert list(tmp_path.iterdir()) == []  # the work directory is removed
    data = json.loads(json.dumps(result.to_dict()))  # JSON-serialisable as it is
    assert data["growth"] == result.growth and data["notes"] == []
    assert BenchResult.from_dict(data).to_dict() == data  # what --from-json reads back


def test_sizes_of_the_two_modes() -> None:
    assert BenchConfig.full().reopen_sizes == (1_000, 10_000, 100_000)
    assert BenchConfig.quick().reopen_sizes == (1_000,)
    assert BenchConfig.full().peer_threads == (8, 64)
    assert BenchConfig.full().peer_reopen_sizes == (1_000,)
    assert BenchConfig.quick().peer_threads == ()  # 1 writer only: to stay under a minute
    assert BenchConfig.quick().fleet_repeats == 1
    assert BenchConfig.quick().peer_reopen_sizes == ()
    assert BenchConfig.full().events == 50
    with pytest.raises(ValueError):
        BenchConfig(peer_reopen_sizes=(0,)).check()


def test_peer_is_skipped_with_a_note_when_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peer, "MODULE", "evstore_no_such_module")
    cfg = BenchConfig(seconds=0.1, repeats=1, reopen_sizes=(10,), peer_reopen_sizes=(10,))
    notes: list[str] = []
    assert not peer.available()
    assert peer.peer_measures(cfg, tmp_path, [], runner.Steps(0, None), notes.append) == []
    assert notes == [f"peer skipped: {install_hint('peer')}"]
    assert peer.count_peer_steps(cfg) == 0
    assert count_steps(cfg) == count_steps(dataclasses.replace(cfg, peer=False))


def test_peer_durability_note_says_when_commits_are_not_fsyncd() -> None:
    full = peer.durability_note({"journal_mode": "WAL", "synchronous": "FULL"})
    normal = peer.durability_note({"journal_mode": "WAL", "synchronous": "NORMAL"})
    assert "fsync'd at every commit" in full
    assert "NOT fsync'd" in normal and "less durable than the baseline" in normal


def test_growth_without_reopen_measures_is_empty() -> None:
    assert runner.reopen_growth([make_measure("update_sync_1", "x", "ops/s", [2.0], [1.0])]) == []


def test_killed_store_builder_reports_a_child_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "_KILLED_CHILD", "import sys; sys.exit('no disk here')")
    with pytest.raises(RuntimeError, match="no disk here"):
        runner.build_killed(BenchConfig(), tmp_path / "killed", 5, runner.Steps(0, None))


def test_killed_reopen_opens_a_copy_each_time(tmp_path: Path) -> None:
    cfg = BenchConfig(events=3)
    expected = {
        runner.container_id(i): msgspec.structs.replace(
            runner.start(runner.created_status(i)), pid=1_001
        )
        for i in range(4)
    }
    assert expected == {runner.container_id(i): runner.final_status(i, 3) for i in range(4)}
    steps: list[str] = []
    killed, _ = runner.build_killed(
        cfg, tmp_path / "killed", 4, runner.Steps(0, lambda w, d, t: steps.append(w))
    )
    assert len(steps) == cfg.events  # the adds, then events - 1 rounds, passed on
    first = runner.time_killed_reopen(killed, expected)
    second = runner.time_killed_reopen(killed, expected)
    assert first[2] and second[2]  # every flushed update survived the kill
    assert first[1]["events_replayed"] == second[1]["events_replayed"] > 0
    assert sorted(os.listdir(tmp_path)) == ["killed"]  # the copies are gone


# --- the baseline -----------------------------------------------------------------------------


def _full_status(**kw: Any) -> ContainerStatus:
    resources = ContainerResources(
        linux=LinuxContainerResources(
            cpu_period=100_000, cpu_quota=-1, cpu_shares=2, cpuset_cpus="0-1", cpuset_mems="0",
            memory_limit_in_bytes=1 << 30, memory_swap_limit_in_bytes=1 << 31,
            oom_score_adj=-999, unified={"memory.high": "max"},
            hugepage_limits=[HugepageLimit(page_size="2MB", limit=4 << 20)],
        ),
        windows=WindowsContainerResources(cpu_shares=10, cpu_count=2, cpu_maximum=5000),
    )
    fields: dict[str, Any] = {
        "pid": 4321, "created_at": 1_700_000_000_123_456_789,
        "started_at": 1_700_000_001_000_000_000, "finished_at": 1_700_000_002_000_000_000,
        "exit_code": -1, "reason": "OOMKilled", "message": 'killed "x"\n\u00e9\u2603',
        "resources": resources,
    }
    return ContainerStatus(**{**fields, **kw})


def test_baseline_round_trips_a_status(tmp_path: Path) -> None:
    status = _full_status()
    cp = FileCheckpoint(tmp_path)
    cp.add("c1", status)
    cp.add("c2", ContainerStatus(created_at=5))
    assert FileCheckpoint(tmp_path).load() == {"c1": status, "c2": ContainerStatus(created_at=5)}


def test_baseline_writes_containerd_json(tmp_path: Path) -> None:
    FileCheckpoint(tmp_path).add("c1", _full_status(starting=True, removing=True))
    doc = json.loads((tmp_path / "c1" / STATUS_FILE).read_bytes())
    assert list(doc) == [
        "Version", "Pid", "CreatedAt", "StartedAt", "FinishedAt", "ExitCode", "Reason",
        "Message", "Resources",
    ]
    assert doc["Version"] == "v1"
    assert doc["Resources"]["linux"]["cpu_shares"] == 2
    assert sorted(os.listdir(tmp_path / "c1")) == [STATUS_FILE]  # no temp file left


def test_baseline_drops_transient_flags(tmp_path: Path) -> None:
    FileCheckpoint(tmp_path).add("c1", ContainerStatus(created_at=1, starting=True, removing=True))
    assert FileCheckpoint(tmp_path).load()["c1"] == ContainerStatus(created_at=1)


def test_baseline_update_sync_rewrites_the_file(tmp_path: Path) -> None:
    cp = FileCheckpoint(tmp_path)
    cp.add("c1", ContainerStatus(created_at=1))
    new = cp.update_sync("c1", lambda s: msgspec.structs.replace(s, pid=7, started_at=2))
    assert new == ContainerStatus(created_at=1, started_at=2, pid=7)
    assert cp.get("c1") == new
    assert FileCheckpoint(tmp_path).load() == {"c1": new}


def test_baseline_update_fn_error_changes_nothing(tmp_path: Path) -> None:
    cp = FileCheckpoint(tmp_path)
    cp.add("c1", ContainerStatus(created_at=1))

    def boom(s: ContainerStatus) -> ContainerStatus:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cp.update_sync("c1", boom)
    assert FileCheckpoint(tmp_path).load() == {"c1": ContainerStatus(created_at=1)}


def test_baseline_bad_files_load_as_unknown(tmp_path: Path) -> None:
    cp = FileCheckpoint(tmp_path)
    for cid in ("good", "garbage", "future", "missing"):
        cp.add(cid, ContainerStatus(created_at=1))
    (tmp_path / "garbage" / STATUS_FILE).write_bytes(b"{not json")
    future = encode_status(ContainerStatus(created_at=1)).replace(b'"v1"', b'"v2"')
    (tmp_path / "future" / STATUS_FILE).write_bytes(future)
    (tmp_path / "missing" / STATUS_FILE).unlink()

    loader = FileCheckpoint(tmp_path)
    loaded = loader.load()
    assert loaded["good"] == ContainerStatus(created_at=1)
    assert set(loader.unknown) == {"garbage", "future", "missing"}
    for cid in loader.unknown:
        assert loaded[cid].unknown and loaded[cid].exit_code == 255, cid
    assert "v2" in loader.unknown["future"]


# --- the command line -------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "evstore.cli", *args],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=60, check=False,
    )


def test_cli_bench_help() -> None:
    done = _cli("bench", "--help")
    assert done.returncode == 0, done.stderr
    for option in ("--quick", "--json", "--dir", "--repeats", "--plot", "--from-json"):
        assert option in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "--no-such-option"],
        ["bench", "--repeats", "0"],
        ["bench", "--dir", "/nonexistent/evstore-bench"],
        ["bench", "--json", "/nonexistent/evstore-bench/out.json"],
        ["bench", "--plot", "/nonexistent/evstore-bench/out.png"],
        ["bench", "--from-json", "/nonexistent/evstore-bench/run.json"],
        ["bench", "--from-json", str(REPO / "pyproject.toml")],
        ["no-such-command"],
    ],
)
def test_cli_user_mistake_is_one_line(args: list[str]) -> None:
    done = _cli(*args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert done.stderr.count("\n") == 1


def _fake_result() -> BenchResult:
    measures = [
        make_measure("update_sync_1", "update_sync/s, 1 writer", "ops/s", [300.0], [100.0]),
        make_measure("update_sync_8", "update_sync/s, 8 writers", "ops/s", [900.0], [200.0]),
        make_measure("update_sync_async_100", "100 tasks", "ops/s", [2000.0], [100.0]),
        make_measure("reopen_9", "reopen", "s", [0.5], [2.0]),
        make_measure("reopen_kill9_9", "reopen after kill -9", "s", [0.9], [2.0]),
        make_measure("disk_9", "disk per container", "bytes", [5000.0], [8192.0]),
        make_measure("reopen_90", "reopen", "s", [4.0], [30.0]),
        make_measure(
            "peer_update_sync_1", "eventsourcing (SQLite): durable update/s, 1 writer", "ops/s",
            [50.0], [100.0], subject=peer.LABEL,
        ),
        make_measure("fleet_ingest", "fleet: events/s ingested", "ops/s", [9000.0], [0.0]),
    ]
    env = {"filesystem": "ext4", "directory": "/tmp/x/y", "cpus": 2, "python": "3.11"}
    return BenchResult(
        {"repeats": 1, "seconds": 0.1, "events": 50}, env, measures, 1.0,
        ["peer skipped: nothing"], runner.reopen_growth(measures),
    )


def test_cli_bench_prints_table_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[BenchConfig] = []

    def fake_run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
        seen.append(cfg)
        if progress is not None:
            progress("one", 1, 1)
        return _fake_result()

    monkeypatch.setattr(evstore.bench, "run", fake_run)
    out = tmp_path / "out.json"
    png = tmp_path / "out.png"
    result = CliRunner().invoke(
        evstore.cli.main,
        ["bench", "--quick", "--json", str(out), "--dir", str(tmp_path), "--repeats", "2",
         "--plot", str(png)],
    )
    assert result.exit_code == 0, result.output
    assert result.output.lstrip(" ").startswith("evstore vs containerd")  # no bar left behind
    assert "update_sync/s, 1 writer" in result.output
    assert "3.00x" in result.output and "0.25x" in result.output
    assert "reopen time per container" in result.output  # the growth table
    assert "55,555.6 µs" in result.output and "44,444.4 µs" in result.output  # 0.5 s/9, 4 s/90
    assert "peer skipped: nothing" in result.output
    saved = json.loads(out.read_text())
    assert saved["measures"][0]["ratio"] == 3.0
    assert saved["growth"][0]["us_per_container"] == pytest.approx([0.5 / 9 * 1e6, 4 / 90 * 1e6])
    assert saved["measures"][-2]["subject"] == peer.LABEL
    assert png.read_bytes().startswith(PNG)
    assert seen[0].repeats == 2 and seen[0].directory == tmp_path
    assert seen[0].reopen_sizes == BenchConfig.quick().reopen_sizes


def test_cli_bench_plots_a_saved_result(tmp_path: Path) -> None:
    """The real command in a subprocess: a saved --json result shown and plotted, no run."""
    saved = tmp_path / "run.json"
    saved.write_bytes(msgspec.json.encode(_fake_result().to_dict()))  # NaN ratio: null
    png = tmp_path / "plot.png"
    again = tmp_path / "again.json"
    done = _cli(
        "bench", "--from-json", str(saved), "--plot", str(png), "--json", str(again)
    )
    assert done.returncode == 0, done.stderr
    assert "update_sync/s, 1 writer" in done.stdout and "eventsourcing (SQLite)" in done.stdout
    assert f"plot written to {png}" in done.stdout.replace("\n", "")
    assert png.read_bytes().startswith(PNG) and png.stat().st_size > 10_000
    # strict JSON (a parser that refuses NaN reads it), the same figures as what was read
    strict = json.loads(again.read_text(), parse_constant=pytest.fail)
    assert strict == json.loads(saved.read_text())
    assert strict["measures"][-1]["ratio"] is None and strict["measures"][-1]["baseline"] == 0


def test_plot_lines_come_from_the_measure_names() -> None:
    measures = _fake_result().to_dict()["measures"]
    lines = bench_plot.series(measures, bench_plot.THROUGHPUT_LINES)
    rates = {label: points for label, points, _ in lines}
    assert rates == {
        "evstore, threads": [(1, 300.0), (8, 900.0)],
        "evstore, async tasks": [(100, 2000.0)],
        "baseline (file checkpoint), threads": [(1, 100.0), (8, 200.0)],
        "eventsourcing (SQLite), threads": [(1, 50.0)],
    }
    lines = bench_plot.series(measures, bench_plot.REOPEN_LINES)
    reopen = {label: points for label, points, _ in lines}
    assert reopen["evstore, clean close"] == [(9, 0.5), (90, 4.0)]
    assert reopen["evstore, after kill -9"] == [(9, 0.9)]
    assert reopen["baseline load (file checkpoint)"] == [(9, 2.0), (90, 30.0)]


def test_cli_plot_without_matplotlib_fails_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[BenchConfig] = []
    monkeypatch.setattr(bench_plot, "MODULE", "evstore_no_such_module")
    monkeypatch.setattr(evstore.bench, "run", lambda cfg, progress=None: ran.append(cfg))
    result = CliRunner().invoke(
        evstore.cli.main, ["bench", "--quick", "--plot", str(tmp_path / "out.png")]
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: --plot needs matplotlib, which is not installed: {install_hint('plot')}\n"
    )
    assert ran == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (EvstoreError("store is\nbroken"), "error: store is broken\n"),
        (PermissionError(13, "Permission denied"), "error: [Errno 13] Permission denied\n"),
    ],
)
def test_cli_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, exc: Exception, message: str
) -> None:
    def failing_run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
        raise exc

    monkeypatch.setattr(evstore.bench, "run", failing_run)
    result = CliRunner().invoke(evstore.cli.main, ["bench", "--quick"])
    assert result.exit_code == 1
    assert result.stderr == message
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_floors_script_measures_each_floor(tmp_path: Path) -> None:
    """benchmarks/floors.py (the limits the README cites) runs and prints a figure for each."""
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "floors.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick"], capture_output=True, text=True, timeout=300,
        cwd=tmp_path, check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0].split(",")[0] for line in lines] == [
        "asyncio floor", "in-memory part of status.update", "in-memory part of status.update",
        "one writer", "free writer (commits write nothing)",
        "thread hand-off (two threads waking each other)",
    ]
    figures = [re.findall(r"\b\d[\d,]*(?:\.\d+)?", line.split(": ", 1)[1]) for line in lines]
    assert all(float(found[0].replace(",", "")) > 0 for found in figures)
