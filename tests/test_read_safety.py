"""Whatever a read hands out, changing it changes nothing in the store: only an update
records a change, so memory, the snapshots, the log and ``verify`` always agree."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import evstore
from evstore import (
    ContainerConfig,
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    HugepageLimit,
    LinuxContainerResources,
)
from evstore._ops.verify import verify

METADATA = ContainerMetadata(
    id="c", name="web", config=ContainerConfig(name="web", labels={"app": "web"})
)


def _running() -> ContainerStatus:
    resources = ContainerResources(
        linux=LinuxContainerResources(
            cpu_shares=2, unified={"memory.high": "1G"},
            hugepage_limits=[HugepageLimit(page_size="2MB", limit=4)],
        )
    )
    return ContainerStatus(pid=7, created_at=1, started_at=2, resources=resources)


def _spoil_status(status: ContainerStatus) -> None:
    """Change a status in place, down to its resources' containers."""
    status.pid = 9
    status.finished_at = 3
    linux = status.resources.linux  # type: ignore[union-attr]
    assert linux is not None
    linux.cpu_shares = 99
    linux.unified["memory.high"] = "9G"
    linux.hugepage_limits[0].limit = 99
    linux.hugepage_limits.append(HugepageLimit(page_size="1GB", limit=1))


def _keep_arg(kept: list[ContainerStatus]) -> Callable[[ContainerStatus], ContainerStatus]:
    def fn(status: ContainerStatus) -> ContainerStatus:
        kept.append(status)
        status.message = "seen"  # in place, returned: the documented style
        return status

    return fn


def _spoil_fn_argument(store: evstore.Store, entry: Any) -> None:
    kept: list[ContainerStatus] = []
    entry.status.update_sync(_keep_arg(kept))
    _spoil_status(kept[0])


def _spoil_metadata(store: evstore.Store, entry: Any) -> None:
    metadata = entry.metadata
    assert metadata.config is not None
    metadata.config.labels["app"] = "spoiled"


def _spoil_history(store: evstore.Store, entry: Any) -> None:
    events = store.history("c")
    events[0].changes["pid"] = 9
    events.clear()


def _spoil_status_at(store: evstore.Store, entry: Any) -> None:
    _spoil_status(store.status_at("c", seq=1))  # type: ignore[arg-type]


def _spoil_load_report(store: evstore.Store, entry: Any) -> None:
    store.load_report.unknown["c"] = "spoiled"
    store.load_report.loaded = 99


def _spoil_pods(store: evstore.Store, entry: Any) -> None:
    pod = store.pods(all=True)[0]
    pod.containers[0].state = "spoiled"
    pod.containers.clear()
    store.pod_status(pod.id, pod.name, pod.namespace).container_statuses[0].exit_code = 9


def _spoil_events(store: evstore.Store, entry: Any) -> None:
    for event in store.events():
        event.changes.clear()


SPOILERS: dict[str, Callable[[evstore.Store, Any], None]] = {
    "entry.current": lambda store, entry: _spoil_status(entry.current),
    "status.get()": lambda store, entry: _spoil_status(entry.status.get()),
    "update_sync's result": lambda store, entry: _spoil_status(
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, message="seen"))
    ),
    "update's result": lambda store, entry: _spoil_status(
        entry.status.update(lambda s: msgspec.structs.replace(s, message="seen"))
    ),
    "the fn's argument, after it returned": _spoil_fn_argument,
    "metadata": _spoil_metadata,
    "history": _spoil_history,
    "status_at": _spoil_status_at,
    "load_report": _spoil_load_report,
    "pods and pod_status": _spoil_pods,
    "events": _spoil_events,
    "stats": lambda store, entry: store.stats().clear(),
}


def _seen(store: evstore.Store) -> tuple[Any, ...]:
    entry = store.containers.get("c")
    return (
        entry.status.get(), entry.metadata, store.history("c"), store.status_at("c", seq=1),
        store.load_report.unknown, store.load_report.loaded, store.pods(all=True),
        list(store.events()), store.stats(),
    )


@pytest.mark.parametrize("spoil", SPOILERS, ids=SPOILERS.keys())
def test_changing_what_a_read_handed_out_changes_nothing(store_path: Path, spoil: str) -> None:
    with evstore.open(store_path) as store:
        store.containers.add(METADATA, ContainerStatus(created_at=1))
    with evstore.open(store_path) as store:  # reopened: its load_report has an entry
        entry = store.containers.get("c")
        entry.status.update_sync(lambda s: _running())
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, message="seen"))
        before = _seen(store)
        with contextlib.suppress(AttributeError):  # a name no longer public: nothing to spoil
            SPOILERS[spoil](store, entry)
        store.flush()
        assert _seen(store) == before
        status = entry.status.get()
    with evstore.open(store_path, readonly=True) as store:
        assert store.containers.get("c").status.get() == status  # what the snapshot holds
        assert store.status_at("c", seq=len(store.history("c"))) == status  # the log's fold
    report = verify(store_path)
    assert report.ok, report.problems


def test_an_entry_shows_only_its_public_face(store: evstore.Store) -> None:
    entry = store.containers.add(METADATA, _running())
    assert {name for name in dir(entry) if not name.startswith("_")} == {
        "id", "metadata", "status",
    }
    for name in ("id", "metadata", "status", "current", "state", "seq", "eno", "lock"):
        with pytest.raises(AttributeError):
            setattr(entry, name, None)
    with pytest.raises(AttributeError):
        entry.status.get = _running  # type: ignore[method-assign]
    assert entry.id == "c" and entry.status.get() == _running() and entry.metadata == METADATA


def test_collections_hide_what_changes_memory_without_an_event(store: evstore.Store) -> None:
    public = {name for name in dir(store.containers) if not name.startswith("_")}
    assert public == {"add", "delete", "get", "list"}
