"""A disk with no room (a file-size limit, so no root is needed): typed errors, nothing lost."""

from __future__ import annotations

from pathlib import Path

from crash import Worker

import evstore
from evstore._ops.verify import verify


def test_writes_fail_cleanly_and_recover(store_path: Path) -> None:
    with Worker("full", store_path) as worker:
        lines = []
        for line in worker.lines():
            if line == "recovered":
                break
            lines.append(line)
        worker.kill()
    # memory kept the old pid (0) after every failed update_sync
    assert lines == [
        "failed 0 DiskFullError 0", "failed 1 DiskFullError 0", "failed 2 DiskFullError 0",
        "add failed 20", "flush failed True",
    ]
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        assert store.containers.get("c1").status.get().pid == 10
        assert store.containers.get("c2").status.get().message == "x" * 5_000
        assert len(store.containers.list()) == 20
    assert verify(store_path).ok


def test_open_needs_no_room(store_path: Path) -> None:
    with Worker("build", store_path, 10, 5) as worker:
        worker.wait_for("ready")
        worker.kill()
    with Worker("open_full", store_path) as worker:
        worker.wait_for("opened 11 0")
        worker.wait_for("closed")


def test_index_waits_for_room_and_events_do_not(store_path: Path) -> None:
    with Worker("full_index", store_path) as worker:
        lines = worker.lines()
        assert next(lines) == "written 200 0"  # every update went in; the index did not
        assert next(lines) == "indexed 20301 20301"  # with room again, it did
        worker.kill()
    assert verify(store_path).ok
    with evstore.open(store_path, readonly=True) as store:
        assert [e.changes.get("pid") for e in store.history("c0")][-3:] == [198, 199, 200]
