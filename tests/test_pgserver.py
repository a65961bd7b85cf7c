"""Finding PostgreSQL's server binaries where Debian keeps them, or else on PATH."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from evstore._fleet import pgserver


def _path_only(monkeypatch: pytest.MonkeyPatch, bindir: Path) -> None:
    """Hide the Debian directory and offer the binaries on PATH, as other systems do."""
    monkeypatch.setattr(pgserver, "BIN_GLOB", "no/such/postgresql/*/bin")
    monkeypatch.setenv("PATH", os.pathsep.join([str(bindir), os.environ["PATH"]]))


@pytest.fixture
def on_path() -> Iterator[Path]:
    """A directory the server's own user can reach too (it runs as ``postgres`` under root)."""
    directory = Path(tempfile.mkdtemp(prefix="evstore-pgbin-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def test_a_server_on_path_is_found_and_runs(
    on_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    debian = pgserver.find_bindir()
    assert debian is not None, "the fleet tests need Debian's postgresql package"
    for name in ("initdb", "pg_ctl", "postgres"):
        (on_path / name).symlink_to(debian / name)
    _path_only(monkeypatch, on_path)
    assert pgserver.find_bindir() == on_path
    with pgserver.throwaway_server(fsync=False) as server, psycopg.connect(server.dsn()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_no_server_is_a_clear_error(on_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (on_path / "pg_ctl").write_text("#!/bin/sh\n")  # one of the three is not enough
    (on_path / "pg_ctl").chmod(0o755)
    monkeypatch.setattr(pgserver, "BIN_GLOB", "no/such/postgresql/*/bin")
    monkeypatch.setenv("PATH", str(on_path))
    assert pgserver.find_bindir() is None
    with (
        pytest.raises(pgserver.ServerError, match="no PostgreSQL server binaries"),
        pgserver.throwaway_server(),
    ):
        pass
