"""containerd's CRI status checkpoint, re-done in Python as the baseline to measure against.

containerd (``internal/cri/store/container/status.go``) keeps one directory per container and,
on every ``UpdateSync``, encodes the whole status as versioned JSON and writes it with
``continuity.AtomicWriteFile``: a temp file in the same directory, ``f.Sync()``, close, then
``os.Rename`` over ``status``. It holds the status' own mutex across the write. This module
does the same, with the same JSON shape (Go field names, ``Version`` first; the transient
``Starting``/``Removing``/``Unknown`` flags are ``json:"-"`` and never written).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from evstore import ContainerStatus
from evstore._views.containerd import decode_status, encode_status, unknown_status

STATUS_FILE = "status"


def atomic_write_file(path: Path, data: bytes) -> None:
    """``continuity.AtomicWriteFile``: temp file in the same dir, fsync, rename over ``path``.

    Like containerd, the directory is NOT fsync'd after the rename, so a crash right after
    it may leave the old ``status`` (or, for a new container, none at all).
    """
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)  # mode 0600
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _Slot:
    """containerd's ``statusStorage``: the path, the in-memory status and its mutex."""

    __slots__ = ("lock", "path", "status")

    def __init__(self, path: Path, status: ContainerStatus) -> None:
        self.lock = threading.Lock()
        self.path = path
        self.status = status


class FileCheckpoint:
    """Container statuses checkpointed as ``<root>/<id>/status`` JSON files."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.unknown: dict[str, str] = {}  # id -> why its file could not be loaded
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()

    def add(self, cid: str, status: ContainerStatus) -> None:
        """``StoreStatus``: create the container's directory and write its first status."""
        directory = self.root / cid
        directory.mkdir(exist_ok=True)
        path = directory / STATUS_FILE
        atomic_write_file(path, encode_status(status))
        with self._slots_lock:
            self._slots[cid] = _Slot(path, status)

    def get(self, cid: str) -> ContainerStatus:
        return self._slots[cid].status

    def update_sync(
        self, cid: str, fn: Callable[[ContainerStatus], ContainerStatus]
    ) -> ContainerStatus:
        """``UpdateSync``: apply ``fn`` and rewrite the whole file under the container's lock."""
        slot = self._slots[cid]
        with slot.lock:
            new = fn(slot.status)
            atomic_write_file(slot.path, encode_status(new))
            slot.status = new
            return new

    def load(self) -> dict[str, ContainerStatus]:
        """Read every ``<root>/<id>/status`` back, as containerd's recover does on restart.

        A file that is missing, undecodable or of another version loads as containerd's
        unknown status, with the reason kept in ``self.unknown``.
        """
        statuses: dict[str, ContainerStatus] = {}
        self.unknown = {}
        with os.scandir(self.root) as it:
            for dirent in it:
                if dirent.is_dir(follow_symlinks=False):
                    statuses[dirent.name] = self._load_one(dirent.name, Path(dirent.path))
        with self._slots_lock:
            self._slots = {
                cid: _Slot(self.root / cid / STATUS_FILE, s) for cid, s in statuses.items()
            }
        return statuses

    def _load_one(self, cid: str, directory: Path) -> ContainerStatus:
        try:
            return decode_status((directory / STATUS_FILE).read_bytes())
        except (OSError, ValueError) as exc:  # msgspec.DecodeError is a ValueError
            self.unknown[cid] = f"{type(exc).__name__}: {exc}"
            return unknown_status()


def write_status_file(root: Path, cid: str, status: ContainerStatus) -> None:
    """Write ``<root>/<cid>/status`` directly, without fsync (to build a large baseline fast)."""
    directory = root / cid
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATUS_FILE).write_bytes(encode_status(status))
