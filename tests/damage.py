"""Altering records of a closed store in place, as a bad disk or a stray write would."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import lmdb


def _env(path: Path) -> lmdb.Environment:
    return lmdb.open(str(path), max_dbs=8, map_size=1 << 30)


def records(path: Path, db: bytes) -> list[tuple[bytes, bytes]]:
    env = _env(path)
    try:
        with env.begin(db=env.open_db(db)) as txn:
            return list(txn.cursor())
    finally:
        env.close()


def rewrite(path: Path, db: bytes, key: bytes, fn: Callable[[bytes], bytes | None]) -> None:
    """Replace one record's value by ``fn(value)``; None deletes the record."""
    env = _env(path)
    try:
        with env.begin(write=True, db=env.open_db(db)) as txn:
            value = txn.get(key)
            assert value is not None, key
            new = fn(value)
            if new is None:
                txn.delete(key)
            else:
                txn.put(key, new)
    finally:
        env.close()


def flip_byte(offset: int = -1) -> Callable[[bytes], bytes]:
    def flip(value: bytes) -> bytes:
        data = bytearray(value)
        data[offset] ^= 0x5A
        return bytes(data)

    return flip


def event_key_of(path: Path, eno_seq: tuple[int, int]) -> bytes:
    """The key of the event with entry number and seq ``eno_seq``."""
    for key, _value in records(path, b"events"):
        if struct.unpack(">QII", key)[1:] == eno_seq:
            return key
    raise KeyError(eno_seq)


def eno_of(path: Path, ident: str) -> int:
    """The entry number under which ``ident``'s events are filed."""
    import evstore

    with evstore.open(path, readonly=True) as store:
        position = store.history(ident)[0].position
    for key, _value in records(path, b"events"):
        pos, eno, _seq = struct.unpack(">QII", key)
        if pos == position:
            return int(eno)
    raise KeyError(ident)
