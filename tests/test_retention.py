"""Retention: ``compact(drop_before=...)`` / ``evstore compact --drop-before/--keep`` drops
the history that snapshots cover, and everything that reads history still answers from
what is kept (bases at the floor), or says clearly that a point was dropped."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from damage import flip_byte, records, rewrite
from test_pods import add_container, add_sandbox, restarts

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxStatus
from evstore._core.errors import HistoryDroppedError, NotFoundError
from evstore._history.replay import states_at
from evstore._ops.compact import compact
from evstore._ops.verify import verify
from evstore._storage.retention import base_key
from evstore._store.store import abandon

EVSTORE = str(Path(sys.executable).with_name("evstore"))


def replace(**fields: object) -> Any:
    return lambda s: msgspec.structs.replace(s, **fields)


def old_then_new(path: Path) -> int:
    """Write an old phase and a new one; return a time between them (the cut)."""
    with evstore.open(path) as store:
        for i in range(4):
            entry = store.containers.add(ContainerMetadata(id=f"c{i}"), ContainerStatus())
            for pid in range(1, 6):
                entry.status.update_sync(replace(pid=pid))
        store.containers.delete("c0")  # deleted before the cut: goes entirely
        store.containers.delete("c1")  # deleted, then added again after the cut
        store.sandboxes.add(SandboxMetadata(id="s0"), SandboxStatus(created_at=5))
    time.sleep(0.002)
    cut = time.time_ns()
    time.sleep(0.002)
    with evstore.open(path) as store:
        store.containers.add(ContainerMetadata(id="c1"), ContainerStatus(created_at=9))
        store.containers.get("c2").status.update_sync(replace(pid=99))
    return cut


def snapshot_of(path: Path) -> dict[str, Any]:
    """Everything a reader can see: live statuses, every entry's status at each kept seq,
    the node at every kept position."""
    with evstore.open(path, readonly=True) as store:
        live = {e.id: e.status.get() for e in store.containers.list()}
        live.update({e.id: e.status.get() for e in store.sandboxes.list()})
        events = list(store.events())
        at_seq = {
            (ev.id, ev.seq): store.status_at(ev.id, seq=ev.seq)
            for ev in events if ev.type != "deleted"
        }
        at_pos = {ev.position: states_at(store, position=ev.position) for ev in events}
        return {"live": live, "events": events, "at_seq": at_seq, "at_pos": at_pos,
                "last": store.last_position}


def test_drop_keeps_every_answer_after_the_floor(store_path: Path) -> None:
    cut = old_then_new(store_path)
    before = snapshot_of(store_path)
    report = compact(store_path, drop_before=cut)
    dropped = report.dropped
    assert dropped is not None
    kept_events = [ev for ev in before["events"] if ev.time >= cut]
    assert [ev.position for ev in kept_events] == [28, 29]
    assert dropped.floor == 27 and dropped.events == 27
    assert dropped.removed == ["c0"] and dropped.kept == []
    assert dropped.entries == 5  # c0..c3 and s0
    assert report.after < report.before
    assert verify(store_path).ok, verify(store_path).problems
    after = snapshot_of(store_path)
    assert after["live"] == before["live"]
    assert after["events"] == kept_events
    assert after["last"] == before["last"]
    for key, status in after["at_seq"].items():
        assert before["at_seq"][key] == status
    for position, states in after["at_pos"].items():
        assert before["at_pos"][position] == states
    with evstore.open(store_path, readonly=True) as store:
        with pytest.raises(NotFoundError):
            store.history("c0")  # gone entirely
        assert [ev.seq for ev in store.history("c2")] == [7]
        assert store.status_at("c2", seq=6).pid == 5  # the base itself
        assert store.status_at("s0", seq=1).created_at == 5  # only a base left
        assert store.status_at("c2", time=cut).pid == 5
        with pytest.raises(HistoryDroppedError, match="up to 6 were dropped"):
            store.status_at("c2", seq=5)
        with pytest.raises(HistoryDroppedError):
            states_at(store, position=26)
        with pytest.raises(HistoryDroppedError):
            states_at(store, time=0)
        assert states_at(store, position=27) == before["at_pos"][27]
        assert states_at(store, time=cut) == before["at_pos"][27]
        with pytest.raises(NotFoundError, match="no such"):
            store.status_at("c0", seq=1)


def test_open_after_drop_writes_on_without_reusing_positions(store_path: Path) -> None:
    cut = old_then_new(store_path)
    # the newest events dropped too: nothing but bases left
    compact(store_path, drop_before=time.time_ns() + 10**9)
    with evstore.open(store_path) as store:
        assert store.last_position == 29 and list(store.events()) == []
        added = store.containers.add(ContainerMetadata(id="c0"), ContainerStatus())
        added.status.update_sync(replace(pid=1))
        store.containers.get("c2").status.update_sync(replace(pid=100))
        assert [(ev.position, ev.id, ev.seq) for ev in store.events()] == [
            (30, "c0", 1), (31, "c0", 2), (32, "c2", 8),
        ]
        with pytest.raises(HistoryDroppedError):  # the cut lies before the new floor
            states_at(store, time=cut)
    assert verify(store_path).ok


def test_second_drop_moves_the_floor_and_rerun_drops_nothing(store_path: Path) -> None:
    cut = old_then_new(store_path)
    first = compact(store_path, drop_before=cut).dropped
    again = compact(store_path, drop_before=cut).dropped
    assert first is not None and again is not None
    assert (again.floor, again.events) == (first.floor, 0)
    later = compact(store_path, drop_before=time.time_ns()).dropped
    assert later is not None and (later.floor, later.events) == (29, 2)
    assert verify(store_path).ok
    with evstore.open(store_path, readonly=True) as store:
        assert store.containers.get("c2").status.get().pid == 99
        assert store.containers.get("c1").status.get().created_at == 9


def test_drop_stops_at_the_checkpoint(store_path: Path) -> None:
    """Events after the checkpoint are not covered by snapshots: they stay."""
    store = evstore.open(store_path, snapshot_every=4, checkpoint_every=4)
    entry = store.containers.add(ContainerMetadata(id="c"), ContainerStatus())
    for pid in range(1, 10):
        entry.status.update_sync(replace(pid=pid))
    abandon(store)  # as a crash leaves it: no snapshots at close
    checkpoint = _checkpoint_of(store_path)
    assert 0 < checkpoint < 10
    dropped = compact(store_path, drop_before=time.time_ns()).dropped
    assert dropped is not None and dropped.floor == checkpoint
    assert verify(store_path).ok
    with evstore.open(store_path, readonly=True) as store:
        assert store.containers.get("c").status.get().pid == 9


def _checkpoint_of(path: Path) -> int:
    for key, value in records(path, b"meta"):
        if key == b"checkpoint":
            return int.from_bytes(value[-8:], "big")  # checkpoint: a bare u64
    return 0


def test_damaged_snapshot_falls_back_to_the_base(store_path: Path) -> None:
    cut = old_then_new(store_path)
    compact(store_path, drop_before=cut)
    eno = _eno_with_base(store_path, "c3")
    rewrite(store_path, b"snapshots", eno.to_bytes(4, "big"), flip_byte())
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        assert store.containers.get("c3").status.get().pid == 5


def test_damaged_base_and_snapshot_load_unknown_alone(store_path: Path) -> None:
    cut = old_then_new(store_path)
    compact(store_path, drop_before=cut)
    eno = _eno_with_base(store_path, "c3")
    rewrite(store_path, b"meta", base_key(eno), flip_byte())
    report = verify(store_path)
    assert any("base: checksum mismatch" in p for p in report.problems), report.problems
    rewrite(store_path, b"snapshots", eno.to_bytes(4, "big"), flip_byte())
    with evstore.open(store_path) as store:
        assert list(store.load_report.unknown) == [f"#{eno}"]
        assert store.containers.get("c2").status.get().pid == 99  # the others load exactly


def _eno_with_base(path: Path, ident: str) -> int:
    for key, value in records(path, b"meta"):
        if key.startswith(b"base") and ident.encode() in value:
            return int.from_bytes(key[4:], "big")
    raise KeyError(ident)


def test_damaged_entry_keeps_its_history(store_path: Path) -> None:
    cut = old_then_new(store_path)
    for key, _value in records(store_path, b"events"):
        if key[8:16] == (4).to_bytes(4, "big") + (3).to_bytes(4, "big"):  # c3 event 3
            rewrite(store_path, b"events", key, flip_byte())
    dropped = compact(store_path, drop_before=cut).dropped
    assert dropped is not None and dropped.kept == ["c3"]
    with evstore.open(store_path, readonly=True) as store:
        assert [ev.seq for ev in store.history("c3")] == [1, 2, 4, 5, 6]  # 3 is unreadable
        assert store.history("c2")[0].seq == 7
    report = verify(store_path)
    assert report.problems and all("c3" in p for p in report.problems), report.problems


def test_restart_counts_survive_the_drop(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        add_sandbox(store, "sb", "uid-a", "web")
        for n in range(3):
            add_container(store, f"c{n}", "nginx", "sb", state="exited")
            if n < 2:
                store.containers.delete(f"c{n}")
        before = restarts(store, "uid-a")
    assert before == {"c2": 2}
    compact(store_path, drop_before=time.time_ns())
    with evstore.open(store_path) as store:
        assert restarts(store, "uid-a") == before
        add_container(store, "c3", "nginx", "sb")
        assert restarts(store, "uid-a") == {"c2": 2, "c3": 3}


def test_without_retention_nothing_is_dropped(store_path: Path) -> None:
    old_then_new(store_path)
    before = snapshot_of(store_path)
    assert compact(store_path).dropped is None
    assert snapshot_of(store_path)["events"] == before["events"]


# --- the command line ---------------------------------------------------------------------


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVSTORE, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_compact_with_retention_says_what_it_dropped(store_path: Path) -> None:
    cut = old_then_new(store_path)
    result = run("compact", store_path, "--drop-before", cut)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dropped 27 events up to position 27 (")
    assert lines[0].endswith(") from 5 entries")
    assert lines[1] == "removed 1 deleted entries: c0"
    assert lines[2].startswith(f"{store_path}: ") and "bytes reclaimed" in lines[2]
    history = run("history", store_path, "c2")
    assert history.returncode == 0, history.stderr
    assert history.stdout.splitlines()[:2] == [
        "container c2: 1 event(s)", "(events 1..6 dropped by compaction)",
    ]
    only_base = run("history", store_path, "s0")
    assert only_base.stdout.splitlines() == [
        "s0: 0 event(s)", "(events 1..1 dropped by compaction)",
    ]
    replay = run("replay", store_path, "--position", 3)
    assert replay.returncode == 1 and replay.stdout == ""
    assert replay.stderr.startswith("error: the history up to position 27 (")
    assert len(replay.stderr.splitlines()) == 1
    again = run("compact", store_path, "--keep", "1h")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == (
        "nothing to drop: the history already starts after position 27"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep", "1h", "--drop-before", "0"], "give at most one of --drop-before and --keep"),
        (["--keep", "soon"], "'soon' is not an age such as 30d, 12h, 90m or 45s"),
        (["--drop-before", "yesterday"], "'yesterday' is neither nanoseconds nor an ISO 8601"),
    ],
)
def test_cli_compact_retention_mistakes(store_path: Path, args: list[str], message: str) -> None:
    old_then_new(store_path)
    before = snapshot_of(store_path)
    result = run("compact", store_path, *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot_of(store_path)["events"] == before["events"]
