"""The public attributes of the store's objects are exactly the documented API, so no
internal (the committer, id allocation, an entry's lock) leaks back to users by accident,
and the names a user may read cannot be set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import evstore
from evstore import ContainerConfig, ContainerMetadata, ContainerStatus

STORE = {
    "close", "closed", "containers", "events", "flush", "history", "last_position",
    "load_report", "path", "pod_status", "pods", "readonly", "resolve_id", "sandboxes",
    "stats", "status_at", "store_id",
}
ENTRIES = {"add", "delete", "get", "list"}
ENTRY = {"id", "metadata", "status"}
STATUS = {"delete", "get", "update", "update_sync"}
ASYNC_STORE = {"containers", "flush", "load_report", "sandboxes", "subscribe", "sync"}
METADATA = ContainerMetadata(id="c", name="web", config=ContainerConfig(name="web"))


def public(value: object) -> set[str]:
    return {name for name in dir(value) if not name.startswith("_")}


def test_the_store_shows_only_its_documented_api(store: evstore.Store) -> None:
    entry = store.containers.add(METADATA, ContainerStatus(created_at=1))
    assert public(store) == STORE
    assert public(store.containers) == public(store.sandboxes) == ENTRIES
    assert public(entry) == ENTRY
    assert public(entry.status) == STATUS


def test_the_classes_show_only_the_documented_api() -> None:
    """The classes too: what the reference lists is what ``dir`` finds there."""
    assert public(evstore.Store) == STORE - {"containers", "sandboxes", "path", "readonly"}
    assert public(evstore.Entries) == ENTRIES
    assert public(evstore.StatusStorage) == STATUS
    assert public(evstore.AsyncStore) == ASYNC_STORE - {"containers", "sandboxes", "sync"}


@pytest.mark.parametrize("name", sorted(STORE))
def test_no_public_name_of_a_store_can_be_set(store: evstore.Store, name: str) -> None:
    with pytest.raises(AttributeError):
        setattr(store, name, None)
    assert getattr(store, name) is not None or name == "store_id"


def test_the_async_store_shows_only_its_documented_api(tmp_path: Path) -> None:
    async def main() -> None:
        async with evstore.open_async(tmp_path / "store") as store:
            entry = await store.containers.add(METADATA, ContainerStatus(created_at=1))
            assert public(store) == ASYNC_STORE
            assert public(store.containers) == ENTRIES
            assert public(entry) == ENTRY
            assert public(entry.status) == STATUS
            assert public(store.sync) == STORE
            for name in ASYNC_STORE:
                with pytest.raises(AttributeError):
                    setattr(store, name, None)
            status: Any = entry.status.get()
            status.pid = 9  # a copy: the store keeps its own
            assert store.containers.get("c").status.get().pid == 0

    anyio.run(main)
