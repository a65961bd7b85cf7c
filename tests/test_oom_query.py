"""The README's fleet query for OOM kills, run as written on a real PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._fleet.shipping import ship

README = Path(__file__).parent.parent / "README.md"


def readme_oom_query() -> str:
    text = README.read_text()
    found = re.search(r"Containers that [^\n]*OOM.*?```sql\n(.*?)```", text, re.S)
    assert found is not None, "the README lost its OOM query"
    return found.group(1)


def oom_kill(status: ContainerStatus) -> ContainerStatus:
    status.finished_at, status.exit_code, status.reason = 30, 137, "OOMKilled"
    return status


def test_the_oom_query_finds_every_oom_kill_once(tmp_path: Path, pg_dsn: str) -> None:
    path = tmp_path / "store"
    with evstore.open(path) as store:
        # seen running, then exited with the reason: an 'exited' event carries it
        exited = store.containers.add(ContainerMetadata(id="exited"),
                                      ContainerStatus(created_at=10, started_at=20))
        exited.status.update_sync(oom_kill)
        # first recorded after it was killed (imported, or a recorder that came late):
        # the 'created' event carries the reason
        store.containers.add(ContainerMetadata(id="first-seen-killed"),
                             oom_kill(ContainerStatus(created_at=10, started_at=20)))
        # the reason came while it still ran (the OOM killer took a child), exit later
        child = store.containers.add(ContainerMetadata(id="child-killed"),
                                     ContainerStatus(created_at=10, started_at=20))
        child.status.update_sync(lambda s: ContainerStatus(**{
            **{f: getattr(s, f) for f in s.__struct_fields__}, "reason": "OOMKilled"}))
        child.status.update_sync(lambda s: oom_kill(s))
        # an ordinary failure is not one
        other = store.containers.add(ContainerMetadata(id="failed"),
                                     ContainerStatus(created_at=10, started_at=20))
        other.status.update_sync(lambda s: ContainerStatus(
            created_at=10, started_at=20, finished_at=30, exit_code=1, reason="Error"))
    ship(path, pg_dsn, "node-a")
    with psycopg.connect(pg_dsn) as connection:
        rows = connection.execute(readme_oom_query()).fetchall()
    assert sorted(row[1] for row in rows) == ["child-killed", "exited", "first-seen-killed"]
