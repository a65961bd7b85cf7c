"""Altering records of a closed store in place, as a bad disk or a stray write would."""

from __future__ import annotations

import random
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


# --- whole LMDB pages (the 64-bit layout of LMDB 0.9), for damage that kills a reader ------

PAGE = 4096
_HEADER = 16  # page number, pad, flags, lower, upper


def main_root(path: Path) -> int:
    """The root page of LMDB's main B-tree, as the newest meta page names it."""
    data = (path / "data.mdb").read_bytes()
    metas = [struct.unpack_from("<Q", data, offset + 144)[0] for offset in (0, PAGE)]
    newest = 0 if metas[0] > metas[1] else PAGE
    return int(struct.unpack_from("<Q", data, newest + 128)[0])


def _nodes(data: bytes, page: int) -> list[int]:
    """The offsets (in the file) of a page's nodes."""
    start = page * PAGE
    lower = struct.unpack_from("<H", data, start + 12)[0]
    count = (lower - _HEADER) // 2
    return [start + struct.unpack_from("<H", data, start + _HEADER + 2 * n)[0]
            for n in range(count)]


def db_roots(path: Path) -> dict[bytes, int]:
    """The root page of each named database, read from the main tree's (single) leaf."""
    data = (path / "data.mdb").read_bytes()
    roots = {}
    for node in _nodes(data, main_root(path)):
        key_size = struct.unpack_from("<H", data, node + 6)[0]
        key = data[node + 8 : node + 8 + key_size]
        roots[key] = int(struct.unpack_from("<Q", data, node + 8 + key_size + 40)[0])
    return roots


def first_child(path: Path, branch: int) -> int:
    """The page the first node of branch page ``branch`` points at."""
    data = (path / "data.mdb").read_bytes()
    node = _nodes(data, branch)[0]
    low, high, top = struct.unpack_from("<HHH", data, node)
    return low | high << 16 | top << 32


def smash_page(path: Path, page: int) -> None:
    """Overwrite all of a page but its header with 0xFF: LMDB still takes it for a page of
    its kind, and its node offsets now point past the page (past the file, for most)."""
    with open(path / "data.mdb", "r+b") as handle:
        handle.seek(page * PAGE + _HEADER)
        handle.write(b"\xff" * (PAGE - _HEADER))


def scramble_page(path: Path, seed: int) -> None:
    """Overwrite 8 random bytes of one random page past the two meta pages, as a stray
    write would (the same damage for the same ``seed``)."""
    data = bytearray((path / "data.mdb").read_bytes())
    rng = random.Random(seed)
    page = rng.randrange(2, len(data) // PAGE)
    for _ in range(8):
        data[page * PAGE + rng.randrange(PAGE)] = rng.randrange(256)
    (path / "data.mdb").write_bytes(bytes(data))
