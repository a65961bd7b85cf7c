"""The fleet database: every node's log and current state in PostgreSQL, for SQL and ``fleet``.

The tables are a contract with people who query them, so their names and columns never
change meaning: ``evstore_events`` holds every event of every node, keyed by (node, position);
``evstore_current`` the status of every live entry as of the last event shipped for it;
``evstore_nodes`` the identity of the store each node's history comes from (a table of its
own, so that a database made before it gains it with ``create table if not exists``).
All lead with ``node`` so that, distributed by node (Citus), a node's writes and joins stay
on one shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import msgspec

from evstore._core.extras import missing_extra

try:
    import psycopg
except ModuleNotFoundError as exc:
    raise missing_extra("fleet", "evstore.fleet") from exc
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg.types.json import set_json_loads

from evstore._core.errors import FleetError
from evstore._core.events import STATUS_TYPES, Event
from evstore._core.fold import ENTITIES
from evstore._core.model import Status
from evstore._core.states import STATE_NAMES as STATE_NAMES  # what the ``state`` column may hold
from evstore._history.replay import EntryState

Connection = psycopg.Connection[TupleRow]

SCHEMA = (
    """create table if not exists evstore_events (
        node text not null,
        position bigint not null,
        entity text not null,
        id text not null,
        seq bigint not null,
        time bigint not null,
        type text not null,
        changes jsonb not null,
        primary key (node, position))""",
    """create table if not exists evstore_current (
        node text not null,
        entity text not null,
        id text not null,
        state text not null,
        status jsonb not null,
        position bigint not null,
        primary key (node, entity, id))""",
    # which store each node's history comes from (added later: made on the next ship into
    # a database that predates it, and filled in by that ship)
    """create table if not exists evstore_nodes (
        node text primary key,
        store_id uuid not null)""",
    # one entry's history, and fleet-wide questions over a time window
    "create index if not exists evstore_events_node_id on evstore_events (node, id, position)",
    "create index if not exists evstore_events_time on evstore_events (time)",
)
# concurrent "create table if not exists" can still collide in the catalog: serialize them
_SCHEMA_LOCK = "select pg_advisory_xact_lock(hashtext('evstore_schema'))"


CONNECT_TIMEOUT = 10  # seconds, unless the DSN says otherwise


def check_dsn(dsn: str) -> dict[str, Any]:
    """The connection string's parameters; a malformed one is refused at once, before any
    retrying."""
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise FleetError(f"invalid PostgreSQL DSN: {one_line(exc)}") from exc


def connect(dsn: str) -> Connection:
    """An autocommit connection (each batch opens its own transaction) that decodes jsonb
    with msgspec. Raises psycopg's ``OperationalError`` when the server cannot be reached,
    so that a follower can retry; see ``reach`` for a one-shot caller."""
    params = check_dsn(dsn)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT)  # a silent host must not hang us
    conn = psycopg.connect(autocommit=True, **params)
    set_json_loads(msgspec.json.decode, conn)
    return conn


@contextmanager
def reading(dsn: str) -> Iterator[Connection]:
    """A connection for one-shot queries (``evstore fleet``), closed afterwards; every
    failure is a ``FleetError`` with psycopg's first line."""
    try:
        conn = connect(dsn)
    except psycopg.Error as exc:
        raise FleetError(f"cannot connect to PostgreSQL: {one_line(exc)}") from exc
    try:
        with conn:
            yield conn
    except psycopg.errors.UndefinedTable as exc:
        raise FleetError("no evstore tables in that database: nothing was shipped there") from exc
    except psycopg.Error as exc:
        raise FleetError(f"PostgreSQL: {one_line(exc)}") from exc


def one_line(exc: BaseException) -> str:
    """psycopg's messages run over several lines (DETAIL, HINT): the first is the point."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def ensure_schema(conn: Connection) -> None:
    """Create the tables and indexes if missing (no-op when they exist, e.g. distributed)."""
    with conn.transaction():
        conn.execute(_SCHEMA_LOCK)
        for statement in SCHEMA:
            conn.execute(statement.encode())


def shipped_position(conn: Connection, node: str) -> int:
    """Where ``node``'s shipping resumes: the last position the database holds (0 if none)."""
    row = conn.execute(
        "select max(position) from evstore_events where node = %s", (node,)
    ).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def claim_node(conn: Connection, node: str, store_id: str) -> str:
    """Record ``store_id`` as the store ``node``'s history comes from, unless one is
    recorded already; return the recorded one (the first claim wins a race)."""
    conn.execute(
        "insert into evstore_nodes (node, store_id) values (%s, %s)"
        " on conflict (node) do nothing", (node, store_id),
    )
    recorded = node_identity(conn, node)
    assert recorded is not None
    return recorded


def node_identity(conn: Connection, node: str) -> str | None:
    """The store ``node``'s shipped history comes from; None before its first claim."""
    row = conn.execute("select store_id from evstore_nodes where node = %s", (node,)).fetchone()
    return str(row[0]) if row is not None else None


def shipped_event(conn: Connection, node: str, position: int) -> tuple[str, int, int] | None:
    """(id, seq, time) of the event ``node`` shipped at ``position``, if any."""
    row = conn.execute(
        "select id, seq, time from evstore_events where node = %s and position = %s",
        (node, position),
    ).fetchone()
    return (str(row[0]), int(row[1]), int(row[2])) if row is not None else None


def current_rows(conn: Connection, node: str) -> list[tuple[str, str, Status, int]]:
    """(entity, id, status, seq of its last shipped event) of every live entry of ``node``."""
    rows = conn.execute(
        """select c.entity, c.id, c.status, e.seq from evstore_current c
           join evstore_events e on e.node = c.node and e.position = c.position
           where c.node = %s""",
        (node,),
    ).fetchall()
    return [(entity, ident, to_status(entity, status), seq) for entity, ident, status, seq in rows]


def to_status(entity: str, data: Any) -> Status:
    """A status column's JSON as the typed status of its entity."""
    status: Status = msgspec.convert(data, STATUS_TYPES[ENTITIES[entity]])
    return status


# --- what ``evstore fleet`` shows ----------------------------------------------------------------

class FleetEntry(NamedTuple):
    """One row of ``evstore_current``."""

    node: str
    state: EntryState
    position: int


def list_current(conn: Connection, node: str | None, state: str | None) -> list[FleetEntry]:
    """The live entries of every node (or one), optionally in one state, by node, entity, id."""
    rows = conn.execute(
        """select node, entity, id, status, position from evstore_current
           where (%(node)s::text is null or node = %(node)s)
             and (%(state)s::text is null or state = %(state)s)
           order by node, entity, id""",
        {"node": node, "state": state},
    ).fetchall()
    return [
        FleetEntry(row_node, EntryState(entity, ident, to_status(entity, status)), position)
        for row_node, entity, ident, status, position in rows
    ]


def node_ids(conn: Connection, node: str, prefix: str) -> list[str]:
    """The ids shipped from ``node`` that start with ``prefix`` (at most two beside an
    exact match: enough for ``ids.choose`` to tell one from many)."""
    if not prefix:
        return []
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = conn.execute(
        """(select id from evstore_events where node = %s and id = %s limit 1)
           union (select distinct id from evstore_events where node = %s and id like %s
                  order by id limit 2)""",
        (node, prefix, node, escaped + "%"),
    ).fetchall()
    return [ident for (ident,) in rows]


def node_history(conn: Connection, node: str, ident: str) -> list[Event]:
    """Every shipped event of ``ident`` on ``node`` (containers and sandboxes), oldest first."""
    rows = conn.execute(
        """select position, entity, id, seq, time, type, changes from evstore_events
           where node = %s and id = %s order by position""",
        (node, ident),
    ).fetchall()
    return [Event(*row) for row in rows]
