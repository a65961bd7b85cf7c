"""Destructive calls take an exact id: ``delete`` never resolves a prefix, so a retried
delete cannot remove a different entry. A missing id is silent (as containerd's Delete),
a prefix of a live id raises ``InvalidInputError`` naming what it matches."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import evstore
from evstore import ContainerMetadata, ContainerStatus, SandboxMetadata, SandboxStatus

KINDS = ["containers", "sandboxes"]


def _add(store: evstore.Store, kind: str, ident: str) -> None:
    if kind == "containers":
        store.containers.add(ContainerMetadata(id=ident), ContainerStatus(created_at=1))
    else:
        store.sandboxes.add(SandboxMetadata(id=ident), SandboxStatus(created_at=1))


def _live(store: evstore.Store, kind: str) -> list[str]:
    return sorted(entry.id for entry in getattr(store, kind).list())


@pytest.mark.parametrize("kind", KINDS)
def test_a_retried_delete_removes_nothing_else(store: evstore.Store, kind: str) -> None:
    _add(store, kind, "web")
    _add(store, kind, "web-2")
    getattr(store, kind).delete("web")
    getattr(store, kind).delete("web")  # the retry: silent, "web-2" stays
    assert _live(store, kind) == ["web-2"]
    assert [event.type for event in store.history("web-2")] == ["created"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_prefix_of_a_live_id_is_refused(store: evstore.Store, kind: str) -> None:
    _add(store, kind, "web-1")
    with pytest.raises(evstore.InvalidInputError, match="'web-1'"):
        getattr(store, kind).delete("web")
    _add(store, kind, "web-2")
    _add(store, kind, "web-3")
    with pytest.raises(evstore.InvalidInputError, match=r"'web-1', 'web-2', \.\.\."):
        getattr(store, kind).delete("web")
    assert _live(store, kind) == ["web-1", "web-2", "web-3"]
    assert len(list(store.events())) == 3  # nothing written
    getattr(store, kind).delete("nothing-like-it")  # silent
    getattr(store, kind).delete("web-1")
    assert _live(store, kind) == ["web-2", "web-3"]


def test_async_delete_takes_an_exact_id(store_path: Path) -> None:
    async def main() -> None:
        async with evstore.open_async(store_path) as store:
            await store.containers.add(ContainerMetadata(id="web"), ContainerStatus())
            await store.containers.add(ContainerMetadata(id="web-2"), ContainerStatus())
            await store.containers.delete("web")
            await store.containers.delete("web")  # the retry: silent
            await store.containers.delete("missing")
            with pytest.raises(evstore.InvalidInputError, match="'web-2'"):
                await store.containers.delete("we")
            assert [entry.id for entry in store.containers.list()] == ["web-2"]

    anyio.run(main)
