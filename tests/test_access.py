"""Opening a store without the file access it needs: a typed error that says what is missing,
never "damaged", and the store left as it was.

An operator's account often may read the runtime's store but not write it. LMDB needs write
access to its reader table (``lock.mdb``) even to read, so such an open must fail, and say
why. Under root, which permissions do not stop, the opening process drops to ``nobody``
after its imports; otherwise the test takes write access away from the files themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._storage.probe import probe

NOBODY = 65534
AS_ROOT = os.geteuid() == 0


@pytest.fixture
def shared_store() -> Iterator[Path]:
    """A store with one container, in a directory any user can reach."""
    directory = Path(tempfile.mkdtemp(prefix="evstore-access-"))
    directory.chmod(0o755)
    path = directory / "store"
    with evstore.open(path) as store:
        store.containers.add(ContainerMetadata(id="c1"), ContainerStatus(created_at=1))
    if not AS_ROOT:
        _set_modes(path, 0o555, 0o444)
    try:
        yield path
    finally:
        _set_modes(path, 0o755, 0o644)
        shutil.rmtree(directory)


def _set_modes(path: Path, directory: int, files: int) -> None:
    for name in ("lock.mdb", "writer.lock", "data.mdb"):
        (path / name).chmod(files)
    path.chmod(directory)


def _open_elsewhere(path: Path, readonly: bool, probe: bool) -> str:
    """Open the store in another process, as a user without write access; what it raised."""
    drop = f"os.setgid({NOBODY}); os.setuid({NOBODY})" if AS_ROOT else "pass"
    code = textwrap.dedent(f"""
        import os, evstore, evstore._store.store  # the store loads on first use: load it first
        {drop}
        try:
            evstore.open({str(path)!r}, readonly={readonly}, probe={probe}).close()
            print("opened")
        except evstore.EvstoreError as exc:
            print(type(exc).__name__, isinstance(exc, PermissionError), exc, sep="|")
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("readonly", [True, False], ids=["read-only", "writable"])
def test_no_write_access_is_a_typed_error_that_says_what_is_missing(
    shared_store: Path, readonly: bool
) -> None:
    # the probe's child cannot run as nobody here (the interpreter may live under /root)
    said = _open_elsewhere(shared_store, readonly, probe=not AS_ROOT)
    kind, is_permission_error, message = said.split("|")
    assert (kind, is_permission_error) == ("StoreAccessError", "True")
    assert message.startswith(f"{shared_store}: Permission denied: ")
    assert "write access to lock.mdb" in message
    assert "damaged" not in message
    _set_modes(shared_store, 0o755, 0o644)  # (the files' owner may read them again)
    with evstore.open(shared_store, readonly=True) as store:  # nothing was changed
        assert [entry.id for entry in store.containers.list()] == ["c1"]
        assert store.load_report.unknown == {}


def test_what_lmdb_will_not_open_the_probe_leaves_to_the_callers_own_open(
    tmp_path: Path,
) -> None:
    """The probe's child imports no evstore, so it names no error type: when LMDB refuses
    the environment (here a lock file that is a directory), the caller's own open raises
    the typed error, as it does for missing access."""
    path = tmp_path / "s"
    evstore.open(path).close()
    (path / "lock.mdb").unlink()
    (path / "lock.mdb").mkdir()
    assert probe(path) is None
    with pytest.raises(evstore.CorruptStoreError, match="Is a directory"):
        evstore.open(path, readonly=True)
