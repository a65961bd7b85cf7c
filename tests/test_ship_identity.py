"""Every store has an identity, and ``ship`` never mixes two stores' histories under a node."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import lmdb
import psycopg
import pytest
from test_ship import assert_shipped, count, evstore_cli, make_store, replace

import evstore
from evstore import FleetError
from evstore._fleet.shipping import ship
from evstore._ops.compact import compact


def test_a_store_has_a_lasting_identity(tmp_path: Path) -> None:
    path = make_store(tmp_path / "s", "c", 2)
    with evstore.open(path, readonly=True) as store:
        first = store.store_id
    assert first is not None and uuid.UUID(first).version == 4
    compact(path)
    with evstore.open(path) as store:
        assert store.store_id == first
    other = make_store(tmp_path / "t", "c", 2)
    with evstore.open(other, readonly=True) as store:
        assert store.store_id not in (None, first)


def test_a_store_made_before_identities_gets_one_at_its_first_writable_open(
    tmp_path: Path,
) -> None:
    path = make_store(tmp_path / "s", "c", 2)
    with lmdb.open(str(path), max_dbs=8) as env:  # as an older evstore left it
        meta = env.open_db(b"meta")
        with env.begin(write=True, db=meta) as txn:
            assert txn.delete(b"store_id")
    with evstore.open(path, readonly=True) as store:
        assert store.store_id is None
    with evstore.open(path) as store:
        given = store.store_id
    assert given is not None
    with evstore.open(path, readonly=True) as store:
        assert store.store_id == given


def test_another_store_under_a_shipped_node_is_refused(tmp_path: Path, pg_dsn: str) -> None:
    """The issue's case: a node's store replaced by a new one with fewer events, and by one
    with more, then the command line: refused in one line, nothing shipped."""
    first = make_store(tmp_path / "a", "a", 3)
    shipped = ship(first, pg_dsn, "node-c").shipped
    smaller = make_store(tmp_path / "b", "b", 1)
    bigger = make_store(tmp_path / "c", "c", 8)
    for other in (smaller, bigger):
        with pytest.raises(FleetError, match=r"holds the history of store .*another node name"):
            ship(other, pg_dsn, "node-c")
    result = evstore_cli("ship", smaller, "--dsn", pg_dsn, "--node", "node-c", "--once")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "another node name" in result.stderr
    assert count(pg_dsn, "node-c") == shipped
    assert_shipped(pg_dsn, "node-c", first)
    ship(smaller, pg_dsn, "node-d")  # under its own name it ships
    assert_shipped(pg_dsn, "node-d", smaller)


def test_a_store_behind_the_database_is_refused(tmp_path: Path, pg_dsn: str) -> None:
    path = make_store(tmp_path / "s", "c", 2)
    backup = tmp_path / "backup"
    shutil.copytree(path, backup)
    with evstore.open(path) as store:
        store.containers.get("c1").status.update_sync(replace(pid=555))
    shipped = ship(path, pg_dsn, "n1").shipped
    with pytest.raises(FleetError, match="behind the"):
        ship(backup, pg_dsn, "n1")  # the same store, restored from before its last event
    assert count(pg_dsn, "n1") == shipped


def test_a_database_from_before_identities_is_upgraded(tmp_path: Path, pg_dsn: str) -> None:
    """A node shipped before the database recorded identities takes the identity of the
    store whose history it holds, and refuses any other store from then on."""
    path = make_store(tmp_path / "s", "c", 2)
    shipped = ship(path, pg_dsn, "n1").shipped
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("drop table evstore_nodes")  # the schema as it was
    other = make_store(tmp_path / "t", "c", 3)
    with pytest.raises(FleetError, match="holds the history of another store"):
        ship(other, pg_dsn, "n1")
    with evstore.open(path) as store:
        store.containers.get("c1").status.update_sync(replace(pid=777))
        store_id = store.store_id
    again = ship(path, pg_dsn, "n1")
    assert (again.resumed_from, again.shipped) == (shipped, 1)
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("select store_id from evstore_nodes where node = 'n1'").fetchone()
    assert row is not None and str(row[0]) == store_id
    with pytest.raises(FleetError, match="holds the history of store"):
        ship(other, pg_dsn, "n1")
    assert_shipped(pg_dsn, "n1", path)
