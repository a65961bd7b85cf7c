"""On-disk records: keys, the versioned and checksummed envelope, and the record schemas.

Every value is ``format byte | crc32 | msgpack payload``; the checksum covers the key too,
so a record that lands under the wrong key is caught like a flipped bit. Payloads are
``array_like`` structs whose first element is a versioned tag: fields may only be appended
(with defaults), never reordered.
"""

# annotations as objects, for msgspec (see ``model``)
import struct
import zlib
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from evstore._core.errors import EvstoreError
from evstore._core.events import ContainerChanges, Entity, SandboxChanges
from evstore._core.model import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxStatus

FORMAT = 1
STORE_MAGIC = b"evstore/2"  # the index reaches up to meta's "indexed" (see ``index``)
STORE_MAGIC_V1 = b"evstore/1"  # every event indexed as it was written

_EVENT_KEY = struct.Struct(">QII")  # position, entry number, seq: sorts in log order
_INDEX_KEY = struct.Struct(">II")  # entry number, seq: sorts one entry's history together
_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">BI")

Pair = tuple[bytes, bytes]


class LogWrite(Protocol):
    """What an event on its way to the log carries (``snapshots.Write``)."""

    eno: int
    seq: int
    payload: bytes


class RecordError(EvstoreError):
    """A stored record failed its checksum, its format version or its decoding."""


class ContainerEventV1(msgspec.Struct, array_like=True, tag=1, omit_defaults=True, gc=False):
    time: int
    kind: int
    changes: ContainerChanges  # type: ignore[valid-type]
    metadata: ContainerMetadata | None = None


class SandboxEventV1(msgspec.Struct, array_like=True, tag=2, omit_defaults=True, gc=False):
    time: int
    kind: int
    changes: SandboxChanges  # type: ignore[valid-type]
    metadata: SandboxMetadata | None = None


class ContainerSnapshotV1(msgspec.Struct, array_like=True, tag=3, gc=False):
    seq: int
    position: int
    time: int
    deleted: bool
    metadata: ContainerMetadata
    status: ContainerStatus


class SandboxSnapshotV1(msgspec.Struct, array_like=True, tag=4, gc=False):
    seq: int
    position: int
    time: int
    deleted: bool
    metadata: SandboxMetadata
    status: SandboxStatus


class RestartSeedV1(msgspec.Struct, array_like=True):
    """The kubelet restart counting (``pods``) as it stood at the floor."""

    live: list[tuple[int, int, str]] = []  # entry number, entity, id of live incarnations
    sandbox_uids: dict[str, str] = {}  # live sandbox id -> pod uid
    created: list[tuple[str, str, int]] = []  # pod uid, config name, containers created
    counts: dict[str, int] = {}  # live container id -> containers created before it


class FloorV1(msgspec.Struct, array_like=True, tag=5):
    """Where retention stopped: every event at or before ``position`` was dropped, and
    ``time`` is the latest time among them."""

    position: int = 0
    time: int = 0
    restarts: RestartSeedV1 = msgspec.field(default_factory=RestartSeedV1)


EventRecord = ContainerEventV1 | SandboxEventV1
SnapshotRecord = ContainerSnapshotV1 | SandboxSnapshotV1

EVENT_TYPES: dict[Entity, type[ContainerEventV1] | type[SandboxEventV1]] = {
    Entity.CONTAINER: ContainerEventV1,
    Entity.SANDBOX: SandboxEventV1,
}
SNAPSHOT_TYPES: dict[Entity, type[ContainerSnapshotV1] | type[SandboxSnapshotV1]] = {
    Entity.CONTAINER: ContainerSnapshotV1,
    Entity.SANDBOX: SandboxSnapshotV1,
}

_encoder = msgspec.msgpack.Encoder()
_event_decoder = msgspec.msgpack.Decoder(EventRecord)
_snapshot_decoder = msgspec.msgpack.Decoder(SnapshotRecord)
_floor_decoder = msgspec.msgpack.Decoder(FloorV1)


def event_key(position: int, eno: int, seq: int) -> bytes:
    return _EVENT_KEY.pack(position, eno, seq)


def _unpack(layout: struct.Struct, data: bytes, what: str) -> tuple[int, ...]:
    """Unpack fixed-size binary, turning damage into a ``RecordError``."""
    if len(data) != layout.size:
        raise RecordError(f"malformed {what} ({len(data)} bytes: {data.hex()})")
    return layout.unpack(data)


def parse_event_key(key: bytes) -> tuple[int, int, int]:
    """(position, entry, seq) of a log key. Opening parses one per event after the
    checkpoint: one call, with the length check left to ``struct`` (a bad key is rare)."""
    try:
        position, eno, seq = _EVENT_KEY.unpack(key)
    except struct.error:
        _unpack(_EVENT_KEY, key, "log key")  # raises the RecordError
        raise
    return position, eno, seq


def index_key(eno: int, seq: int) -> bytes:
    return _INDEX_KEY.pack(eno, seq)


def index_record(key: bytes) -> Pair:
    """The index record of the event filed under log ``key`` (position, entry, seq): its
    last eight bytes are the index key (entry, seq), its first eight the position."""
    return key[8:], key[:8]


def parse_index_key(key: bytes) -> tuple[int, int]:
    eno, seq = _unpack(_INDEX_KEY, key, "index key")
    return eno, seq


def pack_u64(value: int) -> bytes:
    return _U64.pack(value)


def unpack_u64(data: bytes) -> int:
    (value,) = _unpack(_U64, data, "position")
    return value


def snapshot_key(eno: int) -> bytes:
    return _U32.pack(eno)


def parse_snapshot_key(key: bytes) -> int:
    (eno,) = _unpack(_U32, key, "snapshot key")
    return eno


def encode_payload(record: EventRecord | SnapshotRecord | FloorV1) -> bytes:
    return _encoder.encode(record)


def seal(key: bytes, payload: bytes) -> bytes:
    """Wrap a payload in the envelope; done at commit time, once the key is known."""
    return _HEADER.pack(FORMAT, zlib.crc32(payload, zlib.crc32(key))) + payload


def event_records(
    first: int, writes: Iterable[LogWrite]
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """The log and index records of events numbered from ``first``, built in one pass:
    this is the writer's loop over every event of a batch. Third, the index records of
    new entries' first events, which go in with them (see ``index``)."""
    records: list[Pair] = []
    index: list[Pair] = []
    fresh: list[Pair] = []
    pack_event = _EVENT_KEY.pack
    for position, write in enumerate(writes, first):
        key = pack_event(position, write.eno, write.seq)
        records.append((key, seal(key, write.payload)))
        index.append((key[8:], key[:8]))  # ``index_record``, inlined: once per event
        if write.seq == 1:
            fresh.append(index[-1])
    return records, index, fresh


def decode_event(key: bytes, value: bytes) -> EventRecord:
    record: EventRecord = _decode(_event_decoder, key, value, "event")
    return record


def decode_snapshot(key: bytes, value: bytes) -> SnapshotRecord:
    snapshot: SnapshotRecord = _decode(_snapshot_decoder, key, value, "snapshot")
    return snapshot


def decode_floor(key: bytes, value: bytes) -> FloorV1:
    floor: FloorV1 = _decode(_floor_decoder, key, value, "floor")
    return floor


def _decode(decoder: msgspec.msgpack.Decoder[Any], key: bytes, value: bytes, what: str) -> Any:
    """Check a record's header and checksum, and decode it: one call, as opening makes one
    per event after the checkpoint."""
    if len(value) < _HEADER_SIZE:
        raise RecordError(f"record too short ({len(value)} bytes)")
    version, crc = _HEADER_UNPACK(value)
    if version != FORMAT:
        raise RecordError(f"unknown format version {version}")
    payload = memoryview(value)[_HEADER_SIZE:]  # read in place, not copied
    if _crc32(payload, _crc32(key)) != crc:
        raise RecordError("checksum mismatch")
    try:
        # msgspec reads any buffer; before 0.19 its stubs said bytes only
        return decoder.decode(payload)  # type: ignore[arg-type, unused-ignore]
    except msgspec.DecodeError as exc:
        raise RecordError(f"undecodable {what}: {exc}") from exc


_HEADER_SIZE, _HEADER_UNPACK, _crc32 = _HEADER.size, _HEADER.unpack_from, zlib.crc32
