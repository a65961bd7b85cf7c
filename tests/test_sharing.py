"""One writer, many readers across processes; stale reader slots; a map that grows under them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import lmdb
import msgspec
from crash import Worker

import evstore
from evstore import ContainerMetadata, ContainerStatus


def test_stale_reader_slot_of_killed_process_is_cleared(store_path: Path) -> None:
    evstore.open(store_path).close()
    with Worker("hold", store_path) as writer, Worker("hold", store_path, "readonly") as reader:
        writer.wait_for("open")  # a live process keeps LMDB from resetting its reader table
        reader.wait_for("open")
        dead = str(reader.proc.pid)
        reader.kill()
        env = lmdb.open(str(store_path), max_dbs=8, readonly=True)
        try:
            assert dead in _reader_pids(env)  # the slot outlived its process
        finally:
            env.close()
        with evstore.open(store_path, readonly=True) as store:
            assert dead not in _reader_pids(store._log.env)


def _reader_pids(env: lmdb.Environment) -> list[str]:
    return [line.split()[0] for line in env.readers().splitlines()[1:] if line.strip()]


def test_writer_lock_held_by_killed_process_is_released(store_path: Path) -> None:
    with Worker("hold", store_path) as worker:
        worker.wait_for("open")
        try:
            evstore.open(store_path)
        except evstore.StoreLockedError:
            pass
        else:
            raise AssertionError("second writer was let in")
        worker.kill()
    with evstore.open(store_path) as store:
        assert store.load_report.unknown == {}


_READER = textwrap.dedent(
    """
    import sys, evstore
    with evstore.open(sys.argv[1], readonly=True) as store:
        print(len(store.containers.list()), flush=True)
        sys.stdin.readline()  # the writer grows the map meanwhile
        print(len(store.history("big-199")), len(list(store.events())), flush=True)
    """
)


def test_reader_follows_a_map_grown_by_the_writer(store_path: Path) -> None:
    with evstore.open(store_path, map_size=256 * 1024) as store:
        store.containers.add(ContainerMetadata(id="first"), ContainerStatus(created_at=1))
        reader = subprocess.Popen(
            [sys.executable, "-c", _READER, str(store_path)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        )
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().split() == ["1"]
        message = "x" * 2_000
        for n in range(200):
            entry = store.containers.add(
                ContainerMetadata(id=f"big-{n}"), ContainerStatus(created_at=1, message=message)
            )
            entry.status.update_sync(lambda s: msgspec.structs.replace(s, pid=1))
        assert store._log.env.info()["map_size"] > 256 * 1024
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["2", "401"]
        assert reader.wait(timeout=30) == 0
