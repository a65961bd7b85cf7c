"""Build a store for timing the command line: COUNT containers with 10 events each.

    python tools/build_store.py PATH [COUNT]

Each container (a 64-hex id, as containerd's) is added, started, updated seven times
(resources) and then either exits or gets a message: created, started, 7 x updated, and
exited or updated. Adds are durable one by one; the rest go through ``update`` and a flush.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial

import msgspec

import evstore
from evstore import ContainerMetadata, ContainerResources, ContainerStatus, LinuxContainerResources
from evstore._core.inputs import positive_int
from evstore._store.entries import Entry

SECOND = 1_000_000_000


def build(path: str, count: int) -> int:
    with evstore.open(path) as store:
        base = time.time_ns() - 3_600 * SECOND
        entries = [
            store.containers.add(
                ContainerMetadata(id=f"{n:08x}" + "c0ffee" * 9 + "ab", name=f"app-{n}"),
                ContainerStatus(created_at=base + n),
            )
            for n in range(count)
        ]
        for n, entry in enumerate(entries):
            _events(entry, n, base)
        store.flush()
        return store.last_position


def _events(entry: Entry[ContainerStatus, ContainerMetadata], n: int, base: int) -> None:
    update = entry.status.update
    update(lambda s: msgspec.structs.replace(s, pid=1000 + n, started_at=base + n + SECOND))
    for k in range(7):
        linux = LinuxContainerResources(cpu_shares=256 + k, memory_limit_in_bytes=(k + 1) << 28)
        update(partial(msgspec.structs.replace, resources=ContainerResources(linux=linux)))
    if n % 2:
        update(lambda s: msgspec.structs.replace(
            s, finished_at=base + n + 2 * SECOND, exit_code=n % 3))
    else:
        update(lambda s: msgspec.structs.replace(s, message=f"still running {n}"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="where to build the store (a new or empty directory)")
    parser.add_argument("count", type=positive_int, nargs="?", default=10_000, help="containers")
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        events = build(args.path, args.count)
    except evstore.EvstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"built {args.count:,} containers, {events:,} events in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
