"""The store: one LMDB log, its committer, and the containers and sandboxes rebuilt from it."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from evstore._core import inputs
from evstore._core.errors import (
    AlreadyExistsError,
    InvalidInputError,
    ReadOnlyError,
    StoreClosedError,
)
from evstore._core.events import Entity, Event
from evstore._core.model import (
    ContainerMetadata,
    ContainerStatus,
    SandboxMetadata,
    SandboxStatus,
    Status,
)
from evstore._history import ids, replay
from evstore._storage import audit
from evstore._storage.commit import Batch, Committer
from evstore._storage.files import NEW_STORE_MODE
from evstore._storage.log import DEFAULT_MAP_SIZE, Log
from evstore._storage.probe import Walk, begin
from evstore._storage.recovery import Found, LoadReport, Recovered, last_position, load
from evstore._storage.snapshots import SnapshotPolicy, Write
from evstore._store.entries import Entries, Entry

if TYPE_CHECKING:
    from evstore._views.pods import Pods, PodStatus

TUNING_DEFAULTS: dict[str, int] = {
    "map_size": DEFAULT_MAP_SIZE,  # initial address space; grows on its own
    "snapshot_every": 64,  # events of one entry between its snapshots
    "checkpoint_every": 20_000,  # at most this many events replayed after a crash
    # events in one commit; LMDB keeps room for the pages its last commits copied, and a
    # batch over many containers copies an index page each, so bigger batches grow the file
    # (10,000 containers x 50 events: 5,455-5,463 B each at 1,024, 6,574-8,069 B at 8,192)
    "max_batch": 1_024,
    "max_pending": 65_536,  # queued events before writers wait (backpressure)
    # events whose index records wait in memory to be put together (see ``index``)
    "index_every": 1_024,
}


class _Forks:
    """How many times this process is a ``fork()`` away from where it started: checking a
    store's generation against it is cheaper than ``os.getpid()`` on every write."""

    generation = 0


def _forked() -> None:
    _forks.generation += 1


_forks = _Forks()
os.register_at_fork(after_in_child=_forked)


def refuse_public_names(owner: object, name: str, value: object) -> None:
    """``__setattr__`` of a class whose public names cannot be set (``AttributeError``): no
    assignment can swap a store's collections or path under its writer. They are set
    once, with ``set_name``."""
    if not name.startswith("_"):
        raise AttributeError(f"{type(owner).__name__}.{name} cannot be set")
    object.__setattr__(owner, name, value)


def set_name(owner: object, name: str, value: object) -> None:
    """Set one of the read-only public names (when its owner is made)."""
    object.__setattr__(owner, name, value)


class Store:
    """An open store; use ``evstore.open``. Its public names are read-only."""

    __setattr__ = refuse_public_names

    containers: Entries[ContainerStatus, ContainerMetadata]
    """The containers (containerd's container store)."""
    sandboxes: Entries[SandboxStatus, SandboxMetadata]
    """The pod sandboxes (containerd's sandbox store)."""
    path: Path
    """The store's directory."""
    readonly: bool
    """Opened with ``readonly=True``: it reads beside a writer and never writes."""

    def __init__(
        self, path: str | os.PathLike[str], *, readonly: bool = False, probe: bool = True,
        mode: int = NEW_STORE_MODE, **tuning: int,
    ):
        self._tuning = _checked_tuning(tuning)
        set_name(self, "path", inputs.path(path))
        mode = inputs.file_mode(mode)
        walk: Walk | None = None
        if probe and os.path.exists(self.path / "data.mdb"):  # unreadable: Log says so
            walk = begin(self.path)
        set_name(self, "readonly", readonly)
        self._pid = os.getpid()
        self._generation = _forks.generation
        self._closed = False
        self._eno_lock = threading.Lock()
        containers = Entries(self, Entity.CONTAINER, ContainerMetadata, ContainerStatus)
        set_name(self, "containers", containers)
        set_name(self, "sandboxes", Entries(self, Entity.SANDBOX, SandboxMetadata, SandboxStatus))
        self._names: dict[int, tuple[Entity, str]] = {}
        recovered = self._load(walk, mode)
        self._load_report = recovered.report
        self._next_eno = max(recovered.entries, default=0) + 1
        self._adopt(found for eno, found in recovered.entries.items() if eno not in self._names)
        self._committer: Committer | None = None
        if not readonly:
            self._committer = self._start_committer(recovered)

    def _load(self, walk: Walk | None, mode: int) -> Recovered:
        """Open the log and rebuild every entry while the probe's child walks the index
        (``walk``), joined before the index is read and before the writer starts. When
        anything fails, neither the walk nor the log is left open."""
        try:
            self._log = Log(
                self.path, readonly=self.readonly, map_size=self._tuning["map_size"], mode=mode
            )
        except BaseException:
            if walk is not None:
                walk.cancel()
            raise
        try:
            recovered = load(self._log, walk, self._adopt_sound)
            if walk is not None:
                walk.join()  # load has joined it: again, for its outcome, before any write
            self._log.claim_identity()
        except BaseException:
            if walk is not None:
                walk.cancel()
            self._log.close()
            raise
        return recovered

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self.readonly else "writable"
        return f"<evstore.Store {str(self.path)!r} {mode}>"

    def _collection(self, entity: Entity) -> Entries[Any, Any]:
        return self.containers if entity is Entity.CONTAINER else self.sandboxes

    def _adopt_sound(self, entries: dict[int, Found]) -> None:
        """Take in the entries whose fold is sound while the probe's walk of the index ends
        (``load``'s ``meanwhile``): the rest are taken in once the load is done."""
        self._adopt(found for found in entries.values() if found.reason is None)

    def _adopt(self, found_entries: Iterable[Found]) -> None:
        loaded: dict[Entity, list[Entry[Any, Any]]] = {entity: [] for entity in Entity}
        for found in found_entries:
            eno = found.eno
            if found.entity is None or found.metadata is None or found.status is None:
                continue  # unattributable damage: reported in load_report.unknown
            ident = found.metadata.id
            self._names[eno] = (found.entity, ident)
            entries = self._collection(found.entity)
            if found.deleted:
                entries._remember(ident, eno, found.max_seq)
                continue
            loaded[found.entity].append(Entry(
                entries, eno, found.metadata, found.status, found.max_seq,
                damaged=found.reason is not None,
            ))
        for entity, live in loaded.items():
            self._collection(entity)._adopt_loaded(live)

    def _start_committer(self, recovered: Recovered) -> Committer:
        policy = SnapshotPolicy(
            every=self._tuning["snapshot_every"],
            checkpoint_every=self._tuning["checkpoint_every"],
            snap_seq=recovered.snap_seq,
            dirty=recovered.dirty,
            checkpoint=recovered.checkpoint,
        )
        return Committer(
            self._log, policy, recovered.last_pos,
            max_batch=self._tuning["max_batch"], max_pending=self._tuning["max_pending"],
            index_every=self._tuning["index_every"], unindexed=recovered.unindexed,
        )

    # -- what entries need of their store (the ``Backend`` protocol) --

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyError(f"{self.path}: opened read-only")
        if self._closed:
            raise StoreClosedError(f"{self.path}: store is closed")
        if self._generation != _forks.generation:
            raise StoreClosedError(f"{self.path}: opened before fork(); open it again here")

    def _allocate_eno(self, entity: Entity, id: str) -> int:
        """A new entry's number; refused for an id the other kind holds, since containers
        and sandboxes share one id space in containerd (and ``history`` is by id)."""
        other = Entity.SANDBOX if entity is Entity.CONTAINER else Entity.CONTAINER
        with self._eno_lock:
            if self._collection(other)._holds(id):
                raise AlreadyExistsError(
                    f"{id}: a {other.name.lower()} has this id (or had it: its history keeps"
                    " it); containers and sandboxes share one id space"
                )
            eno = self._next_eno
            self._next_eno += 1
            self._names[eno] = (entity, id)
            return eno

    def _submit(self, write: Write | None) -> Batch:
        """Queue a write (None: a barrier) without waiting for it."""
        return self._writer.submit(write)

    def _commit(self, write: Write | None) -> None:
        """Queue a write (None: a barrier) and return once it, and all before it, is durable."""
        self._writer.commit(write)

    @property
    def _writer(self) -> Committer:
        """The committer; only a writable store has one."""
        if self._committer is None:
            raise ReadOnlyError(f"{self.path}: opened read-only")
        return self._committer

    # -- public --

    @property
    def store_id(self) -> str | None:
        """This store's identity, a random UUID made with it (None for a store made before
        identities existed that no writer has opened since): ``ship`` refuses to mix two
        stores' histories under one node by it."""
        return self._log.store_id

    @property
    def load_report(self) -> LoadReport:
        """What this open found (a copy)."""
        report = self._load_report
        return msgspec.structs.replace(report, unknown=dict(report.unknown))

    @property
    def last_position(self) -> int:
        """The position of the newest durable event."""
        if self._committer is not None:
            return self._committer.last_position
        return self._log_last_position()

    def _log_last_position(self) -> int:
        with self._log.reading() as txn:
            return last_position(txn, self._log.dbs)

    def resolve_id(self, id: str) -> str:
        """The whole id that ``id`` names among every entry the store has held, deleted
        ones included: ``id`` itself when it is one, else the one id it is a prefix of;
        ``NotFoundError`` or ``AmbiguousIDError`` otherwise."""
        self._check_open()
        return ids.in_log(self._log, self._names, id)

    def history(self, id: str) -> list[Event]:
        """Every event of ``id`` (an id or a unique prefix, see ``resolve_id``), oldest
        first, across all its incarnations."""
        return audit.history(self._log, self._names, self.resolve_id(id))

    def events(self, since: int = 0) -> Iterator[Event]:
        """The global feed: every event with ``position > since``, in order."""
        inputs.since(since)
        self._check_open()
        return audit.events(self._log, self._names, since)

    def status_at(self, id: str, seq: int | None = None, time: int | None = None) -> Status:
        """The status of ``id`` after its event ``seq``, or at wall-clock ``time`` (ns)."""
        return replay.status_at(self, id, seq=seq, time=time)

    def pods(self, all: bool = False) -> Pods:
        """Containers and sandboxes grouped into pods, as the kubelet's ``GetPods(all)``."""
        from evstore._views import pods as kubelet  # loaded on use: ls and history need none

        return kubelet.pods(self, all)

    def pod_status(self, uid: str, name: str, namespace: str) -> PodStatus:
        """The pod's containers (with restart counts from the log) and sandboxes."""
        from evstore._views import pods as kubelet

        return kubelet.pod_status(self, uid, name, namespace)

    def _check_open(self) -> None:
        """Audit reads see the log, so first let queued ``update`` events reach it."""
        if self._closed:
            raise StoreClosedError(f"{self.path}: store is closed")
        self.flush()

    @property
    def closed(self) -> bool:
        """True once ``close`` has begun: from then on writes and reads of the log raise
        ``StoreClosedError`` (memory reads such as ``status.get`` still answer)."""
        return self._closed

    def stats(self) -> dict[str, int]:
        """Commits and events written by this open (to show group commit at work)."""
        committer = self._committer
        return {
            "commits": committer.commits if committer else 0,
            "events": committer.events if committer else 0,
        }

    def flush(self) -> None:
        """Make every earlier ``update`` durable."""
        if self._committer is not None and not self._closed:
            self._committer.flush()

    def close(self) -> None:
        """Write what is queued, snapshot what the log holds beyond snapshots, release."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._committer is not None and os.getpid() == self._pid:
                self._committer.close()
        finally:
            self._log.close()


def abandon(store: Store) -> None:
    """Leave a store as a crash would (queued ``update`` events lost): for tests."""
    store._closed = True  # first: the committer's last call to its listeners must see it
    if store._committer is not None:
        store._committer.abandon()
    store._log.close()


def _checked_tuning(given: dict[str, int]) -> dict[str, int]:
    unknown = set(given) - set(TUNING_DEFAULTS)
    if unknown:
        raise InvalidInputError(f"unknown tuning options: {', '.join(sorted(unknown))}")
    tuning = {**TUNING_DEFAULTS, **given}
    for name, value in tuning.items():
        inputs.integer(name, value, least=1)
    return tuning


def open_store(
    path: str | os.PathLike[str], *, readonly: bool = False, probe: bool = True,
    mode: int = NEW_STORE_MODE, **tuning: int,
) -> Store:
    """Open (creating if missing, unless ``readonly``) and rebuild every entry.

    A store created here is private to its owner: files ``mode`` (0600), the directory
    0700; a wider ``mode`` such as 0640 lets a group read it (see ``files.Modes``). An
    existing store's files keep their modes.

    What opening reads of an existing store is first read in a child process (``probe``), so
    that a file damaged badly enough to crash its reader (LMDB dies of SIGBUS on some damage)
    raises ``CorruptStoreError`` here instead of killing this process. ``probe=False`` skips
    that (a bare interpreter's start and a walk in C) where a crash on a damaged file is
    acceptable.
    """
    return Store(path, readonly=readonly, probe=probe, mode=mode, **tuning)
