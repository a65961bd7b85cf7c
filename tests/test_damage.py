"""Damaged, unknown-version and missing records: only the entry they belong to loads UNKNOWN."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import lmdb
import msgspec
import pytest
from crash import Worker
from damage import eno_of, event_key_of, flip_byte, records, rewrite, scramble_page

import evstore
from evstore import ContainerMetadata, ContainerState, ContainerStatus, SandboxState


def crashed_store(path: Path, count: int = 5, events: int = 6) -> None:
    """Containers c0.. with pid 1..events-1, sandbox s0 READY pid 42; killed before any snapshot."""
    with Worker("build", path, count, events) as worker:
        worker.wait_for("ready")
        worker.kill()


def closed_store(path: Path) -> None:
    crashed_store(path)
    evstore.open(path).close()  # a clean close snapshots every entry


def assert_others_exact(store: evstore.Store, damaged: str, count: int = 5, pid: int = 5) -> None:
    for n in range(count):
        if f"c{n}" != damaged:
            status = store.containers.get(f"c{n}").status.get()
            expected = (pid, ContainerState.CREATED, False)
            assert (status.pid, status.state(), status.unknown) == expected


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (flip_byte(-1), "checksum mismatch"),
        (lambda value: b"\x09" + value[1:], "unknown format version 9"),
        (lambda value: value[:3], "record too short"),
        (None, "missing"),
    ],
    ids=["checksum", "version", "truncated", "missing"],
)
def test_damaged_event_in_replay(store_path: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    crashed_store(store_path)
    key = event_key_of(store_path, (eno_of(store_path, "c2"), 4))  # the event that set pid=3
    if damage is None:
        rewrite(store_path, b"events", key, lambda value: None)
    else:
        rewrite(store_path, b"events", key, damage)
    with evstore.open(store_path) as store:
        report = store.load_report
        assert list(report.unknown) == ["c2"] and reason in report.unknown["c2"]
        status = store.containers.get("c2").status.get()
        # the last good fold is kept, not reset: pid 2 came from event 3
        assert (status.pid, status.created_at, status.unknown) == (2, 1, True)
        assert status.state() is ContainerState.UNKNOWN
        assert_others_exact(store, "c2")
        assert store.sandboxes.get("s0").status.get().pid == 42
        assert report.loaded == 6


def test_damaged_snapshot_falls_back_to_history(store_path: Path) -> None:
    closed_store(store_path)
    key = struct.pack(">I", eno_of(store_path, "c1"))
    rewrite(store_path, b"snapshots", key, flip_byte(-2))
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        assert store.containers.get("c1").status.get().pid == 5
        assert_others_exact(store, "c1")


def test_damaged_snapshot_and_history(store_path: Path) -> None:
    closed_store(store_path)
    eno = eno_of(store_path, "c1")
    rewrite(store_path, b"snapshots", struct.pack(">I", eno), flip_byte(-2))
    rewrite(store_path, b"events", event_key_of(store_path, (eno, 3)), flip_byte(-1))
    with evstore.open(store_path) as store:
        assert list(store.load_report.unknown) == ["c1"]
        assert "snapshot: checksum mismatch" in store.load_report.unknown["c1"]
        status = store.containers.get("c1").status.get()
        assert (status.pid, status.unknown) == (1, True)
        assert_others_exact(store, "c1")


def test_damaged_sandbox_keeps_fields(store_path: Path) -> None:
    crashed_store(store_path)
    eno = eno_of(store_path, "s0")
    rewrite(store_path, b"events", event_key_of(store_path, (eno, 3)), flip_byte(-1))
    with evstore.open(store_path) as store:
        assert list(store.load_report.unknown) == ["s0"]
        status = store.sandboxes.get("s0").status.get()
        assert (status.state, status.created_at, status.pid) == (SandboxState.UNKNOWN, 1, 0)
        assert status.state.cri_state() == "SANDBOX_NOTREADY"
        # UNKNOWN may only move to NOTREADY
        with pytest.raises(evstore.InvalidTransitionError):
            store.sandboxes.get("s0").status.update_sync(
                lambda s: msgspec.structs.replace(s, state=SandboxState.READY)
            )
        store.sandboxes.get("s0").status.update_sync(
            lambda s: msgspec.structs.replace(s, state=SandboxState.NOTREADY, exited_at=9)
        )
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        status = store.sandboxes.get("s0").status.get()
        assert (status.state, status.exited_at) == (SandboxState.NOTREADY, 9)


def test_repair_to_exited_no_longer_depends_on_damage(store_path: Path) -> None:
    crashed_store(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c0"), 5)),
            flip_byte(-1))
    with evstore.open(store_path) as store:
        entry = store.containers.get("c0")
        # same-state updates of an UNKNOWN entry are allowed but keep it UNKNOWN
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, message="lost"))
        with pytest.raises(evstore.InvalidTransitionError):  # UNKNOWN -> RUNNING is not a move
            entry.status.update_sync(
                lambda s: msgspec.structs.replace(s, unknown=False, started_at=5)
            )
        entry.status.update_sync(
            lambda s: msgspec.structs.replace(s, unknown=False, finished_at=7, exit_code=255)
        )
        assert entry.status.get().state() is ContainerState.EXITED
    for _ in range(2):  # twice: the close after the first reopen must not undo it
        with evstore.open(store_path) as store:
            assert store.load_report.unknown == {}
            status = store.containers.get("c0").status.get()
            assert (status.state(), status.exit_code, status.pid) == (
                ContainerState.EXITED, 255, 3,
            )
            assert status.message == "lost"
            assert_others_exact(store, "c0")


def test_unrepaired_damage_is_seen_by_every_open(store_path: Path) -> None:
    crashed_store(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c3"), 2)),
            flip_byte(-1))
    for _ in range(3):  # each clean close snapshots the rest but must not hide c3's damage
        with evstore.open(store_path) as store:
            assert list(store.load_report.unknown) == ["c3"]
            store.containers.get("c4").status.update_sync(lambda s: s)


def test_delete_of_damaged_entry(store_path: Path) -> None:
    crashed_store(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c1"), 2)),
            flip_byte(-1))
    with evstore.open(store_path) as store:
        store.containers.delete("c1")
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}
        assert [e.id for e in store.containers.list()] == ["c0", "c2", "c3", "c4"]


def digest(path: Path) -> str:
    return hashlib.sha256((path / "data.mdb").read_bytes()).hexdigest()


def test_opening_writes_nothing(store_path: Path) -> None:
    crashed_store(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c1"), 2)),
            flip_byte(-1))
    before = digest(store_path)
    store = evstore.open(store_path)
    try:
        assert digest(store_path) == before
        assert store.load_report.events_replayed > 0
    finally:
        store.close()


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(evstore.CorruptStoreError, match="not an evstore store"):
        evstore.open(tmp_path / "file")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "other").write_text("x")
    with pytest.raises(evstore.CorruptStoreError):
        evstore.open(tmp_path / "dir")


def test_an_lmdb_file_that_is_no_store_is_refused_and_let_go(tmp_path: Path) -> None:
    with lmdb.open(str(tmp_path / "lmdb")) as env, env.begin(write=True) as txn:
        txn.put(b"k", b"v")
    for readonly in (False, True):
        with pytest.raises(evstore.CorruptStoreError, match="missing databases"):
            evstore.open(tmp_path / "lmdb", readonly=readonly, probe=False)
        assert evstore._storage.log._registry == {}  # its environment was closed again
    with lmdb.open(str(tmp_path / "lmdb")) as env, env.begin() as txn:
        assert txn.get(b"k") == b"v"  # and left as it was


def test_truncated_store_file(store_path: Path) -> None:
    closed_store(store_path)
    data = store_path / "data.mdb"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(evstore.CorruptStoreError, match=str(store_path)):
        evstore.open(store_path)


def test_records_carry_checksums(store_path: Path) -> None:
    closed_store(store_path)
    for key, value in records(store_path, b"events"):
        assert value[0] == 1 and len(key) == 16


_PROBE = """
import sys, evstore
from evstore._ops.verify import verify
try:
    with evstore.open(sys.argv[1], probe=True) as store:
        print("opened", len(store.load_report.unknown))
except evstore.CorruptStoreError as exc:
    assert sys.argv[1] in str(exc), exc
    print("corrupt")
try:
    print("verified", len(verify(sys.argv[1]).problems))
except evstore.CorruptStoreError:
    print("corrupt")
"""


@pytest.mark.parametrize("seed", range(int(os.environ.get("EVSTORE_DAMAGE_CASES", "12"))))
def test_random_page_damage_never_crashes(tmp_path: Path, seed: int) -> None:
    """Bytes overwritten anywhere in the file: with ``probe=True`` and in ``verify``, a typed
    error or a load, never a crash."""
    import shutil
    import subprocess
    import sys

    template = tmp_path / "template"
    if not template.exists():
        crashed_store(template, count=30, events=8)
    path = tmp_path / "damaged"
    shutil.copytree(template, path)
    scramble_page(path, seed)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr  # a segfault would be -11
    first, second = result.stdout.split("\n")[:2]
    assert first.startswith(("opened", "corrupt")) and second.startswith(("verified", "corrupt"))


def test_feeds_go_past_a_page_with_damaged_records(store_path: Path) -> None:
    """A damaged record inside a page must not end ``events()`` or stall ``subscribe()``."""
    import anyio

    from evstore._storage import audit

    with evstore.open(store_path, probe=False) as store:
        entry = store.containers.add(ContainerMetadata(id="c"), ContainerStatus(created_at=1))
        for pid in range(1, audit.PAGE + 10):
            entry.status.update(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
    total = audit.PAGE + 10  # the add and PAGE + 9 updates
    keys = [key for key, _value in records(store_path, b"events")]
    rewrite(store_path, b"events", keys[5], flip_byte(-1))  # inside the first page
    with evstore.open(store_path, probe=False) as store:
        assert len(list(store.events())) == total - 1
        assert store.events(since=total - 1).__next__().position == total
    for damaged in keys[1:]:  # now every record after the first is damaged
        rewrite(store_path, b"events", damaged, flip_byte(-2))

    async def follow() -> list[int]:
        seen: list[int] = []
        async with evstore.open_async(store_path, probe=False) as store:

            async def read() -> None:
                async for event in store.subscribe():
                    seen.append(event.position)
                    if event.position > total:
                        return

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(read)
                    entry = store.containers.get("c")  # UNKNOWN now: a same-state update
                    await entry.status.update_sync(
                        lambda s: msgspec.structs.replace(s, message="after the damage")
                    )
        return seen

    # the follower steps past a page with nothing readable and gets the new event
    assert anyio.run(follow) == [1, total + 1]
