"""``evstore verify`` through the installed console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from damage import (
    db_roots,
    eno_of,
    event_key_of,
    first_child,
    flip_byte,
    main_root,
    rewrite,
    smash_page,
)

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


def big(path: Path) -> None:
    """A store whose log needs branch pages: 80 containers, 4 events each."""
    with evstore.open(path) as store:
        for n in range(80):
            metadata = ContainerMetadata(id=f"c{n}")
            entry = store.containers.add(metadata, ContainerStatus(created_at=1))
            for pid in range(1, 4):
                entry.status.update(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))


_OPEN = """
import sys, evstore
try:
    evstore.open(sys.argv[1]).close()
    print("opened")
except evstore.CorruptStoreError as exc:
    print("corrupt:", exc)
"""

PAGES = {
    "main root": lambda path: main_root(path),
    "events root (branch)": lambda path: db_roots(path)[b"events"],
    "events leaf": lambda path: first_child(path, db_roots(path)[b"events"]),
    "index root": lambda path: db_roots(path)[b"index"],
    "snapshots root": lambda path: db_roots(path)[b"snapshots"],
    "meta root": lambda path: db_roots(path)[b"meta"],
}


@pytest.mark.parametrize("kind", list(PAGES))
def test_smashed_page_is_a_one_line_error_never_a_signal(store_path: Path, kind: str) -> None:
    """Damage that makes LMDB read past the file (SIGBUS) kills no process of the command:
    ``evstore verify`` says what is wrong in one line and exits 1. ``evstore.open`` refuses
    the store too, or loads it when the page is none that opening reads (the old log; opening
    seeks every entry's index records, so a damaged index refuses the open as well)."""
    big(store_path)
    smash_page(store_path, PAGES[kind](store_path))
    opened = subprocess.run([sys.executable, "-c", _OPEN, str(store_path)],
                            capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0, opened.stderr  # never a signal in the opener
    assert opened.stdout == "opened\n" if kind == "events leaf" else (
        opened.stdout.startswith("corrupt:") and str(store_path) in opened.stdout)
    result = run("verify", store_path)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert str(store_path) in result.stderr and "damaged" in result.stderr
