"""Bringing containerd's per-file checkpoints into a store.

containerd's CRI plugin keeps one directory per container under its root
(``/var/lib/containerd/io.containerd.grpc.v1.cri/containers``), holding ``status``: the JSON
that ``Status.encode()`` writes, ``{"Version":"v1","Pid":..,"CreatedAt":..,...}``, with Go
field names, Unix-nanosecond times, Go's ``\\u003c``-style escapes and ``Resources`` in the
CRI's protobuf JSON names (the names evstore's ``ContainerResources`` already uses).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from evstore._core import inputs
from evstore._core.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from evstore._core.model import ContainerMetadata, ContainerStatus
from evstore._views import containerd
from evstore._views.containerd import StatusError, decode_status

if TYPE_CHECKING:
    from evstore._store.store import Store

Progress = Callable[[int, int], None]
"""Called with (containers done, containers found) as the import goes."""

WORKERS = 16  # concurrent adds share commits (group commit), so an import is not an fsync each
class ImportReport(msgspec.Struct):
    """What an import did. ``unknown`` (id -> reason) lists the imported containers whose
    status file could not be read; they are in ``imported`` too."""

    imported: list[str] = []
    skipped: list[str] = []
    unknown: dict[str, str] = {}


def read_status(directory: Path) -> ContainerStatus:
    """The status in ``directory/status``; ``StatusError`` saying why when there is none."""
    try:
        data = (directory / "status").read_bytes()
    except FileNotFoundError as exc:
        raise StatusError("no status file") from exc
    except OSError as exc:
        raise StatusError(f"cannot read status file: {exc.strerror or exc}") from exc
    return decode_status(data)


def unknown_status(reason: str) -> ContainerStatus:
    """containerd's unknown status, with why as its message.

    containerd's loader keeps nothing of a status it cannot decode: every time is zero,
    the exit code 255 and the reason "Unknown", flagged ``Unknown``. The flag is transient
    in evstore, but with no ``created_at`` the state derives as UNKNOWN from the durable
    fields alone, so the entry reads UNKNOWN after every reopen too (and, as in containerd,
    may only move on to EXITED).
    """
    return containerd.unknown_status(f"containerd status not loaded: {reason}")


def container_dirs(root: Path) -> list[Path]:
    """The container directories under ``root``, by name; other files are not containers.

    ``root`` is the CRI plugin's root (holding ``containers/``) or that ``containers/``
    directory. Anything else (an empty directory, ``/``, the wrong level) is refused, so
    that no bogus container enters a history that keeps it forever: at least one
    directory must hold a status that containerd wrote.
    """
    if not root.exists():
        raise NotFoundError(f"{root}: no such directory")
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a directory")
    where = root / "containers" if (root / "containers").is_dir() else root
    try:
        dirs = sorted(entry for entry in where.iterdir() if entry.is_dir())
    except OSError as exc:
        raise InvalidInputError(f"{root}: cannot list: {exc.strerror or exc}") from exc
    if not any(_has_status(d) for d in dirs):
        raise InvalidInputError(
            f"{root}: no containerd container status in it; give the CRI plugin's root"
            " (/var/lib/containerd/io.containerd.grpc.v1.cri) or its containers/ directory"
        )
    return dirs


def _has_status(directory: Path) -> bool:
    """Whether ``directory/status`` is a status containerd wrote (a readable v1 one)."""
    try:
        read_status(directory)
    except (StatusError, OSError):
        return False
    return True


def known_ids(store: Store) -> set[str]:
    """Every container id the store has had, live or deleted (so a rerun adds none again)."""
    ids = {entry.id for entry in store.containers.list()}
    ids.update(event.id for event in store.events() if event.entity == "container")
    return ids


def import_containerd(
    root: str | os.PathLike[str], store: Store, progress: Progress | None = None
) -> ImportReport:
    """Add every container under ``root`` to ``store`` (writable), as containerd's CRI
    ``loadContainer`` would load it.

    ``root`` is the CRI plugin's root or its ``containers/`` (see ``container_dirs``). Each
    ``<id>/status`` there becomes a container with ``ContainerMetadata(id=<id>)`` and its
    status. A status that is missing, is not JSON, has a version other than "v1" or fields
    of the wrong type is imported as containerd's unknown status (see ``unknown_status``),
    and the reason is in ``report.unknown``. Ids the store has had before (live or deleted)
    are left alone and listed in ``report.skipped``, so rerunning imports nothing twice.
    Field names are matched exactly (Go's decoder would also take other letter cases;
    containerd writes only these).
    """
    # refuses what is not a CRI root: nothing written
    dirs = container_dirs(inputs.path(root, "root"))
    known = known_ids(store)
    report = ImportReport()
    report.skipped = [d.name for d in dirs if d.name in known]
    todo = [d for d in dirs if d.name not in known]
    counter = _Counter(len(dirs), len(report.skipped), progress)
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="evstore-import") as pool:
        outcomes = list(pool.map(lambda d: counter.done(_import_one(store, d)), todo))
    for outcome in outcomes:
        _record(report, outcome)
    report.imported.sort()
    report.skipped.sort()
    return report


class _Outcome(NamedTuple):
    id: str
    added: bool  # False: some other writer added this id meanwhile
    reason: str | None = None  # why it was added as UNKNOWN


def _import_one(store: Store, directory: Path) -> _Outcome:
    ident = directory.name
    try:
        status, reason = read_status(directory), None
    except StatusError as exc:
        status, reason = unknown_status(str(exc)), str(exc)
    try:
        store.containers.add(ContainerMetadata(id=ident), status)
    except AlreadyExistsError:
        return _Outcome(ident, added=False)
    return _Outcome(ident, added=True, reason=reason)


def _record(report: ImportReport, outcome: _Outcome) -> None:
    if not outcome.added:
        report.skipped.append(outcome.id)
        return
    report.imported.append(outcome.id)
    if outcome.reason is not None:
        report.unknown[outcome.id] = outcome.reason


class _Counter:
    """Progress across the worker threads."""

    def __init__(self, total: int, done: int, progress: Progress | None) -> None:
        self._total, self._done, self._progress = total, done, progress
        self._lock = threading.Lock()
        self._report(done)

    def done(self, outcome: _Outcome) -> _Outcome:
        with self._lock:
            self._done += 1
            done = self._done
        self._report(done)
        return outcome

    def _report(self, done: int) -> None:
        if self._progress is not None:
            self._progress(done, self._total)
