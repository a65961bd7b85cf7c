"""One way to name an entry: every call and command that takes an id takes the exact id or a
unique prefix of one (exact wins), and says NotFoundError or AmbiguousIDError otherwise."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxStatus
from evstore._cli.main import main

FULL = "3f2a9c01" + "e" * 56  # a 64-hex id, as containerd makes them
OTHER = "3f2b7d55" + "a" * 56


def started(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=31337, started_at=2)


def populate(store: evstore.Store) -> None:
    store.containers.add(ContainerMetadata(id=FULL), ContainerStatus(created_at=1))
    store.containers.get(FULL).status.update_sync(started)
    store.containers.add(ContainerMetadata(id=OTHER), ContainerStatus(created_at=1))
    store.containers.add(ContainerMetadata(id="c1"), ContainerStatus(created_at=1))
    store.containers.delete("c1")
    store.sandboxes.add(SandboxMetadata(id="c10"), SandboxStatus(created_at=1))


def test_history_and_status_at_take_a_unique_prefix(store: evstore.Store) -> None:
    populate(store)
    whole = store.history(FULL)
    assert [event.type for event in whole] == ["created", "started"]
    assert store.history("3f2a") == store.history(FULL[:40]) == whole
    assert store.status_at("3f2a", seq=2) == store.status_at(FULL, seq=2)
    assert store.status_at("3f2a", seq=2).pid == 31337  # type: ignore[union-attr]
    assert store.containers.get("3f2a").id == FULL
    assert store.resolve_id("3f2a") == FULL


def test_an_exact_id_wins_over_a_longer_one_it_prefixes(store: evstore.Store) -> None:
    populate(store)
    assert [event.id for event in store.history("c1")] == ["c1", "c1"]  # deleted, still named
    assert store.resolve_id("c10") == "c10"


@pytest.mark.parametrize("call", [
    lambda s, ident: s.history(ident),
    lambda s, ident: s.status_at(ident, seq=1),
    lambda s, ident: s.resolve_id(ident),
    lambda s, ident: s.containers.get(ident),
])
def test_unknown_and_ambiguous_ids_are_typed_errors(store: evstore.Store, call: object) -> None:
    populate(store)
    assert callable(call)
    with pytest.raises(evstore.NotFoundError, match="'feed': no such"):
        call(store, "feed")
    with pytest.raises(evstore.AmbiguousIDError, match=r"'3f2' matches more than one"):
        call(store, "3f2")
    with pytest.raises(evstore.NotFoundError):
        call(store, "")


def test_a_read_only_store_resolves_ids_written_after_it_opened(store_path: Path) -> None:
    with evstore.open(store_path) as writer:
        writer.containers.add(ContainerMetadata(id="early"), ContainerStatus(created_at=1))
        writer.flush()
        with evstore.open(store_path, readonly=True, probe=False) as reader:
            writer.containers.add(ContainerMetadata(id=FULL), ContainerStatus(created_at=1))
            writer.flush()
            assert [event.id for event in reader.history("3f2a")] == [FULL]


def invoke(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_history_takes_a_prefix_and_a_whole_id(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        populate(store)
    code, out, _ = invoke("history", store_path, "3f2a")
    assert code == 0 and out.splitlines()[0] == f"container {FULL}: 2 event(s)"
    assert invoke("history", store_path, FULL)[:2] == (0, out)
    assert invoke("history", store_path, "3f2") == (
        1, "", f"error: '3f2' matches more than one container or sandbox ({FULL}, {OTHER})\n"
    )
    assert invoke("history", store_path, "feed") == (
        1, "", "error: 'feed': no such container or sandbox\n"
    )
