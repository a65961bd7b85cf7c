"""Recording a node: follow a CRI v1 runtime (containerd, CRI-O) and keep every change.

``Recorder`` lists the runtime's pod sandboxes and containers, reads the status of those that
may have moved, and makes the store match: a new one is added, a changed one gets one event
with the fields that changed, one the runtime no longer lists is deleted. A container the list
shows in the state the store holds is read only on every tenth pass, and on the first after
connecting, for its resources (the kubelet too reads only what its relist saw move). The
store is its only memory, so a recorder killed at any moment and started again records no
change twice and misses none the runtime still shows.

What is recorded is what the runtime reports, with these exceptions, each said in the status's
``note``, so in the event that records it. The note goes with the next recorded change (which
clears it when the status is then exactly what the runtime reports); a note alone records
nothing:

- times never go back: a created, started or finished time the store holds is kept when the
  runtime stops reporting it (containerd's "unknown" status after it lost a shim zeroes them);
- a state the runtime reports without the time that makes it (EXITED with no finish time,
  RUNNING with no start time) gets the time the recorder saw it;
- CRI's CONTAINER_UNKNOWN cannot be stored over a known state; the fields that came with it
  are, and the note names it;
- a move the store does not allow even so (a sandbox NOTREADY -> READY, a container first
  seen without a creation time that later has one) is recorded as the entry deleted and added
  again with the runtime's status: its history goes on under the same id.

An exited container's status is read again for ten seconds after its exit (containerd may
learn of an OOM kill after the exit), then no more. A pid of 0 means the runtime gave none
(containerd reports 0 once a task has exited), so the last one seen is kept. A failed list
is never taken for an empty one: ``sync`` raises ``RuntimeUnavailableError`` and deletes
nothing. The recorder needs asyncio (gRPC's aio).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from evstore._core.errors import (
    AmbiguousIDError,
    InvalidInputError,
    NotFoundError,
    RuntimeUnavailableError,
)
from evstore._core.events import diff
from evstore._core.extras import missing_extra
from evstore._core.model import ContainerStatus, SandboxStatus
from evstore._core.states import ContainerState
from evstore._views.crimessages import (
    allowed,
    container_metadata,
    container_status,
    reconcile_container,
    reconcile_sandbox,
    sandbox_metadata,
    sandbox_moved,
    sandbox_status,
    state_name,
    verbose_pid,
)

if TYPE_CHECKING:
    from evstore._store.aio import AsyncEntries, AsyncStore

log = logging.getLogger("evstore._views.cri")

TIMEOUT = 10.0  # seconds for one call; a runtime slower than this counts as down
FIRST_BACKOFF, MAX_BACKOFF = 0.1, 5.0
READS = 32  # status reads in flight at once
# a container whose listed state has not moved is read (for its resources) on every this
# many passes only, as the kubelet reads only the pods its relist saw change
FULL_EVERY = 10
# an exit is read again for this long: containerd may learn of an OOM kill after the exit,
# and its reason then moves from "Error" to "OOMKilled"
SETTLE_NS = 10 * 1_000_000_000
_NOT_FOUND, _UNIMPLEMENTED = "NOT_FOUND", "UNIMPLEMENTED"


class Runtime(msgspec.Struct, frozen=True):
    """The runtime's name and version, as its ``Version`` call reports them."""

    name: str = ""
    version: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.version}".strip()


class SyncReport(msgspec.Struct):
    """What one sync did: entries added, changed (one event each), deleted and unchanged."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    runtime: Runtime = Runtime()

    def __str__(self) -> str:
        return (f"{self.runtime}: {self.added} added, {self.changed} changed, "
                f"{self.deleted} deleted, {self.unchanged} unchanged")

    @property
    def recorded(self) -> bool:
        """Whether this sync wrote anything."""
        return bool(self.added or self.changed or self.deleted)


def load_client() -> tuple[Any, Any, Any]:
    """grpc, the CRI messages and the CRI stub: ``MissingExtraError`` without the extra."""
    try:  # by name: neither is needed (nor typed) unless a recorder is made
        grpc = importlib.import_module("grpc")
        importlib.import_module("grpc.aio")
        api_pb2 = importlib.import_module("cri_api.v1.api_pb2")
        api_pb2_grpc = importlib.import_module("cri_api.v1.api_pb2_grpc")
    except ImportError as exc:
        raise missing_extra("cri", "recording a CRI runtime") from exc
    return grpc, api_pb2, api_pb2_grpc.RuntimeServiceStub


def channel_target(endpoint: str) -> str:
    """gRPC's name for ``endpoint``: a bare socket path becomes ``unix://PATH``."""
    return endpoint if "://" in endpoint else f"unix://{endpoint}"


# --- the recorder -------------------------------------------------------------------------------


class _Listed(msgspec.Struct):
    """One pass's view of the runtime: what it lists, by id."""

    runtime: Runtime
    sandboxes: dict[str, Any]
    containers: dict[str, Any]


SyncCallback = Callable[[SyncReport], None]


class Recorder:
    """Keeps ``store`` (an ``AsyncStore``) matching the CRI runtime at ``endpoint``
    (``unix:///run/containerd/containerd.sock`` or a bare socket path)."""

    def __init__(
        self, store: AsyncStore, endpoint: str, *, interval: float = 1.0,
        timeout: float = TIMEOUT, on_sync: SyncCallback | None = None,
    ) -> None:
        self._grpc, self._cri, self._stub_type = load_client()
        if not (isinstance(interval, int | float) and interval > 0):
            raise InvalidInputError(f"interval must be a number of seconds > 0, not {interval!r}")
        self.store = store
        self.endpoint = channel_target(endpoint)
        self.interval = interval
        self.timeout = timeout
        self.on_sync = on_sync
        self._channel: Any = None
        self._stub: Any = None
        self._reads = asyncio.Semaphore(READS)
        self._passes = 0  # since the connection was made: the first pass reads everything

    # connection

    def _client(self) -> Any:
        if self._stub is None:
            self._channel = self._grpc.aio.insecure_channel(self.endpoint)
            self._stub = self._stub_type(self._channel)
        return self._stub

    async def aclose(self) -> None:
        """Close the connection (the next call opens a new one)."""
        channel, self._channel, self._stub = self._channel, None, None
        self._passes = 0
        if channel is not None:
            await channel.close()

    async def _call(self, method: str, request: Any) -> Any:
        """One CRI call; a failure is ``RuntimeUnavailableError``, except NOT_FOUND (returned
        as None: the object went away between the list and this read)."""
        try:
            return await getattr(self._client(), method)(request, timeout=self.timeout)
        except self._grpc.aio.AioRpcError as exc:
            code, details = exc.code().name, exc.details()
        # raised out here, so the error holds no gRPC call: older grpcio (1.51) complains at
        # exit about one that a traceback kept alive that long
        if code == _NOT_FOUND:
            return None
        raise RuntimeUnavailableError(f"{method}: {code}: {details}")

    # one pass

    async def sync(self) -> SyncReport:
        """Make the store match what the runtime reports now (see the module docstring)."""
        listed = await self._list()
        report = SyncReport(runtime=listed.runtime)
        full, self._passes = self._passes % FULL_EVERY == 0, self._passes + 1
        await self._sync_sandboxes(listed.sandboxes, report)
        await self._sync_containers(listed.containers, report, full)
        await self._delete_missing(self.store.containers, listed.containers, report)
        await self._delete_missing(self.store.sandboxes, listed.sandboxes, report)
        return report

    async def _list(self) -> _Listed:
        cri = self._cri
        version = await self._call("Version", cri.VersionRequest())
        sandboxes = await self._call("ListPodSandbox", cri.ListPodSandboxRequest())
        containers = await self._call("ListContainers", cri.ListContainersRequest())
        if version is None or sandboxes is None or containers is None:
            raise RuntimeUnavailableError("the runtime answered a list with NOT_FOUND")
        return _Listed(
            runtime=Runtime(version.runtime_name, version.runtime_version),
            sandboxes={s.id: s for s in sandboxes.items},
            containers={c.id: c for c in containers.containers},
        )

    async def _sync_sandboxes(self, listed: dict[str, Any], report: SyncReport) -> None:
        entries = self.store.sandboxes
        todo: list[Awaitable[None]] = []
        for ident, item in listed.items():
            old = _current(entries, ident)
            if old is None or sandbox_moved(old, item):
                todo.append(self._record_sandbox(ident, old, report))
            else:
                report.unchanged += 1
        await _all(todo)

    async def _record_sandbox(
        self, ident: str, old: SandboxStatus | None, report: SyncReport
    ) -> None:
        async with self._reads:
            reply = await self._call("PodSandboxStatus", self._cri.PodSandboxStatusRequest(
                pod_sandbox_id=ident, verbose=True
            ))
        if reply is None:
            return  # removed since the list: the next sync deletes it
        cri_status = reply.status
        seen = sandbox_status(cri_status.state, cri_status.created_at, verbose_pid(reply.info))
        status = reconcile_sandbox(old, seen)
        await self._record(self.store.sandboxes, ident, old, status,
                           lambda: sandbox_metadata(cri_status), report)

    async def _sync_containers(
        self, listed: dict[str, Any], report: SyncReport, full: bool
    ) -> None:
        """Read the status of the containers that are new or moved (by the list), those
        that exited lately, and on a full pass every one that has not exited."""
        entries = self.store.containers
        todo: list[Awaitable[None]] = []
        settled = time.time_ns() - SETTLE_NS
        for ident, item in listed.items():
            old = _current(entries, ident)
            moved = old is None or item.state != old.state()
            if not moved and not _worth_reading(old, full, settled):
                report.unchanged += 1
                continue
            todo.append(self._record_container(item, old, moved, report))
        await _all(todo)

    async def _record_container(
        self, item: Any, old: ContainerStatus | None, moved: bool, report: SyncReport
    ) -> None:
        """Read the status (verbose, for the pid, when the state moved) and record it."""
        async with self._reads:
            reply = await self._call("ContainerStatus", self._cri.ContainerStatusRequest(
                container_id=item.id, verbose=moved
            ))
        if reply is None:
            return
        cri_status = reply.status
        seen = container_status(cri_status, verbose_pid(reply.info))
        status = reconcile_container(old, seen, cri_status.state, time.time_ns())
        await self._record(self.store.containers, item.id, old, status,
                           lambda: container_metadata(cri_status, item.pod_sandbox_id), report)

    async def _record(
        self, entries: AsyncEntries[Any, Any], ident: str, old: Any, status: Any,
        metadata: Callable[[], Any], report: SyncReport,
    ) -> None:
        """Add, update or (for a move the store refuses) re-add one entry."""
        if old is None:
            await entries.add(metadata(), status)
            report.added += 1
            return
        if not allowed(old, status):
            entry = entries.get(ident)
            note = f"added again: {state_name(old)} -> {state_name(status)} is not a move " \
                   "the store allows"
            status.note = f"{status.note}; {note}" if status.note else note
            await entry.status.delete()
            await entries.add(metadata(), status)
            report.changed += 1
            return
        if diff(old, msgspec.structs.replace(status, note=old.note)) is None:
            report.unchanged += 1  # a note alone is no change: it rides with the next one
            return
        await entries.get(ident).status.update_sync(lambda _: status)
        report.changed += 1

    async def _delete_missing(
        self, entries: AsyncEntries[Any, Any], listed: dict[str, Any], report: SyncReport
    ) -> None:
        gone = [entry for entry in entries.list() if entry.id not in listed]
        await _all(entry.status.delete() for entry in gone)
        report.deleted += len(gone)

    # following

    async def run(self) -> None:
        """Sync, then follow until cancelled: the runtime's container events where it has
        them (each followed by a sync), else a sync every ``interval`` seconds. A failure
        is retried with backoff (0.1 s doubling to 5 s), said once per outage, and followed
        by a full sync."""
        delay, down_since = FIRST_BACKOFF, 0.0
        try:
            while True:
                try:
                    report = await self.sync()
                except RuntimeUnavailableError as exc:
                    if not down_since:
                        down_since = time.monotonic()
                        log.warning("runtime unavailable (%s); retrying", exc)
                    await self.aclose()
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
                if down_since:
                    log.warning("runtime back after %.1f s", time.monotonic() - down_since)
                delay, down_since = FIRST_BACKOFF, 0.0
                self._reported(report)
                try:
                    await self._follow()
                except RuntimeUnavailableError as exc:
                    down_since = time.monotonic()
                    log.warning("runtime unavailable (%s); retrying", exc)
                    await self.aclose()
        finally:
            await asyncio.shield(self.aclose())

    def _reported(self, report: SyncReport) -> None:
        if self.on_sync is not None:
            self.on_sync(report)

    async def _follow(self) -> None:
        """Until the runtime fails: events if it has them, else polling."""
        if not await self._follow_events():
            await self._poll()

    async def _follow_events(self) -> bool:
        """Sync after each container event; False at once if the runtime has no events."""
        stream = self._client().GetContainerEvents(self._cri.GetEventsRequest())
        code = "the runtime ended its event stream"
        try:
            async for _event in stream:
                self._reported(await self.sync())
        except self._grpc.aio.AioRpcError as exc:
            code = exc.code().name
        if code == _UNIMPLEMENTED:
            return False
        raise RuntimeUnavailableError(f"GetContainerEvents: {code}")

    async def _poll(self) -> None:
        """A sync every ``interval`` seconds, from the start of one to the start of the next."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, started + self.interval - time.monotonic()))
            started = time.monotonic()
            self._reported(await self.sync())


def _current(entries: AsyncEntries[Any, Any], ident: str) -> Any:
    """The status the store holds for ``ident``, None when it has no live entry."""
    try:
        entry = entries.get(ident)
        return entry.status.get() if entry.id == ident else None  # not a prefix match
    except (NotFoundError, AmbiguousIDError):
        return None


def _worth_reading(old: ContainerStatus, full: bool, settled: int) -> bool:
    """Whether a container the list shows in the state the store holds may still have
    changed: its resources (read on full passes), or the reason of a fresh exit."""
    if old.state() is ContainerState.EXITED:
        return old.finished_at >= settled
    return full


async def _all(calls: Iterable[Awaitable[None]]) -> None:
    """Run ``calls`` together; when one fails, the others are cancelled and awaited before
    the error goes on, so nothing of a failed pass keeps running behind it (the store
    finishes a write it had queued, cancelled or not)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
