"""``evstore verify`` through the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from damage import eno_of, event_key_of, flip_byte, rewrite

import evstore
from evstore import ContainerMetadata, ContainerStatus

EVSTORE = str(Path(sys.executable).with_name("evstore"))


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVSTORE, *map(str, args)], capture_output=True, text=True, timeout=60)


def make(path: Path) -> None:
    with evstore.open(path) as store:
        for n in range(3):
            store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))


def test_sound_store_exits_zero(store_path: Path) -> None:
    make(store_path)
    result = run("verify", store_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{store_path}: sound; 3 events, 3 entries, 3 snapshots, 3 index entries checked"
    )


def test_damaged_store_lists_problems_and_exits_one(store_path: Path) -> None:
    make(store_path)
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c1"), 1)),
            flip_byte(-1))
    result = run("verify", store_path)
    assert result.returncode == 1
    assert "problem: entry c1: event 1 at position 2: checksum mismatch" in result.stdout
    assert "Traceback" not in result.stderr


def test_not_a_store_is_one_line(tmp_path: Path) -> None:
    for target in (tmp_path / "missing", Path(__file__)):
        result = run("verify", target)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr
