"""Child processes for crash tests: they use a store as a runtime would and get killed."""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time

import msgspec

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxState, SandboxStatus

NO_SNAPSHOTS = {"snapshot_every": 1_000_000, "checkpoint_every": 1_000_000_000}


_out = threading.Lock()


def say(*words: object) -> None:
    line = " ".join(map(str, words)) + "\n"
    with _out:  # threads must not interleave halves of lines
        sys.stdout.write(line)
        sys.stdout.flush()


def build(path: str, count: int, events: int) -> None:
    """Containers c0.. with ``events`` durable updates each, a sandbox; then wait to be killed."""
    store = evstore.open(path, **NO_SNAPSHOTS)
    for n in range(count):
        entry = store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
        for pid in range(1, events):
            entry.status.update_sync(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
    sandbox = store.sandboxes.add(SandboxMetadata(id="s0"), SandboxStatus(created_at=1))
    sandbox.status.update_sync(lambda s: msgspec.structs.replace(s, state=SandboxState.READY))
    sandbox.status.update_sync(lambda s: msgspec.structs.replace(s, pid=42))
    say("ready")
    time.sleep(60)


def hammer(path: str, threads: int) -> None:
    """Threads bump their own container's pid with update_sync and print each ack."""
    store = evstore.open(path)
    entries = [
        store.containers.add(ContainerMetadata(id=f"t{n}"), ContainerStatus(created_at=1))
        for n in range(threads)
    ]
    say("ready")

    def run(entry: evstore._store.store.Entry) -> None:  # type: ignore[name-defined]
        for pid in range(1, 1_000_000):
            entry.status.update_sync(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
            say("ack", entry.id, pid)

    for entry in entries:
        threading.Thread(target=run, args=(entry,), daemon=True).start()
    time.sleep(60)


def lazy(path: str) -> None:
    """One ``update`` that nobody flushes; it must be on disk a second later."""
    store = evstore.open(path)
    entry = store.containers.add(ContainerMetadata(id="lazy"), ContainerStatus(created_at=1))
    entry.status.update(lambda s: msgspec.structs.replace(s, pid=77, started_at=2))
    say("updated")
    time.sleep(60)


def full(path: str) -> None:
    """Writes under a file-size limit at the current size: they must fail cleanly, then recover."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    store = evstore.open(path)
    for n in range(20):
        store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
    size = os.path.getsize(os.path.join(path, "data.mdb"))
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    big = "x" * 5_000
    entry = store.containers.get("c1")
    for attempt in range(3):
        try:
            entry.status.update_sync(lambda s: msgspec.structs.replace(s, message=big, pid=9))
        except evstore.EvstoreError as exc:
            say("failed", attempt, type(exc).__name__, entry.status.get().pid)
    try:
        store.containers.add(ContainerMetadata(id="new", name=big), ContainerStatus(created_at=1))
    except evstore.DiskFullError:
        say("add failed", len(store.containers.list()))
    store.containers.get("c2").status.update(lambda s: msgspec.structs.replace(s, message=big))
    try:
        store.flush()
    except evstore.DiskFullError:
        say("flush failed", store.containers.get("c2").status.get().message == big)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    store.flush()  # the kept update goes in now
    entry.status.update_sync(lambda s: msgspec.structs.replace(s, pid=10))
    say("recovered")
    time.sleep(60)


def full_index(path: str) -> None:
    """Small commits under a file-size limit while the index is due: the events go in, the
    index waits for room."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    store = evstore.open(path, index_every=20_250)
    entries = [
        store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
        for n in range(200)
    ]
    for pid in range(1, 101):  # 20,000 events in a few big commits: none indexed yet
        for entry in entries:
            entry.status.update(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
    store.flush()
    # room for a few pages: enough for small commits (LMDB reuses the pages they free), not
    # for the 20,250 index records the 50th of them is due to write (over 100 pages)
    size = os.path.getsize(os.path.join(path, "data.mdb")) + 8 * 4096
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    for pid in range(101, 201):
        entries[0].status.update_sync(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
    say("written", entries[0].status.get().pid, _indexed(store))
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    entries[1].status.update_sync(lambda s: msgspec.structs.replace(s, pid=0))
    say("indexed", _indexed(store), store.last_position)
    time.sleep(60)


def _indexed(store: evstore.Store) -> int:
    from evstore._storage.index import read_indexed

    with store._log.reading() as txn:
        return read_indexed(txn, store._log.dbs)


def open_full(path: str) -> None:
    """Open with no room at all to grow the file: opening must not need any."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    size = os.path.getsize(os.path.join(path, "data.mdb"))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    store = evstore.open(path)
    say("opened", store.load_report.loaded, len(store.load_report.unknown))
    store.close()
    say("closed")


def hold(path: str) -> None:
    """Keep a store open (read-only when asked) until killed."""
    readonly = sys.argv[3:] == ["readonly"]
    store = evstore.open(path, readonly=readonly)
    if readonly:  # killed inside a read transaction: its reader slot is left behind
        txn = store._log.env.begin()
        txn.get(b"format")
    say("open")
    time.sleep(60)


if __name__ == "__main__":
    command, target, *rest = sys.argv[1:]
    {
        "build": build, "hammer": hammer, "lazy": lazy, "hold": hold, "full": full,
        "open_full": open_full, "full_index": full_index,
    }[command](
        target, *[int(arg) for arg in rest if arg.isdigit()]
    )
