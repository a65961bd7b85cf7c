"""``verify`` finds every kind of damage and passes a sound store."""

from __future__ import annotations

import struct
from pathlib import Path

import msgspec
import pytest
from damage import eno_of, event_key_of, flip_byte, records, rewrite

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._core.codec import decode_snapshot, encode_payload, seal
from evstore._ops.verify import verify


def build(path: Path) -> None:
    with evstore.open(path, snapshot_every=3, checkpoint_every=5) as store:
        for n in range(10):
            metadata = ContainerMetadata(id=f"c{n}")
            entry = store.containers.add(metadata, ContainerStatus(created_at=1))
            for pid in range(1, 8):
                entry.status.update(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
            if n % 3 == 0:
                entry.status.delete()
        store.containers.add(ContainerMetadata(id="c0"), ContainerStatus(created_at=5))


def test_sound_store(store_path: Path) -> None:
    build(store_path)
    report = verify(store_path)
    assert report.ok, report.problems
    assert (report.events, report.entries, report.index_entries) == (85, 10, 85)


def test_sound_while_writer_has_it_open(store_path: Path) -> None:
    build(store_path)
    with evstore.open(store_path) as store:
        store.containers.get("c1").status.update_sync(lambda s: msgspec.structs.replace(s, pid=9))
        assert verify(store_path).ok


def test_flipped_event(store_path: Path) -> None:
    build(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c2"), 4)),
            flip_byte(-1))
    # c0 wrote 9 events (8 and its delete), c1 8: c2's fourth is at position 21
    assert verify(store_path).problems == ["entry c2: event 4 at position 21: checksum mismatch"]


def test_unknown_version_and_gap(store_path: Path) -> None:
    build(store_path)
    eno = eno_of(store_path, "c4")
    rewrite(store_path, b"events", event_key_of(store_path, (eno, 2)), lambda v: b"\x07" + v[1:])
    key = event_key_of(store_path, (eno, 5))
    rewrite(store_path, b"events", key, lambda v: None)
    problems = verify(store_path).problems
    assert any("unknown format version 7" in p for p in problems)
    position = struct.unpack(">Q", key[:8])[0]
    assert f"positions {position}..{position} missing" in problems
    assert any("points at missing position" in p for p in problems)


def test_snapshot_that_differs_from_its_fold(store_path: Path) -> None:
    build(store_path)
    key = struct.pack(">I", eno_of(store_path, "c5"))
    snapshot = decode_snapshot(key, dict(records(store_path, b"snapshots"))[key])
    forged = msgspec.structs.replace(
        snapshot, status=msgspec.structs.replace(snapshot.status, pid=1234)
    )
    rewrite(store_path, b"snapshots", key, lambda v: seal(key, encode_payload(forged)))
    (problem,) = verify(store_path).problems
    assert problem.startswith("entry c5: snapshot at seq 8 differs from the fold")


def test_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(evstore.NotFoundError):
        verify(tmp_path / "nothing")
