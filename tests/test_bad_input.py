"""Input that must be refused with a typed error before anything is written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxStatus


def digest(path: Path) -> str:
    return hashlib.sha256((path / "data.mdb").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "ident", ["a\x00b", "a\nb", "a\rb", "\x1b[31mred", "tab\there", "del\x7f", "c1\x9b"]
)
def test_ids_with_control_characters_are_refused(store: evstore.Store, ident: str) -> None:
    before = store.last_position
    with pytest.raises(evstore.InvalidInputError, match="control character"):
        store.containers.add(ContainerMetadata(id=ident), ContainerStatus())
    with pytest.raises(evstore.InvalidInputError, match="control character"):
        store.sandboxes.add(SandboxMetadata(id=ident), SandboxStatus())
    assert store.last_position == before
    assert store.containers.list() == [] and store.sandboxes.list() == []
    store.containers.add(ContainerMetadata(id="plain-ünïcode"), ContainerStatus())  # still fine


@pytest.mark.parametrize("deleted", [False, True], ids=["live", "deleted"])
@pytest.mark.parametrize("first", ["container", "sandbox"])
def test_containers_and_sandboxes_share_one_id_space(
    store_path: Path, first: str, deleted: bool
) -> None:
    with evstore.open(store_path) as store:
        kinds = {
            "container": (store.containers, ContainerMetadata, ContainerStatus),
            "sandbox": (store.sandboxes, SandboxMetadata, SandboxStatus),
        }
        (entries, meta, status), (others, other_meta, other_status) = (
            kinds[first], kinds["sandbox" if first == "container" else "container"]
        )
        entries.add(meta(id="shared"), status())
        if deleted:
            entries.delete("shared")
        before = store.last_position
        with pytest.raises(evstore.AlreadyExistsError, match=f"a {first}"):
            others.add(other_meta(id="shared"), other_status())
        assert store.last_position == before and others.list() == []
        assert {event.entity for event in store.history("shared")} == {first}
        others.add(other_meta(id="other"), other_status())  # the refusal left nothing behind
    with evstore.open(store_path) as store:  # and the id space is the same after a reopen
        entries, others = (
            (store.containers, store.sandboxes) if first == "container"
            else (store.sandboxes, store.containers)
        )
        with pytest.raises(evstore.AlreadyExistsError, match=f"a {first}"):
            others.add(other_meta(id="shared"), other_status())


def test_a_refused_id_can_still_be_added_as_its_own_kind(store: evstore.Store) -> None:
    store.sandboxes.add(SandboxMetadata(id="x"), SandboxStatus())
    with pytest.raises(evstore.AlreadyExistsError):
        store.containers.add(ContainerMetadata(id="x"), ContainerStatus())
    store.sandboxes.delete("x")
    store.sandboxes.add(SandboxMetadata(id="x"), SandboxStatus())  # its own history goes on
    assert [event.type for event in store.history("x")] == ["created", "deleted", "created"]


def test_a_writer_lock_that_is_a_directory_is_a_typed_error(store_path: Path) -> None:
    evstore.open(store_path).close()
    (store_path / "writer.lock").unlink()
    (store_path / "writer.lock").mkdir()
    before = digest(store_path)
    with pytest.raises(evstore.EvstoreError, match=r"writer\.lock"):
        evstore.open(store_path)
    assert digest(store_path) == before
    with evstore.open(store_path, readonly=True) as store:  # reading needs no writer lock
        assert store.containers.list() == []


@pytest.mark.parametrize("readonly", [False, True], ids=["writable", "read-only"])
def test_an_empty_data_file_is_a_clear_corrupt_store_error(
    store_path: Path, readonly: bool
) -> None:
    store_path.mkdir()
    (store_path / "data.mdb").touch()
    with pytest.raises(evstore.CorruptStoreError, match=r"data\.mdb is empty"):
        evstore.open(store_path, readonly=readonly)
    assert sorted(p.name for p in store_path.iterdir()) == ["data.mdb"]
    assert (store_path / "data.mdb").stat().st_size == 0
