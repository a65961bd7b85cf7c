"""A new store: durable before its first write is acknowledged, private to its owner unless
asked otherwise; and compacting it keeps who may read each file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._ops.compact import compact
from evstore._ops.verify import check_in_process

NOBODY = 65534
FILES = ("data.mdb", "lock.mdb", "writer.lock")


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str] | None]]:
    """Each ``os.fsync`` made: its target, and for a directory the names in it then."""
    calls: list[tuple[str, list[str] | None]] = []
    real = os.fsync

    def spy(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        calls.append((target, sorted(os.listdir(target)) if os.path.isdir(target) else None))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return calls


@pytest.fixture
def umask() -> Iterator[None]:
    """A common umask for the test, whatever the runner's."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_store_is_durable_before_open_returns(
    tmp_path: Path, synced: list[tuple[str, list[str] | None]]
) -> None:
    path = tmp_path / "a" / "store"
    store = evstore.open(path)
    try:
        # each new directory's name is made durable in its parent...
        assert (str(tmp_path), ["a"]) in synced
        assert (str(tmp_path / "a"), ["store"]) in synced
        # ...and the data file's name in the store's directory, before any write returns
        assert any(t == str(path) and "data.mdb" in (n or []) for t, n in synced), synced
    finally:
        store.close()


def test_a_store_in_an_existing_directory_is_durable_too(
    tmp_path: Path, synced: list[tuple[str, list[str] | None]]
) -> None:
    (tmp_path / "store").mkdir()
    with evstore.open(tmp_path / "store") as store:
        assert any(
            t == str(tmp_path / "store") and "data.mdb" in (n or []) for t, n in synced
        ), synced
        store.containers.add(ContainerMetadata(id="c1"), ContainerStatus())


def modes(path: Path) -> dict[str, int]:
    found = {name: stat.S_IMODE((path / name).stat().st_mode) for name in FILES}
    found["."] = stat.S_IMODE(path.stat().st_mode)
    return found


@pytest.mark.usefixtures("umask")
def test_a_new_store_is_private_to_its_owner(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        store.containers.add(ContainerMetadata(id="c1"), ContainerStatus())
    assert modes(store_path) == {
        "data.mdb": 0o600, "lock.mdb": 0o600, "writer.lock": 0o600, ".": 0o700,
    }
    assert sorted(os.listdir(store_path)) == sorted(FILES)  # no scratch left behind


def test_a_wider_mode_is_given_exactly_and_lets_readers_write_the_reader_table(
    store_path: Path,
) -> None:
    old = os.umask(0o077)  # the caller's explicit mode wins over the umask
    try:
        evstore.open(store_path, mode=0o640).close()
    finally:
        os.umask(old)
    found = modes(store_path)
    del found["writer.lock"]  # a writers-only file: the umask may narrow it
    assert found == {"data.mdb": 0o640, "lock.mdb": 0o660, ".": 0o750}
    evstore.open(store_path, mode=0o666).close()  # an existing store keeps its modes
    assert modes(store_path)["data.mdb"] == 0o640


@pytest.mark.parametrize("mode", [0o400, 0o1777, -1, True, "0600"])
def test_a_mode_the_owner_cannot_use_is_refused(store_path: Path, mode: object) -> None:
    with pytest.raises(evstore.InvalidInputError, match="mode"):
        evstore.open(store_path, mode=mode)  # type: ignore[arg-type]
    assert not store_path.exists()


def owners(path: Path) -> dict[str, tuple[int, int, int]]:
    return {
        name: (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        for name in FILES if (st := (path / name).stat())
    }


@pytest.mark.usefixtures("umask")
def test_compact_keeps_mode_owner_and_group_of_every_file(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        for n in range(50):
            store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus())
        for n in range(40):
            store.containers.delete(f"c{n}")
    # an operator grants a group read access, as the README says
    group = NOBODY if os.geteuid() == 0 else os.getgid()
    for name, mode in (("data.mdb", 0o640), ("lock.mdb", 0o660), ("writer.lock", 0o600)):
        os.chown(store_path / name, -1, group)
        os.chmod(store_path / name, mode)
    if os.geteuid() == 0:  # and, as root, the data file belongs to the runtime's account
        os.chown(store_path / "data.mdb", NOBODY, -1)
    before = owners(store_path)
    compact(store_path)
    assert owners(store_path) == before
    assert sorted(os.listdir(store_path)) == sorted(FILES)
    assert check_in_process(store_path).ok
    with evstore.open(store_path, readonly=True) as store:
        assert len(store.containers.list()) == 10
    with evstore.open(store_path) as store:
        store.containers.add(ContainerMetadata(id="after"), ContainerStatus())
    assert owners(store_path) == before


def test_a_creation_cut_short_is_started_again(store_path: Path) -> None:
    """What a crash during creation can leave: the writer lock and the scratch directory
    with a partial data file, but never a data.mdb in the store."""
    (store_path / ".creating").mkdir(parents=True)
    (store_path / ".creating" / "data.mdb").write_bytes(b"\0" * 4096)
    (store_path / "writer.lock").touch()
    with evstore.open(store_path) as store:
        store.containers.add(ContainerMetadata(id="c1"), ContainerStatus())
    assert sorted(os.listdir(store_path)) == sorted(FILES)
    with evstore.open(store_path, readonly=True) as store:
        assert [entry.id for entry in store.containers.list()] == ["c1"]
