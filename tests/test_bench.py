"""The benchmark harness and the ``evstore bench`` command (no timing asserts)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

import evstore
import evstore._bench
import evstore._cli.main
from evstore import (
    ContainerResources,
    ContainerStatus,
    EvstoreError,
    HugepageLimit,
    LinuxContainerResources,
    WindowsContainerResources,
)
from evstore._bench import (
    BenchConfig,
    BenchResult,
    FileCheckpoint,
    count_steps,
    latency,
    operator,
    peer,
    reopen,
    run,
    targets,
    throughput,
    workload,
)
from evstore._bench import plot as bench_plot
from evstore._bench.baseline import STATUS_FILE, encode_status
from evstore._bench.config import Progress, Steps
from evstore._bench.result import Measure, make_measure, reopen_growth
from evstore._core.extras import install_hint

REPO = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"  # the signature every PNG file starts with


# --- the runner -------------------------------------------------------------------------------


def test_runner_takes_every_measure(tmp_path: Path) -> None:
    cfg = BenchConfig(
        seconds=0.2, repeats=2, pool=8, threads=(2, 8), tasks=(1, 12), get_writers=3,
        reopen_sizes=(20, 50), peer_threads=(2, 8), peer_reopen_sizes=(20,),
        directory=tmp_path, operator_containers=0,  # operator rows: their own test, below
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
    timed = [m for m in result.measures if not m.name.startswith(("disk", "reopen"))]
    assert all(len(m.evstore_samples) == cfg.repeats for m in timed)
    for m in result.measures:  # a short measure: as many pairs as fit in each round
        if m.name.startswith("reopen"):
            assert len(m.evstore_samples) == len(m.baseline_samples) >= cfg.repeats, m.name

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

    _check_latency_and_floors(measures)
    assert [c["what"] for c in result.checks] == [
        "reopen, clean close, 20: / file load", "reopen, clean close, 50: / file load",
        "reopen after kill -9, 20: / file load", "reopen after kill -9, 50: / file load",
        # beside one writer and async tasks, the free writer's p99 (not beside threads)
        "update_sync p99 / median commit, 1 writer",
        "free writer's p99 / median commit, 1 writer",
        "update_sync p99 / median commit, 2 writers",
        "update_sync p99 / median commit, 8 writers",
        "update_sync p99 / median commit, 1 async task",
        "free writer's p99 / median commit, 1 async task",
        "update_sync p99 / median commit, 12 async tasks",
        "free writer's p99 / median commit, 12 async tasks",
        "update/s + flush, 1 writer: / free writer floor",
    ]
    for c in result.checks:  # the free writer's p99 is reported beside its target, no more
        assert c["figure"] > 0
        if c["what"].startswith("free writer's p99"):
            assert c["met"] is None
        else:
            assert isinstance(c["met"], bool)

    assert calls[-1] == (count_steps(cfg), count_steps(cfg))
    assert [done for done, _ in calls] == list(range(1, count_steps(cfg) + 1))
    assert list(tmp_path.iterdir()) == []  # the work directory is removed
    data = json.loads(json.dumps(result.to_dict()))  # JSON-serialisable as it is
    assert data["growth"] == result.growth and data["notes"] == []
    assert data["checks"] == result.checks
    assert BenchResult.from_dict(data).to_dict() == data  # what --from-json reads back


def _check_latency_and_floors(measures: dict[str, Measure]) -> None:
    """Each update_sync row carries its callers' latency and its commits, from the same
    runs; each throughput its floors."""
    for name in ("update_sync_1", "update_sync_2", "update_sync_8", "update_sync_async_1",
                 "update_sync_async_12"):
        figures = measures[name].detail["latency"]
        latency, commits = figures["latency"], figures["commits"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99.9"]
        assert latency["p99.9"] <= latency["max"] and latency["count"] > 0, name
        assert commits["median_seconds"] > 0 and commits["median_batch"] >= 1, name
        assert len(figures["runs"]) == 2, name
        assert figures["p99_over_commit"] == pytest.approx(statistics.median(
            run["latency"]["p99"] / run["commits"]["median_seconds"] for run in figures["runs"]
        ))
        free = measures[name].detail["free_latency"]  # the floor runs' own latencies
        assert len(free["runs"]) == 2 and "commits" not in free, name
        assert 0 < free["latency"]["p50"] <= free["latency"]["p99"], name
    for n in (1, 2, 8):  # the baseline's latency in the same runs
        base = measures[f"update_sync_{n}"].detail["baseline_latency"]
        assert base["latency"]["p99"] > 0 and "commits" not in base
    assert "latency" not in measures["update_1"].detail  # update does not wait
    kinds = {
        name: [f["kind"] for f in measures[name].detail.get("floors", [])] for name in measures
    }
    assert kinds["update_sync_1"] == ["free writer"]  # a lone writer commits itself
    assert kinds["update_sync_8"] == ["thread hand-off", "free writer"]
    assert kinds["update_sync_async_12"] == kinds["update_1"] == ["free writer"]
    assert kinds["get_loaded_3"] == kinds["reopen_20"] == []
    for m in measures.values():
        for floor in m.detail.get("floors", []):
            assert floor["rate"] == statistics.median(floor["samples"]) > 0, m.name
            assert floor["fraction"] == pytest.approx(m.evstore / floor["rate"]), m.name


def test_sizes_of_the_two_modes() -> None:
    assert BenchConfig.full().reopen_sizes == (1_000, 10_000, 100_000)
    assert BenchConfig.quick().reopen_sizes == (1_000, 10_000)  # 100,000 only in full runs
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
    assert peer.peer_measures(cfg, tmp_path, [], Steps(0, None), notes.append) == []
    assert notes == [f"peer skipped: {install_hint('peer')}"]
    assert peer.count_peer_steps(cfg) == 0
    assert count_steps(cfg) == count_steps(dataclasses.replace(cfg, peer=False))


def test_peer_durability_note_says_when_commits_are_not_fsyncd() -> None:
    full = peer.durability_note({"journal_mode": "WAL", "synchronous": "FULL"})
    normal = peer.durability_note({"journal_mode": "WAL", "synchronous": "NORMAL"})
    assert "fsync'd at every commit" in full
    assert "NOT fsync'd" in normal and "less durable than the baseline" in normal


def test_growth_without_reopen_measures_is_empty() -> None:
    assert reopen_growth([make_measure("update_sync_1", "x", "ops/s", [2.0], [1.0])]) == []


def test_killed_store_builder_reports_a_child_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reopen, "_KILLED_CHILD", "import sys; sys.exit('no disk here')")
    with pytest.raises(RuntimeError, match="no disk here"):
        reopen.build_killed(BenchConfig(), tmp_path / "killed", 5, Steps(0, None))


def test_killed_reopen_opens_a_copy_each_time(tmp_path: Path) -> None:
    cfg = BenchConfig(events=3)
    expected = {
        workload.container_id(i): msgspec.structs.replace(
            workload.start(workload.created_status(i)), pid=1_001
        )
        for i in range(4)
    }
    assert expected == {workload.container_id(i): workload.final_status(i, 3) for i in range(4)}
    steps: list[str] = []
    killed, _ = reopen.build_killed(
        cfg, tmp_path / "killed", 4, Steps(0, lambda w, d, t: steps.append(w))
    )
    assert len(steps) == cfg.events  # the adds, then events - 1 rounds, passed on
    first = reopen.time_killed_reopen(killed, expected)
    second = reopen.time_killed_reopen(killed, expected)
    assert first[2] and second[2]  # every flushed update survived the kill
    assert first[1]["events_replayed"] == second[1]["events_replayed"] > 0
    assert sorted(os.listdir(tmp_path)) == ["killed"]  # the copies are gone


def test_operator_commands_against_the_script(tmp_path: Path) -> None:
    """ls, pods and history ID run as processes on a store with pods; the script prints
    the very table ls prints for the same containers."""
    cfg = BenchConfig(repeats=1, operator_containers=8)
    steps: list[str] = []
    notes: list[str] = []
    found = operator.operator_measures(
        cfg, tmp_path, Steps(0, lambda w, d, t: steps.append(w)), notes.append
    )
    assert [m.name for m in found] == ["operator_ls_8", "operator_pods_8", "operator_history_8"]
    assert len(steps) == operator.count_operator_steps(cfg) == 5 and notes == []
    for m in found:
        assert m.unit == "s" and m.evstore > 0 and m.baseline > 0, m.name
        assert m.baseline_samples == found[0].baseline_samples  # one script run per round
    ls, pods, history = (m.detail for m in found)
    assert ls["output_lines"] == ls["script_output_lines"] == 8 + 1  # a header and a row each
    assert pods["output_lines"] == 1 + 6  # a header and the six running of two pods of four
    assert history["output_lines"] == 2 + 10  # title, header, ten events
    assert ls["argv"][-1] == "ls" and history["argv"][-1] == workload.container_id(0)
    assert ls["script_same_as_ls"] is True
    assert 0 < ls["python_start_median"] == pods["python_start_median"]
    assert ls["python_start_median"] < ls["libraries_median"] == history["libraries_median"]
    libraries = [c for c in targets.checks(found) if c["what"].startswith("python importing")]
    assert libraries[0]["what"] == (
        "python importing msgspec and lmdb as the lane loads them: / script"
    )
    assert [(c["limit"], c["met"]) for c in libraries] == [(None, None)]  # reported, no target
    assert libraries[0]["figure"] == ls["libraries_median"] / ls["script_median"]
    assert list(tmp_path.iterdir()) == []


def test_operator_rows_skipped_with_a_note_without_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(operator, "SCRIPT", tmp_path / "no-such-script.py")
    cfg = BenchConfig(repeats=1, operator_containers=8)
    notes: list[str] = []
    assert operator.operator_measures(cfg, tmp_path, Steps(0, None), notes.append) == []
    assert notes and notes[0].startswith("operator commands skipped")
    assert operator.count_operator_steps(cfg) == 0


def test_script_rejects_a_missing_directory(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(operator.SCRIPT), str(tmp_path / "none")],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 2 and done.stderr.startswith("usage:")


def test_committer_records_each_commit_only_when_asked(tmp_path: Path) -> None:
    with evstore.open(tmp_path / "store") as store:
        entries = workload.add_running(store, 3)
        assert store._writer.commit_samples is None  # off by default
        samples = store._writer.record_commits(limit=4)
        commits, events = store._writer.commits, store._writer.events
        for n in range(6):
            entries[n % 3].status.update_sync(workload.bump_pid)
        assert store._writer.commits - commits == 6
        assert store._writer.events - events == 6
        assert len(samples) == 4  # the last four of six
        assert all(seconds > 0 and size == 1 for seconds, size in samples)


def test_latency_percentiles_by_nearest_rank() -> None:
    samples = [float(n) for n in range(1, 1_001)]  # 1 .. 1000
    figures = latency.latency_summary(reversed(samples))
    assert figures == {"p50": 500.0, "p90": 900.0, "p99": 990.0, "p99.9": 999.0,
                       "max": 1000.0, "count": 1000.0}
    assert latency.percentile([7.0], 99.9) == 7.0
    assert latency.latency_summary([]) == {}
    run = latency.run_figures([1.0, 2.0, 3.0], [(0.5, 10), (1.0, 30), (2.0, 20)])
    assert run["commits"]["median_seconds"] == 1.0 and run["commits"]["median_batch"] == 20
    assert run["p99_over_commit"] == 3.0  # p99 of three samples is the largest
    runs = [run, latency.run_figures([5.0], [(1.0, 1)])]
    combined = latency.median_of_runs(runs)
    assert combined["latency"]["p99"] == 4.0 and combined["p99_over_commit"] == 4.0
    assert combined["runs"] == runs


def test_targets_are_marked_met_or_missed() -> None:
    def rate(name: str, fraction: float) -> Measure:
        m = make_measure(name, name, "ops/s", [80.0], [1.0])
        return throughput.with_floors(m, [80.0 / fraction])

    measures = [
        make_measure("reopen_1000", "reopen", "s", [0.9], [1.0]),
        make_measure("reopen_kill9_1000", "reopen", "s", [2.5], [1.0]),
        make_measure("operator_ls_1000", "ls", "s", [1.2], [1.0]),
        rate("update_1", 0.8), rate("update_sync_async_1000", 0.5),
        throughput.with_floors(make_measure("update_sync_64", "64", "ops/s", [10.0], [1.0]), [],
                           [0.01]),
    ]
    tasks = make_measure("update_sync_async_100", "100 tasks", "ops/s", [10.0], [1.0])
    for m, ratio in ((measures[-1], 3.5), (tasks, 2.5)):
        m.detail["latency"] = {"p99_over_commit": ratio, "commits": {"median_seconds": 0.001}}
        m.detail["free_latency"] = {"latency": {"p99": 0.004}}
    measures[-1].detail["writers"] = 64  # threads: the free writer's p99 bounds nothing
    tasks.detail["tasks"] = 100
    measures.append(tasks)
    marks = {c["what"]: (round(c["figure"], 6), c["met"]) for c in targets.checks(measures)}
    assert marks == {
        "reopen, clean close, 1,000: / file load": (0.9, True),
        "reopen after kill -9, 1,000: / file load": (2.5, False),
        "evstore ls, 1,000 containers: / script": (1.2, True),
        "update_sync p99 / median commit, 64": (3.5, False),
        "update_sync p99 / median commit, 100 tasks": (2.5, True),
        "free writer's p99 / median commit, 100 tasks": (4.0, None),  # reported, no target
        "update_1: / free writer floor": (0.8, True),
        "update_sync_async_1000: / free writer floor": (0.5, False),
        "64: / thread hand-off floor": (0.1, None),  # reported, no target
    }


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
        [sys.executable, "-m", "evstore", *args],
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
        ["peer skipped: nothing"], reopen_growth(measures), targets.checks(measures),
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

    monkeypatch.setattr(evstore._bench, "run", fake_run)
    out = tmp_path / "out.json"
    png = tmp_path / "out.png"
    result = CliRunner().invoke(
        evstore._cli.main.main,
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


def _result_with_latency() -> BenchResult:
    sync = make_measure("update_sync_64", "update_sync/s, 64 writers", "ops/s", [900.0], [100.0])
    run_figures = latency.run_figures([0.001, 0.002, 0.004], [(0.001, 20), (0.002, 40)])
    sync.detail["latency"] = latency.median_of_runs([run_figures])
    sync.detail["baseline_latency"] = latency.median_of_runs([latency.run_figures([0.01], None)])
    throughput.with_floors(sync, [1_800.0], [0.0005])
    free = latency.median_of_runs([latency.run_figures([0.001, 0.002, 0.003], None)])
    sync.detail["free_latency"] = free  # not shown: threads
    tasks = make_measure("update_sync_async_9", "update_sync/s, 9 async tasks", "ops/s",
                         [900.0], [100.0], {"tasks": 9, "free_latency": free})
    tasks.detail["latency"] = sync.detail["latency"]
    measures = [sync, tasks, make_measure("reopen_9", "reopen", "s", [0.5], [2.0])]
    env = {"filesystem": "ext4", "directory": "/tmp/x/y", "cpus": 2, "python": "3.11"}
    return BenchResult(
        {"repeats": 1, "seconds": 0.1, "events": 50}, env, measures, 1.0, [],
        reopen_growth(measures), targets.checks(measures),
    )


def test_cli_shows_latency_floors_and_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
        return _result_with_latency()

    # the command finds ``run`` in the cli module now, in evstore._bench once cli loads lazily
    monkeypatch.setattr(evstore._cli.main, "run", fake_run, raising=False)
    monkeypatch.setattr(evstore._bench, "run", fake_run)
    result = CliRunner().invoke(
        evstore._cli.main.main, ["bench", "--quick", "--dir", str(tmp_path)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    evstore_row = next(line for line in lines if line.strip().startswith("64 writers"))
    # p50 2 ms, p99 and p99.9 4 ms, commits of 1.5 ms (median) and 2 ms (p99), 30 events
    # at the median, p99 2.67x the median commit
    assert evstore_row.split()[2:] == ["2.00", "4.00", "4.00", "1.50", "2.00", "30", "2.67x"]
    tasks_row = next(line for line in lines if line.strip().startswith("9 async tasks"))
    # the same runs by tasks, with the free writer's p99: 3 ms, 2x the median commit
    assert tasks_row.split()[3:] == [
        "2.00", "4.00", "4.00", "1.50", "2.00", "30", "2.67x", "3.00", "2.00x"
    ]
    assert "10.0" in next(line for line in lines if "baseline, 64 writers" in line)
    floors = [line for line in lines if line.startswith("│ update_sync/s, 64 writers") and
              "floor" not in line and ("hand-off" in line or "free writer" in line)]
    assert "0.45" in floors[0] and "2,000/s" in floors[0]  # 900 of 1 / 0.5 ms
    assert "0.50" in floors[1] and "1,800/s" in floors[1]
    marks = {line.split("│")[1].strip(): line.split("│")[-2].strip()
             for line in lines if "/ file load" in line or "median commit," in line
             or "hand-off floor" in line}
    assert marks == {
        "reopen, clean close, 9: / file load": "met",
        "update_sync p99 / median commit, 64 writers": "met",
        "update_sync p99 / median commit, 9 async tasks": "met",
        "free writer's p99 / median commit, 9 async tasks": "(reported)",
        "update_sync/s, 64 writers: / thread hand-off floor": "(reported)",
    }


def test_plot_draws_latency_percentiles(tmp_path: Path) -> None:
    data = _result_with_latency().to_dict()
    lines = bench_plot.latency_lines(data["measures"])
    assert [(label, [round(v, 6) for v in values]) for label, values, _ in lines] == [
        ("evstore, 64 writers", [2.0, 4.0, 4.0, 4.0]),
        ("evstore, 9 async tasks", [2.0, 4.0, 4.0, 4.0]),
        ("baseline, 64 writers", [10.0, 10.0, 10.0, 10.0]),
    ]
    assert bench_plot.floor_series(data["measures"]) == [
        ("floor: free writer, threads", [(64, 1_800.0)], "o:")
    ]
    png = tmp_path / "plot.png"
    bench_plot.write_plot(data, png)
    assert png.read_bytes().startswith(PNG)


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
    monkeypatch.setattr(evstore._bench, "run", lambda cfg, progress=None: ran.append(cfg))
    result = CliRunner().invoke(
        evstore._cli.main.main, ["bench", "--quick", "--plot", str(tmp_path / "out.png")]
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

    monkeypatch.setattr(evstore._bench, "run", failing_run)
    result = CliRunner().invoke(evstore._cli.main.main, ["bench", "--quick"])
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
