"""A call that would wait for itself (an update fn writing its own entry) raises a typed
error at once, writes nothing, and leaves the entry usable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import msgspec
import pytest

import evstore
from evstore import ContainerMetadata, ContainerStatus

JOIN_SECONDS = 10  # a hang fails the test instead of blocking the run

Nested = Callable[[evstore.Store], object]

NESTED: dict[str, Nested] = {
    "update_sync": lambda s: s.containers.get("c").status.update_sync(_bump),
    "update": lambda s: s.containers.get("c").status.update(_bump),
    "entry delete": lambda s: s.containers.get("c").status.delete(),  # type: ignore[attr-defined]
    "containers.delete": lambda s: s.containers.delete("c"),
}


def _bump(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=status.pid + 1)


def _outcome(call: Callable[[], object]) -> BaseException | None:
    """What ``call`` raised (None: nothing), run in a thread that may not hang."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)  # a hung one stays behind
    thread.start()
    thread.join(JOIN_SECONDS)
    assert not thread.is_alive(), "the call waits for itself"
    return outcome[0]


def _nesting(store: evstore.Store, nested: Nested) -> Callable[[ContainerStatus], ContainerStatus]:
    def fn(status: ContainerStatus) -> ContainerStatus:
        nested(store)
        return _bump(status)

    return fn


def _assert_untouched(store: evstore.Store) -> None:
    """Nothing was written or shown, and the entry still takes updates."""
    assert store.containers.get("c").status.get().pid == 1
    assert [event.seq for event in store.history("c")] == [1]
    store.containers.get("c").status.update_sync(_bump)
    assert store.containers.get("c").status.get().pid == 2


@pytest.mark.parametrize("nested", NESTED, ids=NESTED.keys())
@pytest.mark.parametrize("sync", [True, False], ids=["update_sync", "update"])
def test_an_update_fn_writing_its_own_entry_raises(
    store: evstore.Store, nested: str, sync: bool
) -> None:
    entry = store.containers.add(ContainerMetadata(id="c"), ContainerStatus(pid=1, created_at=1))
    outer = entry.status.update_sync if sync else entry.status.update
    error = _outcome(lambda: outer(_nesting(store, NESTED[nested])))
    assert isinstance(error, evstore.InvalidInputError), repr(error)
    assert "itself" in str(error) and "'c'" in str(error)
    _assert_untouched(store)


def test_an_update_fn_may_write_another_entry(store: evstore.Store) -> None:
    entry = store.containers.add(ContainerMetadata(id="c"), ContainerStatus(pid=1, created_at=1))
    store.containers.add(ContainerMetadata(id="d"), ContainerStatus(created_at=1))
    other: Nested = lambda s: s.containers.get("d").status.update_sync(_bump)  # noqa: E731
    assert _outcome(lambda: entry.status.update_sync(_nesting(store, other))) is None
    assert [e.status.get().pid for e in store.containers.list()] == [2, 1]


@pytest.mark.parametrize("nested", NESTED, ids=NESTED.keys())
def test_an_async_update_fn_writing_its_own_entry_raises(store_path: Path, nested: str) -> None:
    """On the event loop's thread, a blocking write of the entry a task holds would stop
    the loop for good."""

    async def main() -> None:
        async with evstore.open_async(store_path) as store:
            entry = await store.containers.add(
                ContainerMetadata(id="c"), ContainerStatus(pid=1, created_at=1)
            )
            try:
                await entry.status.update_sync(_nesting(store.sync, NESTED[nested]))
            finally:
                _assert_untouched(store.sync)

    error = _outcome(lambda: anyio.run(main))
    assert isinstance(error, evstore.InvalidInputError), repr(error)
