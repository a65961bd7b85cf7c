"""Durability shown by killing real processes with SIGKILL (no close, no flush)."""

from __future__ import annotations

import time
from pathlib import Path

from crash import Worker

import evstore
from evstore import ContainerState


def test_every_acknowledged_update_sync_survives_kill(store_path: Path) -> None:
    acked: dict[str, int] = {}
    with Worker("hammer", store_path, 8) as worker:
        worker.wait_for("ready")
        for line in worker.lines():
            _word, ident, pid = line.split()
            acked[ident] = int(pid)
            if sum(acked.values()) >= 400:
                break
        worker.kill()
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        for ident, pid in acked.items():
            # the commit may have landed just after the last ack was printed, never before
            assert store.containers.get(ident).status.get().pid >= pid


def test_positions_have_no_gaps_after_kill(store_path: Path) -> None:
    with Worker("hammer", store_path, 16) as worker:
        worker.wait_for("ready")
        for acks, _line in enumerate(worker.lines(), start=1):
            if acks >= 2_000:
                break
        worker.kill()
    with evstore.open(store_path) as store:
        history = [event for event in store.events() if event.type == "updated"]
        assert len(history) >= 2_000
        # positions are strictly increasing and have no gaps
        positions = [event.position for event in store.events()]
        assert positions == list(range(1, len(positions) + 1))


def test_update_is_durable_within_a_second_without_flush(store_path: Path) -> None:
    with Worker("lazy", store_path) as worker:
        worker.wait_for("updated")
        time.sleep(1.2)
        worker.kill()
    with evstore.open(store_path) as store:
        status = store.containers.get("lazy").status.get()
        assert (status.pid, status.state()) == (77, ContainerState.RUNNING)


def test_kill_leaves_replayable_log_and_exact_state(store_path: Path) -> None:
    with Worker("build", store_path, 20, 10) as worker:
        worker.wait_for("ready")
        worker.kill()
    with evstore.open(store_path) as store:
        report = store.load_report
        assert report.unknown == {} and report.loaded == 21
        assert report.events_replayed == 20 * 10 + 3  # nothing snapshotted before the kill
        assert {e.id: e.status.get().pid for e in store.containers.list()} == {
            f"c{n}": 9 for n in range(20)
        }
    with evstore.open(store_path) as store:  # the clean close above snapshotted everything
        assert store.load_report.events_replayed == 0
        assert store.load_report.snapshots_used == 21
