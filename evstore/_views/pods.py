"""The kubelet's view: containers and sandboxes grouped into pods, and a pod's status with
restart counts taken from the log.

The shapes follow the kubelet's container runtime (``GetPods``, ``GetPodStatus`` and the
``Pods`` / ``Pod`` finders of ``pkg/kubelet/container``). Pods are grouped by their sandbox's
config (uid, name, namespace); a container whose sandbox is no longer in the store is grouped
by its ``io.kubernetes.pod.*`` labels. Entries without a config are not the kubelet's and are
left out, as the kubelet leaves out CRI objects without metadata. Pods, containers and
sandboxes are listed newest first, as the kubelet orders them.

A container's ``restart_count`` is the number of containers with the same config name in the
same pod (same pod uid) created before it, deleted ones included. It is read from the log's
``created`` records, which carry the metadata: a container's pod is its sandbox's uid as the
log knew it when the container was created, else its ``io.kubernetes.pod.uid`` label. The log
is read once per store and then only from where the last read stopped.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

import msgspec

from evstore._core import inputs
from evstore._core.errors import StoreClosedError
from evstore._core.model import (
    ContainerConfig,
    ContainerMetadata,
    ContainerStatus,
    SandboxConfig,
    SandboxMetadata,
    SandboxStatus,
)
from evstore._core.states import ContainerState, SandboxState
from evstore._history.restarts import POD_UID_LABEL, Restarts
from evstore._storage.retention import retained

if TYPE_CHECKING:
    from evstore._store.store import Store

POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"

CREATED, RUNNING, EXITED, UNKNOWN = "created", "running", "exited", "unknown"
CONTAINER_STATES = {
    ContainerState.CREATED: CREATED,
    ContainerState.RUNNING: RUNNING,
    ContainerState.EXITED: EXITED,
    ContainerState.UNKNOWN: UNKNOWN,
}
# as the kubelet's runtime shows sandboxes: ready runs, not ready has exited
SANDBOX_STATES = {
    SandboxState.INIT: CREATED,
    SandboxState.READY: RUNNING,
    SandboxState.NOTREADY: EXITED,
    SandboxState.UNKNOWN: UNKNOWN,
}

PodKey = tuple[str, str, str]  # uid, name, namespace


def build_pod_full_name(name: str, namespace: str) -> str:
    """The kubelet's full name of a pod: ``name_namespace``."""
    return f"{name}_{namespace}"


# --- GetPods ----------------------------------------------------------------------------------


class PodContainer(msgspec.Struct, kw_only=True):
    """A container of a ``Pod``: ``name`` is its config name."""

    id: str
    name: str = ""
    image: str = ""
    state: str = UNKNOWN
    created_at: int = 0
    sandbox_id: str = ""
    attempt: int = 0


class PodSandbox(msgspec.Struct, kw_only=True):
    """A sandbox of a ``Pod``: ``name`` is its config name (the pod's); no image."""

    id: str
    name: str = ""
    image: str = ""
    state: str = UNKNOWN
    created_at: int = 0
    attempt: int = 0


class Pod(msgspec.Struct, kw_only=True):
    """A pod as ``GetPods`` shows it; ``Pod()`` (``id == ""``) is the not-found answer."""

    id: str = ""
    name: str = ""
    namespace: str = ""
    created_at: int = 0  # the newest sandbox's
    containers: list[PodContainer] = []
    sandboxes: list[PodSandbox] = []

    def find_container_by_name(self, name: str) -> PodContainer | None:
        return next((c for c in self.containers if c.name == name), None)

    def find_container_by_id(self, id: str) -> PodContainer | None:
        return next((c for c in self.containers if c.id == id), None)

    def find_sandbox_by_id(self, id: str) -> PodSandbox | None:
        return next((s for s in self.sandboxes if s.id == id), None)


class Pods(list[Pod]):
    """The pods of a store, newest first; the finders answer ``Pod()`` when nothing matches."""

    def find_pod_by_id(self, uid: str) -> Pod:
        return next((pod for pod in self if pod.id == uid), Pod())

    def find_pod_by_full_name(self, full_name: str) -> Pod:
        return next(
            (pod for pod in self if build_pod_full_name(pod.name, pod.namespace) == full_name),
            Pod(),
        )

    def find_pod(self, full_name: str, uid: str) -> Pod:
        """By full name when one is given, else by uid."""
        if full_name:
            return self.find_pod_by_full_name(full_name)
        return self.find_pod_by_id(uid)


def pods(store: Store, all: bool = False) -> Pods:
    """Every pod; with ``all=False`` only running containers and ready sandboxes."""
    sandboxes = _live_sandboxes(store)
    grouped: dict[PodKey, Pod] = {}
    for sandbox in sandboxes.values():
        status, config = sandbox.status, sandbox.config
        if not all and status.state is not SandboxState.READY:
            continue
        pod = _pod(grouped, _sandbox_key(config))
        pod.sandboxes.append(PodSandbox(
            id=sandbox.metadata.id, name=config.name, state=SANDBOX_STATES[status.state],
            created_at=status.created_at, attempt=config.attempt,
        ))
        pod.created_at = max(pod.created_at, status.created_at)
    for container in _live_containers(store):
        state = container.status.state()
        if not all and state is not ContainerState.RUNNING:
            continue
        pod = _pod(grouped, _container_key(container, sandboxes))
        pod.containers.append(PodContainer(
            id=container.metadata.id, name=container.config.name, image=container.config.image,
            state=CONTAINER_STATES[state], created_at=container.status.created_at,
            sandbox_id=container.metadata.sandbox_id, attempt=container.config.attempt,
        ))
    for pod in grouped.values():
        pod.containers.sort(key=lambda c: (-c.created_at, c.id))
        pod.sandboxes.sort(key=lambda s: (-s.created_at, s.id))
    return Pods(sorted(
        grouped.values(), key=lambda pod: (-pod.created_at, pod.namespace, pod.name, pod.id)
    ))


def _pod(grouped: dict[PodKey, Pod], key: PodKey) -> Pod:
    pod = grouped.get(key)
    if pod is None:
        pod = grouped[key] = Pod(id=key[0], name=key[1], namespace=key[2])
    return pod


# --- GetPodStatus -----------------------------------------------------------------------------


class PodContainerStatus(msgspec.Struct, kw_only=True):
    """One container's status in a ``PodStatus``: ``name`` is its config name."""

    id: str
    name: str = ""
    pod_sandbox_id: str = ""
    state: str = UNKNOWN
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    image: str = ""
    image_ref: str = ""
    restart_count: int = 0
    reason: str = ""
    message: str = ""


class PodSandboxStatus(msgspec.Struct, kw_only=True):
    """One sandbox's status in a ``PodStatus``."""

    id: str
    name: str = ""
    namespace: str = ""
    uid: str = ""
    attempt: int = 0
    state: str = UNKNOWN
    created_at: int = 0
    ips: list[str] = []


class PodStatus(msgspec.Struct, kw_only=True):
    """A pod's status as ``GetPodStatus`` answers: containers and sandboxes newest first;
    ``ips`` are the newest sandbox's when it is ready (else none)."""

    id: str = ""
    name: str = ""
    namespace: str = ""
    ips: list[str] = []
    container_statuses: list[PodContainerStatus] = []
    sandbox_statuses: list[PodSandboxStatus] = []

    def get_container_status(self, container_id: str) -> PodContainerStatus | None:
        return next((c for c in self.container_statuses if c.id == container_id), None)


def pod_status(store: Store, uid: str, name: str, namespace: str) -> PodStatus:
    """Every live container and sandbox of the pod with ``uid``, in any state.

    As the kubelet's, the pod is found by ``uid`` alone; ``name`` and ``namespace`` are
    given back as they came. A pod with nothing in the store has empty lists.
    """
    for what, value in (("uid", uid), ("name", name), ("namespace", namespace)):
        inputs.text(what, value)
    sandboxes = _live_sandboxes(store)
    containers = [c for c in _live_containers(store) if _container_key(c, sandboxes)[0] == uid]
    # read after listing, so the log holds the created record of every container listed
    restarts = _restart_counts(store, {c.metadata.id: (uid, c.config.name) for c in containers})
    sandbox_statuses = [
        PodSandboxStatus(
            id=s.metadata.id, name=s.config.name, namespace=s.config.namespace,
            uid=s.config.uid, attempt=s.config.attempt, state=SANDBOX_STATES[s.status.state],
            created_at=s.status.created_at, ips=list(s.metadata.ips),
        )
        for s in sandboxes.values()
        if s.config.uid == uid
    ]
    sandbox_statuses.sort(key=lambda s: (-s.created_at, s.id))
    container_statuses: list[PodContainerStatus] = []
    for container in containers:
        metadata, config, status = container.metadata, container.config, container.status
        container_statuses.append(PodContainerStatus(
            id=metadata.id, name=config.name, pod_sandbox_id=metadata.sandbox_id,
            state=CONTAINER_STATES[status.state()], created_at=status.created_at,
            started_at=status.started_at, finished_at=status.finished_at,
            exit_code=status.exit_code, image=config.image, image_ref=metadata.image_ref,
            restart_count=restarts[metadata.id], reason=status.reason, message=status.message,
        ))
    container_statuses.sort(key=lambda c: (-c.created_at, c.id))
    newest = sandbox_statuses[0] if sandbox_statuses else None
    ips = list(newest.ips) if newest is not None and newest.state == RUNNING else []
    return PodStatus(
        id=uid, name=name, namespace=namespace, ips=ips,
        container_statuses=container_statuses, sandbox_statuses=sandbox_statuses,
    )


# --- what the store holds ---------------------------------------------------------------------


class LiveSandbox(msgspec.Struct, frozen=True, gc=False):  # a NamedTuple costs 7x to define
    metadata: SandboxMetadata
    config: SandboxConfig
    status: SandboxStatus


class LiveContainer(msgspec.Struct, frozen=True, gc=False):
    metadata: ContainerMetadata
    config: ContainerConfig
    status: ContainerStatus


def _live_sandboxes(store: Store) -> dict[str, LiveSandbox]:
    """Live sandboxes with a config, by id: as the store holds them, for reading only."""
    return {
        metadata.id: LiveSandbox(metadata, metadata.config, status)
        for metadata, status in store.sandboxes._held() if metadata.config is not None
    }


def _live_containers(store: Store) -> list[LiveContainer]:
    """Live containers with a config: as the store holds them, for reading only."""
    return [
        LiveContainer(metadata, metadata.config, status)
        for metadata, status in store.containers._held() if metadata.config is not None
    ]


def _sandbox_key(config: SandboxConfig) -> PodKey:
    return (config.uid, config.name, config.namespace)


def _label_key(config: ContainerConfig) -> PodKey:
    labels = config.labels
    return (
        labels.get(POD_UID_LABEL, ""), labels.get(POD_NAME_LABEL, ""),
        labels.get(POD_NAMESPACE_LABEL, ""),
    )


def _container_key(container: LiveContainer, sandboxes: dict[str, LiveSandbox]) -> PodKey:
    """The pod of a container: its live sandbox's, else the one its labels name."""
    sandbox = sandboxes.get(container.metadata.sandbox_id)
    if sandbox is not None:
        return _sandbox_key(sandbox.config)
    return _label_key(container.config)


_RESTARTS: weakref.WeakKeyDictionary[Store, Restarts] = weakref.WeakKeyDictionary()
_RESTARTS_LOCK = threading.Lock()


def _restart_counts(store: Store, wanted: dict[str, tuple[str, str]]) -> dict[str, int]:
    """The restart count of each container id in ``wanted`` (id -> (pod uid, config name)),
    with the log read up to its end."""
    if store._closed:
        raise StoreClosedError(f"{store.path}: store is closed")
    with _RESTARTS_LOCK:
        restarts = _RESTARTS.get(store)
        if restarts is None:
            restarts = _RESTARTS[store] = Restarts(retained(store._log, []).floor)
    with restarts.lock:
        restarts.catch_up(store._log)
        return {ident: restarts.count(ident, key) for ident, key in wanted.items()}
