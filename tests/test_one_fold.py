"""One fold: every reader of a store agrees on the state of an entry whose history has a
damaged or lost event (open, ``ls``, replay, verify and the fleet table)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec
import psycopg
import pytest
from crash import Worker
from damage import eno_of, event_key_of, flip_byte, records, rewrite

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._core.fold import Fold
from evstore._fleet.shipping import ShipOptions, ship
from evstore._history.replay import states_at
from evstore._ops.verify import verify


def crashed_store(path: Path) -> None:
    """Containers c0 and c1 (created, then pid 1..5: seqs 1..6) and sandbox s0, killed
    before any snapshot, so that an open folds every event."""
    with Worker("build", path, 2, 6) as worker:
        worker.wait_for("ready")
        worker.kill()


def shipped_row(dsn: str, node: str, ident: str) -> tuple[str, object]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select state, status from evstore_current where node = %s and id = %s",
            (node, ident),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


Damage = Callable[[bytes], bytes | None]
EVSTORE = str(Path(sys.executable).with_name("evstore"))


def cli(*args: object) -> str:
    done = subprocess.run([EVSTORE, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "damage", [flip_byte(-1), lambda value: None], ids=["unreadable", "lost"]
)
def test_every_reader_agrees_on_a_damaged_entry(
    store_path: Path, pg_dsn: str, damage: Damage
) -> None:
    crashed_store(store_path)
    key = event_key_of(store_path, (eno_of(store_path, "c1"), 4))  # the event that set pid 3
    rewrite(store_path, b"events", key, damage)

    with evstore.open(store_path, readonly=True) as store:
        reason = store.load_report.unknown["c1"]
        opened = store.containers.get("c1").status.get()
        # the last good fold (pid 2, from event 3), UNKNOWN; nothing after the gap applied
        assert (opened.pid, opened.unknown, opened.state().name) == (2, True, "UNKNOWN")
        replayed = {s.id: s.status for s in states_at(store, position=store.last_position)}
        assert replayed["c1"] == opened
        assert store.status_at("c1", seq=6) == opened
        assert store.status_at("c1", time=store.history("c1")[-1].time) == opened
        assert store.status_at("c1", seq=3).pid == 2
        assert replayed["c0"] == store.containers.get("c0").status.get()
        assert replayed["s0"] == store.sandboxes.get("s0").status.get()

    assert f"entry c1: {reason}" in verify(store_path).problems
    listed, replayed_cli = (
        {o["id"]: (o["state"], o["status"]) for o in json.loads(cli(*args, "--json"))}
        for args in (("ls", store_path), ("replay", store_path, "--position", 10**6))
    )
    assert listed["c1"] == replayed_cli["c1"] == ("unknown", msgspec.to_builtins(opened))

    ship(store_path, pg_dsn, "n1", ShipOptions(batch=3))  # batches split c1's history
    assert shipped_row(pg_dsn, "n1", "c1") == ("unknown", msgspec.to_builtins(opened))


def test_a_rerun_resumes_a_broken_fold(store_path: Path, pg_dsn: str) -> None:
    """A shipper run again resumes an UNKNOWN row as the broken fold it is: a later event
    of the entry does not apply over the gap, as it does not at open."""
    crashed_store(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c1"), 4)),
            flip_byte(-1))
    ship(store_path, pg_dsn, "runs")
    with evstore.open(store_path) as store:  # UNKNOWN stays UNKNOWN: no repair
        store.containers.get("c1").status.update_sync(
            lambda s: msgspec.structs.replace(s, message="later"))
    with evstore.open(store_path, readonly=True) as store:
        opened = store.containers.get("c1").status.get()
    assert (opened.pid, opened.message, opened.unknown) == (2, "", True)
    ship(store_path, pg_dsn, "runs")
    ship(store_path, pg_dsn, "once")
    assert shipped_row(pg_dsn, "runs", "c1") == ("unknown", msgspec.to_builtins(opened))
    assert shipped_row(pg_dsn, "once", "c1") == shipped_row(pg_dsn, "runs", "c1")


def test_a_repaired_entry_is_healthy_for_every_reader(store_path: Path, pg_dsn: str) -> None:
    """An update that moves a damaged entry out of UNKNOWN restates it whole: from there
    on every reader folds it again, and agrees with the store."""
    crashed_store(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c1"), 4)),
            flip_byte(-1))
    with evstore.open(store_path) as store:
        entry = store.containers.get("c1")
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, message="lost"))
        entry.status.update_sync(
            lambda s: msgspec.structs.replace(s, unknown=False, finished_at=7, exit_code=255)
        )
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, reason="Error"))
    with evstore.open(store_path, readonly=True) as store:
        opened = store.containers.get("c1").status.get()
        assert (opened.pid, opened.message, opened.exit_code, opened.state().name) == (
            2, "lost", 255, "EXITED",
        )
        replayed = {s.id: s.status for s in states_at(store, position=store.last_position)}
        assert replayed["c1"] == opened
        assert store.status_at("c1", seq=store.history("c1")[-1].seq) == opened
    ship(store_path, pg_dsn, "n1", ShipOptions(batch=2))
    assert shipped_row(pg_dsn, "n1", "c1") == ("exited", msgspec.to_builtins(opened))


def test_damage_under_a_snapshot_is_past_for_every_reader(store_path: Path) -> None:
    """A damaged event that a snapshot covers: open starts from the snapshot, and so does
    every later point of a replay (before it, the entry shows UNKNOWN)."""
    crashed_store(store_path)
    evstore.open(store_path).close()  # a clean close snapshots every entry
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c1"), 4)),
            flip_byte(-1))
    with evstore.open(store_path, readonly=True) as store:
        opened = store.containers.get("c1").status.get()
        assert (opened.pid, opened.unknown) == (5, False)
        replayed = {s.id: s.status for s in states_at(store, position=store.last_position)}
        assert replayed["c1"] == opened == store.status_at("c1", seq=6)
        middle = store.status_at("c1", seq=5)
        assert isinstance(middle, ContainerStatus)
        assert (middle.pid, middle.unknown) == (2, True)


def exit_code(code: int) -> Callable[[ContainerStatus], ContainerStatus]:
    return lambda status: msgspec.structs.replace(status, exit_code=code)


def test_verify_finds_a_second_break_past_a_snapshot(store_path: Path) -> None:
    """verify follows the same rule: the entry's snapshot ends a break, so a gap after it
    is a break of its own, named too (a gap before it is part of the first)."""
    crashed_store(store_path)
    eno = eno_of(store_path, "c1")
    rewrite(store_path, b"events", event_key_of(store_path, (eno, 2)), flip_byte(-1))
    with evstore.open(store_path) as store:  # a repair, snapshotted at its event (seq 7)
        store.containers.get("c1").status.update_sync(
            lambda s: msgspec.structs.replace(s, unknown=False, finished_at=7, exit_code=1))
    snapshot = struct.pack(">I", eno)
    (repaired,) = [value for key, value in records(store_path, b"snapshots") if key == snapshot]
    with evstore.open(store_path) as store:  # seqs 8 and 9, snapshotted at 9 on close
        for code in (2, 3):
            store.containers.get("c1").status.update_sync(exit_code(code))
    rewrite(store_path, b"snapshots", snapshot, lambda value: repaired)  # back to seq 7
    rewrite(store_path, b"events", event_key_of(store_path, (eno, 8)), lambda value: None)
    breaks = [p for p in verify(store_path).problems if p.startswith("entry c1: event")]
    position = int.from_bytes(event_key_of(store_path, (eno, 2))[:8], "big")
    # (then: the rolled-back snapshot no longer covers the event at the checkpoint)
    assert breaks[:2] == [f"entry c1: event 2 at position {position}: checksum mismatch",
                          "entry c1: events 8..8 missing"], breaks


def test_an_id_added_again_ships_as_the_store_has_it(store_path: Path, pg_dsn: str) -> None:
    """The fold of an id goes on across its incarnations, whatever the shipper's batches
    (shipped beside the writer, before any snapshot could end a break)."""
    with evstore.open(store_path, snapshot_every=10**6, checkpoint_every=10**9) as store:
        metadata = ContainerMetadata(id="again")
        store.containers.add(metadata, ContainerStatus(created_at=1)).status.delete()
        store.containers.add(metadata, ContainerStatus(created_at=2))
        status = store.containers.get("again").status.get()
        ship(store_path, pg_dsn, "one", ShipOptions(batch=1))
        ship(store_path, pg_dsn, "all")
    for node in ("one", "all"):
        assert shipped_row(pg_dsn, node, "again") == ("created", msgspec.to_builtins(status))


def test_a_fold_read_after_every_event_or_once_ends_alike(store_path: Path) -> None:
    """A fold gathers its events' changes and applies them when its status is read: read
    after every event or only at the end, across a delete and a new incarnation, it ends
    at the status the store holds, and at it again after a crash (the replay gathers)."""
    replace = msgspec.structs.replace
    updates: list[Callable[[ContainerStatus], ContainerStatus]] = [
        lambda s: replace(s, pid=5, started_at=2),
        lambda s: replace(s, message="warming"),
        lambda s: replace(s, pid=6, message="ready"),
        lambda s: replace(s, finished_at=3, exit_code=1, reason="Error"),
    ]
    with evstore.open(store_path) as store:
        entry = store.containers.add(ContainerMetadata("c1"), ContainerStatus(created_at=1))
        for update in updates:
            entry.status.update_sync(update)
        store.containers.delete("c1")
        entry = store.containers.add(ContainerMetadata("c1"), ContainerStatus(created_at=4))
        entry.status.update_sync(updates[1])
        expected = entry.status.get()
        events = store.history("c1")
    each, once = Fold(), Fold()
    for event in events:
        each.step_event(event)
        once.step_event(event)
        assert each.status is not None
    assert each.shown() == once.shown() == expected
    assert once.status is not None and once.status.pid == 0  # nothing left from before
    crashed = store_path.with_name("crashed")
    crashed_store(crashed)  # no snapshot: the open gathers every event of each entry
    with evstore.open(crashed) as store:
        assert store.load_report.events_replayed > 0
        assert [store.containers.get(c).status.get().pid for c in ("c0", "c1")] == [5, 5]
