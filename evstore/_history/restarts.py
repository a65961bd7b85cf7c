"""Restart counting, the kubelet's ``restart_count`` taken from the log: a container's count is
the number of containers with the same config name in the same pod (same pod uid) created
before it, deleted ones included. Retention keeps the counting at its floor as a seed
(``RestartSeedV1``), so compaction and the kubelet view share this one fold of ``created`` and
``deleted`` records."""

from __future__ import annotations

import threading

from evstore._core.codec import FloorV1, RestartSeedV1
from evstore._core.events import Entity, Kind
from evstore._core.model import ContainerMetadata, SandboxMetadata
from evstore._storage import audit
from evstore._storage.log import Log
from evstore._storage.retention import NO_FLOOR

POD_UID_LABEL = "io.kubernetes.pod.uid"


class Restarts:
    """Restart counts of live containers, brought up to date from the log on each use.

    Counting starts from the seed that retention kept at its floor (``retention``), so
    containers whose ``created`` records were dropped still count.
    """

    def __init__(self, floor: FloorV1 = NO_FLOOR) -> None:
        seed = floor.restarts
        self.lock = threading.Lock()
        self.position = floor.position  # the last record read
        # entry number -> live incarnation
        self.live = {eno: (Entity(entity), ident) for eno, entity, ident in seed.live}
        self.sandbox_uids = dict(seed.sandbox_uids)  # live sandbox id (with a config) -> uid
        # (pod uid, name) -> containers created
        self.created = {(uid, name): n for uid, name, n in seed.created}
        self.counts = dict(seed.counts)  # live container id -> containers before it

    def seed(self) -> RestartSeedV1:
        return RestartSeedV1(
            live=[(eno, int(entity), ident) for eno, (entity, ident) in self.live.items()],
            sandbox_uids=dict(self.sandbox_uids),
            created=[(uid, name, n) for (uid, name), n in self.created.items()],
            counts=dict(self.counts),
        )

    def catch_up(self, log: Log, upto: int | None = None) -> None:
        for position, eno, record in audit.records(log, self.position):
            if upto is not None and position > upto:
                return
            self.position = position
            if record.kind == Kind.CREATED and record.metadata is not None:
                self._created(eno, record.metadata)
            elif record.kind == Kind.DELETED:
                self._deleted(eno)

    def _created(self, eno: int, metadata: ContainerMetadata | SandboxMetadata) -> None:
        if isinstance(metadata, SandboxMetadata):
            self.live[eno] = (Entity.SANDBOX, metadata.id)
            if metadata.config is not None:
                self.sandbox_uids[metadata.id] = metadata.config.uid
            return
        self.live[eno] = (Entity.CONTAINER, metadata.id)
        if metadata.config is None:
            return  # not the kubelet's: in no pod
        uid = self.sandbox_uids.get(metadata.sandbox_id)
        if uid is None:
            uid = metadata.config.labels.get(POD_UID_LABEL, "")
        key = (uid, metadata.config.name)
        self.counts[metadata.id] = self.created.get(key, 0)
        self.created[key] = self.counts[metadata.id] + 1

    def _deleted(self, eno: int) -> None:
        entity, ident = self.live.pop(eno, (None, ""))
        if entity is Entity.CONTAINER:
            self.counts.pop(ident, None)
        elif entity is Entity.SANDBOX:
            self.sandbox_uids.pop(ident, None)

    def count(self, container_id: str, key: tuple[str, str]) -> int:
        """``container_id``'s restart count; one whose created record cannot be read
        counts as the newest of its kind."""
        found = self.counts.get(container_id)
        return found if found is not None else self.created.get(key, 0)


def restart_seed(log: Log, floor: FloorV1, upto: int) -> RestartSeedV1:
    """The restart counting at position ``upto``, for a new retention floor there."""
    restarts = Restarts(floor)
    restarts.catch_up(log, upto)
    return restarts.seed()
