"""What stays of history that ``compact --drop-before`` dropped: the floor and the bases.

Retention drops every event at or before one global position, the floor, which is never
beyond the checkpoint: each dropped event is covered by its entry's snapshot, so opening a
store never needs one. What the dropped events added up to is kept in the meta database so
the rest of the history still folds:

- the floor record (``floor``): the position, the latest time among the dropped events, and
  the kubelet restart counting as it stood there;
- one base per entry that had dropped events (``base`` + entry number): a snapshot-shaped
  record of the entry's fold at the floor, which verify, replay and the snapshot fallback
  start from instead of an empty status.

Both carry the usual checksummed envelope. A store never compacted with retention has
neither, and everything here then reads as "nothing dropped".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from evstore._core.codec import (
    FloorV1,
    RecordError,
    SnapshotRecord,
    decode_floor,
    decode_snapshot,
    encode_payload,
    parse_snapshot_key,
    seal,
    snapshot_key,
)

if TYPE_CHECKING:
    from evstore._storage.log import Log

FLOOR_KEY = b"floor"
BASE_PREFIX = b"base"
NO_FLOOR = FloorV1()


def base_key(eno: int) -> bytes:
    return BASE_PREFIX + snapshot_key(eno)


def read_floor(txn: Any, dbs: dict[bytes, Any]) -> FloorV1:
    """The floor; ``NO_FLOOR`` when nothing was ever dropped. Damage raises ``RecordError``."""
    raw = txn.get(FLOOR_KEY, db=dbs[b"meta"])
    return decode_floor(FLOOR_KEY, raw) if raw is not None else NO_FLOOR


def read_base(txn: Any, dbs: dict[bytes, Any], eno: int) -> SnapshotRecord | None:
    """Entry ``eno``'s fold at the floor, or None when none of its events were dropped."""
    key = base_key(eno)
    raw = txn.get(key, db=dbs[b"meta"])
    return decode_snapshot(key, raw) if raw is not None else None


def _base_records(txn: Any, dbs: dict[bytes, Any]) -> Iterator[tuple[bytes, bytes]]:
    cursor = txn.cursor(db=dbs[b"meta"])
    if not cursor.set_range(BASE_PREFIX):
        return
    for key, value in cursor:
        if not key.startswith(BASE_PREFIX):
            break
        yield key, value


def base_enos(txn: Any, dbs: dict[bytes, Any]) -> set[int]:
    """The entry numbers that have a base (undamaged keys only)."""
    enos = set()
    for key, _value in _base_records(txn, dbs):
        try:
            enos.add(parse_snapshot_key(key[len(BASE_PREFIX) :]))
        except RecordError:
            continue
    return enos


def read_bases(
    txn: Any, dbs: dict[bytes, Any]
) -> tuple[dict[int, SnapshotRecord], dict[int, str]]:
    """Every base by entry number, and why each unreadable one could not be read."""
    bases: dict[int, SnapshotRecord] = {}
    damaged: dict[int, str] = {}
    for key, value in _base_records(txn, dbs):
        try:
            eno = parse_snapshot_key(key[len(BASE_PREFIX) :])
        except RecordError as exc:
            damaged[-1] = f"base key {key.hex()}: {exc}"
            continue
        try:
            bases[eno] = decode_snapshot(key, value)
        except RecordError as exc:
            damaged[eno] = f"base: {exc}"
    return bases, damaged


class Retained(msgspec.Struct, frozen=True):
    """The floor and some bases, read together for a replay."""

    floor: FloorV1 = msgspec.field(default_factory=lambda: NO_FLOOR)
    bases: dict[int, SnapshotRecord] = msgspec.field(default_factory=dict)


def retained(log: Log, enos: list[int] | None = None) -> Retained:
    """The floor and the bases of ``enos`` (of every entry when None). A damaged floor reads
    as none and a damaged base as missing: ``verify`` names them, a replay goes on."""
    with log.reading() as txn:
        try:
            floor = read_floor(txn, log.dbs)
        except RecordError:
            floor = NO_FLOOR
        if enos is None:
            return Retained(floor, read_bases(txn, log.dbs)[0])
        return Retained(floor, _some_bases(txn, log.dbs, enos))


def _some_bases(txn: Any, dbs: dict[bytes, Any], enos: list[int]) -> dict[int, SnapshotRecord]:
    found: dict[int, SnapshotRecord] = {}
    for eno in enos:
        try:
            base = read_base(txn, dbs, eno)
        except RecordError:
            continue
        if base is not None:
            found[eno] = base
    return found


def put_floor(txn: Any, dbs: dict[bytes, Any], floor: FloorV1) -> None:
    txn.put(FLOOR_KEY, seal(FLOOR_KEY, encode_payload(floor)), db=dbs[b"meta"])


def put_base(txn: Any, dbs: dict[bytes, Any], eno: int, base: SnapshotRecord) -> None:
    key = base_key(eno)
    txn.put(key, seal(key, encode_payload(base)), db=dbs[b"meta"])


def delete_base(txn: Any, dbs: dict[bytes, Any], eno: int) -> None:
    txn.delete(base_key(eno), db=dbs[b"meta"])
