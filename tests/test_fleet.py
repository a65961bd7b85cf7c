"""``evstore fleet ls`` and ``fleet history`` over a database two nodes shipped into, and the
README's SQL against the same tables."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from test_ship import make_store

import evstore._cli.main
from evstore._fleet.shipping import ship

# the README's "exited with OOMKilled in the last hour across nodes"
OOM_QUERY = """
select node, id, to_timestamp(time / 1e9) as exited_at, changes->>'exit_code' as exit_code
from evstore_events
where type = 'exited' and changes->>'reason' = 'OOMKilled'
  and time > extract(epoch from now() - interval '1 hour') * 1e9
order by time desc
"""


def fleet(*args: object) -> Result:
    return CliRunner().invoke(evstore._cli.main.main, ["fleet", *map(str, args)])


def ok(*args: object) -> str:
    result = fleet(*args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


@pytest.fixture
def two_nodes(tmp_path: Path, pg_dsn: str) -> str:
    """Node "alpha" with containers a0..a5, node "beta" with b0..b3, each with a sandbox."""
    ship(make_store(tmp_path / "alpha", "a", 6), pg_dsn, "alpha")
    ship(make_store(tmp_path / "beta", "b", 4), pg_dsn, "beta")
    return pg_dsn


def test_ls_table(two_nodes: str) -> None:
    lines = ok("ls", "--dsn", two_nodes).splitlines()
    assert lines[0].split() == ["NODE", "ID", "ENTITY", "STATE", "PID", "EXIT", "CODE", "AGE"]
    rows = [line.split()[:6] for line in lines[1:]]
    assert rows == [  # a0, a4, b0 were deleted; by node, entity, id
        ["alpha", "a1", "container", "EXITED", "102", "0"],
        ["alpha", "a2", "container", "EXITED", "102", "0"],
        ["alpha", "a3", "container", "EXITED", "102", "137"],
        ["alpha", "a5", "container", "EXITED", "102", "0"],
        ["alpha", "asb", "sandbox", "NOTREADY", "7", "0"],
        ["beta", "b1", "container", "EXITED", "102", "0"],
        ["beta", "b2", "container", "EXITED", "102", "0"],
        ["beta", "b3", "container", "EXITED", "102", "137"],
        ["beta", "bsb", "sandbox", "NOTREADY", "7", "0"],
    ]


def test_ls_json_and_filters(two_nodes: str) -> None:
    listed = json.loads(ok("ls", "--dsn", two_nodes, "--json"))
    assert len(listed) == 9
    a3 = next(o for o in listed if o["id"] == "a3")
    assert a3 == {
        "node": "alpha", "id": "a3", "entity": "container", "state": "exited", "pid": 102,
        "exit_code": 137, "created_at": 4, "position": a3["position"],
        "status": {"pid": 102, "created_at": 4, "started_at": 5, "finished_at": 9,
                   "exit_code": 137, "reason": "OOMKilled"},
    }
    beta = json.loads(ok("ls", "--dsn", two_nodes, "--node", "beta", "--json"))
    assert [(o["node"], o["id"]) for o in beta] == [
        ("beta", "b1"), ("beta", "b2"), ("beta", "b3"), ("beta", "bsb"),
    ]
    sandboxes = json.loads(ok("ls", "--dsn", two_nodes, "--state", "NotReady", "--json"))
    assert [(o["node"], o["entity"], o["id"], o["state"]) for o in sandboxes] == [
        ("alpha", "sandbox", "asb", "notready"), ("beta", "sandbox", "bsb", "notready"),
    ]
    assert json.loads(ok("ls", "--dsn", two_nodes, "--node", "gamma", "--json")) == []


def test_history_table_and_json(two_nodes: str) -> None:
    lines = ok("history", "--dsn", two_nodes, "beta", "b3").splitlines()
    assert lines[0] == "container b3 on beta: 5 event(s)"
    assert lines[1].split() == ["POSITION", "SEQ", "TIME", "TYPE", "CHANGES"]
    assert [line.split()[1] + " " + line.split()[3] for line in lines[2:]] == [
        "1 created", "2 started", "3 updated", "4 updated", "5 exited",
    ]
    assert lines[-1].endswith('{"reason":"OOMKilled","exit_code":137,"finished_at":9}')
    events = json.loads(ok("history", "--dsn", two_nodes, "alpha", "a0", "--json"))
    assert [(e["node"], e["id"], e["seq"], e["type"]) for e in events] == [
        ("alpha", "a0", n, kind)
        for n, kind in enumerate(("created", "started", "updated", "updated", "exited",
                                  "deleted"), 1)
    ]
    assert set(events[0]) == {
        "node", "position", "entity", "id", "seq", "time", "type", "changes",
    }
    assert events[0]["changes"] == {"created_at": 1}
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)


def test_fleet_errors_are_one_line(two_nodes: str, pg_dsn: str) -> None:
    missing = fleet("history", "--dsn", two_nodes, "beta", "a3")
    assert missing.exit_code == 1
    assert missing.stderr == "error: 'a3': no such id shipped from node 'beta'\n"
    wildcard = fleet("history", "--dsn", two_nodes, "beta", "_")  # LIKE's wildcard, escaped
    assert wildcard.stderr == "error: '_': no such id shipped from node 'beta'\n"
    several = fleet("history", "--dsn", two_nodes, "beta", "b")
    assert several.exit_code == 1
    assert several.stderr.startswith("error: 'b' matches more than one id shipped from node")
    with psycopg.connect(two_nodes, autocommit=True) as conn:
        conn.execute("drop table evstore_events, evstore_current")
    empty = fleet("ls", "--dsn", two_nodes)
    assert (empty.exit_code, empty.stderr) == (
        1, "error: no evstore tables in that database: nothing was shipped there\n",
    )
    refused = fleet("ls", "--dsn", "host=127.0.0.1 port=1 connect_timeout=2")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: cannot connect to PostgreSQL: ")
    assert refused.stderr.count("\n") == 1
    bad_state = fleet("ls", "--dsn", two_nodes, "--state", "sleeping")
    assert bad_state.exit_code == 2 and bad_state.stderr.startswith("error: ")


def test_readme_oom_query_across_nodes(two_nodes: str) -> None:
    with psycopg.connect(two_nodes) as conn:
        rows = conn.execute(OOM_QUERY).fetchall()
        old = conn.execute(OOM_QUERY.replace("'1 hour'", "'-1 hour'")).fetchall()
    assert sorted((node, ident, code) for node, ident, _at, code in rows) == [
        ("alpha", "a0", "137"), ("alpha", "a3", "137"), ("beta", "b0", "137"),
        ("beta", "b3", "137"),
    ]
    assert old == []  # nothing exited an hour from now: the window is applied
