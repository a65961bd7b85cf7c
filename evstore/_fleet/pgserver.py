"""A throwaway PostgreSQL server in a temporary directory, for the fleet tests and benchmark.

Debian keeps the server binaries off PATH, in ``/usr/lib/postgresql/<version>/bin`` (other
systems put them on PATH, where they are looked for next); and
``initdb`` refuses to run as root, so when we are root the cluster belongs to the ``postgres``
user. The server listens on 127.0.0.1 only, on a free port, with trust authentication and its
socket inside its own directory, so it never meets another server on the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from evstore._core.errors import PostgresServerError

BIN_GLOB = "usr/lib/postgresql/*/bin"  # under /
_NEEDED = ("initdb", "pg_ctl", "postgres")
_OWNER = "postgres"  # who runs the server when we are root


ServerError = PostgresServerError  # the throwaway server could not be found, started, ...


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL server ``bin`` directory, else the directory on PATH that
    holds all the server binaries; None when neither is there."""
    found = [p for p in Path("/").glob(BIN_GLOB) if all((p / n).is_file() for n in _NEEDED)]
    if found:
        return max(found, key=_version_key)
    on_path = {shutil.which(name) for name in _NEEDED}
    if None in on_path:
        return None
    dirs = {Path(found_at).parent for found_at in on_path if found_at is not None}
    return dirs.pop() if len(dirs) == 1 else None


def _version_key(bindir: Path) -> tuple[int, ...]:
    version = bindir.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PgServer:
    """One cluster in ``directory``: ``data/``, the server log and the unix socket."""

    bindir: Path
    directory: Path
    port: int
    fsync: bool = True

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def logfile(self) -> Path:
        return self.directory / "server.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={_OWNER} dbname={dbname} connect_timeout=5"

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", _OWNER, "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port}"
            f" -c unix_socket_directories={self.directory} -c fsync={'on' if self.fsync else 'off'}"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60",
            "-o", options, "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        """Stop (``fast``: every session is cut) and start again on the same port."""
        self.stop()
        self.start()

    def _run(self, program: str, *args: str) -> None:
        argv = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", _OWNER, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd="/")
        if done.returncode != 0:
            raise ServerError(
                f"{program} {args[-1]} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def throwaway_server(fsync: bool = True) -> Iterator[PgServer]:
    """A fresh cluster, started; stopped and removed afterwards.

    ``fsync=False`` trades durability against a power cut (irrelevant to a throwaway
    cluster) for speed; the benchmark keeps it on, to measure what a real server does.
    Raises ``ServerError`` when the server binaries are not installed.
    """
    bindir = find_bindir()
    if bindir is None:
        raise ServerError(
            f"no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /{BIN_GLOB} or"
            " on PATH; install Debian's postgresql package"
        )
    directory = Path(tempfile.mkdtemp(prefix="evstore-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(directory, _OWNER, _OWNER)
        server = PgServer(bindir, directory, free_port(), fsync)
        server.init()
        server.start()
        try:
            yield server
        finally:
            server.stop("immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def create_database(server: PgServer, name: str) -> str:
    """Create database ``name`` on ``server``; its DSN."""
    import psycopg  # the fleet extra: this module itself loads without it
    from psycopg import sql

    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return server.dsn(name)
