"""The raw synced LMDB commit rate: the disk's floor under the store's own commits, which
``benchmarks/floors.py`` sets beside the per-file baseline."""

from __future__ import annotations

import time
from pathlib import Path

import lmdb


def lmdb_commits(work: Path, seconds: float) -> float:
    """Synced LMDB commits/s, each putting one log record."""
    env = lmdb.open(str(work / "lmdb"), map_size=1 << 30, max_dbs=2, sync=True, metasync=True)
    try:
        events = env.open_db(b"events")
        payload = b"\x95\x01\x01\x03\x81\xa3pid\xcd\x03\xe9\xc0" + bytes(8)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += 1
            txn = env.begin(write=True)
            txn.put(n.to_bytes(16, "big"), payload, db=events, append=True)
            txn.commit()
        return n / (time.perf_counter() - t0)
    finally:
        env.close()
