"""PostgreSQL for the fleet tests: a real server, started by the suite on 127.0.0.1.

One throwaway cluster serves the whole session and each test gets a database of its own;
a test that restarts the server gets a cluster of its own. Without the server binaries the
tests fail (CI installs Debian's ``postgresql``), they are never skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from evstore._fleet.pgserver import PgServer, ServerError, create_database, throwaway_server

_names = itertools.count(1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's server (fsync off: nothing here needs to survive a power cut)."""
    yield from _server()


@pytest.fixture
def own_pg_server() -> Iterator[PgServer]:
    """A server for this test alone, which it may stop and restart."""
    yield from _server()


def _server() -> Iterator[PgServer]:
    try:
        with throwaway_server(fsync=False) as server:
            yield server
    except ServerError as exc:
        pytest.fail(f"cannot run the PostgreSQL tests: {exc}", pytrace=False)


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """The DSN of a fresh, empty database on the session's server."""
    return create_database(pg_server, f"test_{next(_names)}")
