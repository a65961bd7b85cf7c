"""A FUSE filesystem that forgets, at a simulated power cut, everything not yet fsynced.

In the spirit of LazyFS: a passthrough over a backing directory in which every write,
truncate, create, mkdir, rename, link and unlink stays in this process's memory until it is
made durable; durable state is written to the backing directory at once, volatile state
never is. A power cut is: write ``cut`` to ``MOUNT/.powercut`` (the server then persists
what the mode lets survive and refuses every later call), unmount, and mount again over the
same backing directory: only what was durable is there.

What makes what durable, per mode:

``strict``  POSIX's minimum. ``fsync``/``fdatasync`` of a file makes its data and size
            durable; a name (create, mkdir, rename, link, unlink) is durable only once its
            directory is fsynced (a rename across directories needs both).
``ext4``    ext4 with its default options (data=ordered, delayed allocation, auto_da_alloc,
            no fast_commit). The journal is one ordered stream of metadata, so an fsync of
            any file or directory commits every name change and truncation made so far, in
            every directory. File data is durable only through its own fsync (delayed
            allocation), except that a rename over an existing file first writes out the
            renamed file's data, and so does the last close of a file truncated to zero
            (auto_da_alloc). The 5 s periodic commit is left out: the cut may come first.
``torn``    ``strict``, except that at the cut each unsynced page (4 KiB) of each file and
            each unsynced truncation survives with probability 1/2, independently.

The backing directory holds ``tree.json`` (every directory's durable entries) and
``data/<inode>`` (each file's durable bytes). Mounting drops the data of inodes no durable
name reaches, as fsck would. Modes, owners and times are kept but not modelled. Hard
links work; symbolic links, special files and extended attributes are refused.

Reads are served from the volatile state, and the mount uses the kernel's page cache
without direct I/O, so a shared ``mmap`` (LMDB's lock file, its read-only data map) sees
every write at once: writes reach this server synchronously, because the writeback cache
is off.
"""

from __future__ import annotations

import errno
import json
import os
import random
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mfusepy

PAGE = 4096
MODES = ("strict", "ext4", "torn")
CONTROL = "/.powercut"
_CONTROL_FH = 1 << 62
_ROOT = 1


def _fail(code: int) -> mfusepy.FuseOSError:
    return mfusepy.FuseOSError(code)


@dataclass
class Node:
    """One inode: a directory's entries, or a file's bytes (durable blob + dirty pages)."""

    ino: int
    mode: int
    entries: dict[str, int] | None = None  # directories: the names as they are now
    durable: dict[str, int] = field(default_factory=dict)  # directories: the names on disk
    size: int = 0
    durable_size: int = 0  # bytes in data/<ino>
    clip: int = 0  # durable bytes from here on read as zero (a truncation not yet synced)
    pages: dict[int, bytearray] = field(default_factory=dict)  # dirty pages by index
    nlink: int = 0
    uid: int = 0
    gid: int = 0
    mtime: int = field(default_factory=time.time_ns)
    truncated_to_zero: bool = False

    @property
    def is_dir(self) -> bool:
        return self.entries is not None


class PowerCutFS(mfusepy.Operations):
    """The filesystem; every call runs under one lock (correctness over speed)."""

    use_ns = True

    def __init__(self, backing: Path, mode: str, seed: int) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.backing = backing.resolve()  # libfuse may change the working directory
        self.mode = mode
        self.rng = random.Random(seed)
        self._mutex = threading.Lock()
        self.dead = False
        self.fds: dict[int, int] = {}
        (backing / "data").mkdir(parents=True, exist_ok=True)
        self.nodes, self.next_ino = self._load()

    # -- the durable state ------------------------------------------------------------------

    def _load(self) -> tuple[dict[int, Node], int]:
        """Read the durable tree; drop the data of inodes no durable name reaches."""
        try:
            tree = json.loads((self.backing / "tree.json").read_text())
        except FileNotFoundError:
            tree = {"next": _ROOT + 1, "nodes": {str(_ROOT): {"mode": stat.S_IFDIR | 0o755}}}
        saved = {int(ino): info for ino, info in tree["nodes"].items()}
        nodes: dict[int, Node] = {}
        todo = [_ROOT]
        while todo:
            ino = todo.pop()
            if ino in nodes:
                nodes[ino].nlink += 1
                continue
            info = saved.get(ino, {"mode": stat.S_IFREG | 0o644})
            node = Node(ino, info["mode"], nlink=1, uid=info.get("uid", 0), gid=info.get("gid", 0))
            if stat.S_ISDIR(node.mode):
                node.durable = {name: int(child) for name, child in info["entries"].items()} \
                    if "entries" in info else {}
                node.entries = dict(node.durable)
                todo.extend(node.durable.values())
            else:
                blob = self._blob(ino)
                node.size = node.durable_size = node.clip = (
                    blob.stat().st_size if blob.exists() else 0
                )
            nodes[ino] = node
        for blob in (self.backing / "data").iterdir():
            if int(blob.name) not in nodes:
                blob.unlink()
        return nodes, int(tree["next"])

    def _blob(self, ino: int) -> Path:
        return self.backing / "data" / str(ino)

    def _save_tree(self) -> None:
        """Write every directory's durable entries (atomically: the host does not crash)."""
        tree: dict[str, Any] = {"next": self.next_ino, "nodes": {}}
        for node in self.nodes.values():
            info: dict[str, Any] = {"mode": node.mode, "uid": node.uid, "gid": node.gid}
            if node.is_dir:
                info["entries"] = node.durable
            tree["nodes"][str(node.ino)] = info
        scratch = self.backing / "tree.json.tmp"
        scratch.write_text(json.dumps(tree))
        scratch.replace(self.backing / "tree.json")

    def _fd(self, node: Node) -> int:
        fd = self.fds.get(node.ino)
        if fd is None:
            fd = self.fds[node.ino] = os.open(self._blob(node.ino), os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def _persist(self, node: Node, keep: Callable[[], bool] = lambda: True) -> None:
        """Write the file's unsynced truncation and pages to its blob: those ``keep`` picks."""
        fd = self._fd(node)
        if node.clip < node.durable_size and keep():
            os.ftruncate(fd, node.clip)
            node.durable_size = node.clip
        for index in sorted(node.pages):
            if keep():
                start = index * PAGE
                os.pwrite(fd, bytes(node.pages[index][: max(0, min(PAGE, node.size - start))]),
                          start)
                node.durable_size = max(node.durable_size, min(node.size, start + PAGE))

    def _sync_file(self, node: Node) -> None:
        self._persist(node)
        os.ftruncate(self._fd(node), node.size)
        node.durable_size = node.clip = node.size
        node.pages.clear()
        node.truncated_to_zero = False

    def _commit_names(self, *dirs: Node) -> None:
        changed = [node for node in dirs if node.durable != node.entries]
        for node in changed:
            assert node.entries is not None
            node.durable = dict(node.entries)
        if changed:
            self._save_tree()

    def _journal_commit(self) -> None:
        """ext4: one fsync commits every name change and truncation made so far."""
        for node in self.nodes.values():
            if not node.is_dir and node.clip < node.durable_size:
                os.ftruncate(self._fd(node), node.clip)
                node.durable_size = node.clip
        self._commit_names(*(node for node in self.nodes.values() if node.is_dir))

    def cut(self) -> None:
        """The power fails: persist what the mode lets survive, then refuse every call."""
        if self.mode == "torn":
            for node in list(self.nodes.values()):
                if not node.is_dir and (node.pages or node.clip < node.durable_size):
                    self._persist(node, keep=lambda: self.rng.random() < 0.5)
        self.dead = True
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    # -- the volatile state -----------------------------------------------------------------

    def _lookup(self, path: str) -> Node:
        node = self.nodes[_ROOT]
        for part in path.strip("/").split("/") if path.strip("/") else []:
            if node.entries is None:
                raise _fail(errno.ENOTDIR)
            child = node.entries.get(part)
            if child is None:
                raise _fail(errno.ENOENT)
            node = self.nodes[child]
        return node

    def _parent(self, path: str) -> tuple[Node, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self._lookup(head or "/")
        if parent.entries is None:
            raise _fail(errno.ENOTDIR)
        return parent, name

    def _node(self, path: str | None, fh: int | None) -> Node:
        if fh is not None and fh in self.nodes:
            return self.nodes[fh]
        if path is None:
            raise _fail(errno.EBADF)
        return self._lookup(path)

    def _new(self, path: str, mode: int, directory: bool) -> Node:
        parent, name = self._parent(path)
        assert parent.entries is not None
        if name in parent.entries:
            raise _fail(errno.EEXIST)
        uid, gid, _pid = mfusepy.fuse_get_context()
        node = Node(self.next_ino, mode, entries={} if directory else None, nlink=1, uid=uid,
                    gid=gid)
        self.next_ino += 1
        self.nodes[node.ino] = node
        parent.entries[name] = node.ino
        parent.mtime = time.time_ns()
        return node

    def _page(self, node: Node, index: int) -> bytearray:
        """The page as it reads now, made dirty so that it can be changed."""
        page = node.pages.get(index)
        if page is None:
            page = node.pages[index] = bytearray(self._base(node, index * PAGE, PAGE))
            page.extend(bytes(PAGE - len(page)))
        return page

    def _base(self, node: Node, offset: int, size: int) -> bytes:
        """Durable bytes as they read now: zero past the blob and past an unsynced truncation."""
        end = min(offset + size, node.clip, node.durable_size)
        if end <= offset:
            return b""
        return os.pread(self._fd(node), end - offset, offset)

    def _truncate(self, node: Node, length: int) -> None:
        if length < node.size:
            for index in [i for i in node.pages if i * PAGE >= length]:
                del node.pages[index]
            if length % PAGE:
                page = self._page(node, length // PAGE)
                page[length % PAGE :] = bytes(PAGE - length % PAGE)
            node.clip = min(node.clip, length)
        node.size = length
        node.truncated_to_zero = node.truncated_to_zero or length == 0
        node.mtime = time.time_ns()

    def _unlink_name(self, parent: Node, name: str) -> None:
        assert parent.entries is not None
        node = self.nodes[parent.entries.pop(name)]
        node.nlink -= 1
        parent.mtime = time.time_ns()

    # -- FUSE calls -------------------------------------------------------------------------

    def __getattribute__(self, name: str) -> Any:
        """Every FUSE call: under the lock, and refused with EIO once the power is cut."""
        value = super().__getattribute__(name)
        if name.startswith("_") or not hasattr(mfusepy.Operations, name) or name == "destroy" \
                or getattr(value, "libfuse_ignore", False):
            return value  # not a FUSE call, or one left to the kernel's defaults
        refuse = name not in ("flush", "release", "releasedir")  # closing still works

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._mutex:
                if self.dead and refuse:
                    raise _fail(errno.EIO)
                return value(*args, **kwargs)

        return call

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == CONTROL:
            return {"st_mode": stat.S_IFREG | 0o200, "st_nlink": 1, "st_size": 0}
        node = self._node(path, fh)
        return {
            "st_mode": node.mode, "st_ino": node.ino, "st_nlink": max(node.nlink, 1),
            "st_size": node.size, "st_blocks": (node.size + 511) // 512,
            "st_uid": node.uid, "st_gid": node.gid, "st_blksize": PAGE,
            "st_atime": node.mtime, "st_mtime": node.mtime, "st_ctime": node.mtime,
        }

    def access(self, path: str, amode: int) -> int:
        self._lookup(path)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        info = os.statvfs(self.backing)
        return {key: getattr(info, key) for key in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
            "f_favail", "f_namemax")}

    def opendir(self, path: str) -> int:
        node = self._lookup(path)
        if not node.is_dir:
            raise _fail(errno.ENOTDIR)
        return node.ino

    def readdir(self, path: str, fh: int) -> Iterator[str]:
        node = self._node(path, fh)
        assert node.entries is not None
        return iter([".", "..", *node.entries])

    def releasedir(self, path: str, fh: int) -> int:
        return 0

    def fsyncdir(self, path: str, datasync: int, fh: int) -> int:
        node = self._node(path, fh)
        if self.mode == "ext4":
            self._journal_commit()
        else:
            self._commit_names(node)
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self._new(path, stat.S_IFDIR | (mode & 0o7777), directory=True)
        return 0

    def rmdir(self, path: str) -> int:
        node = self._lookup(path)
        if not node.is_dir:
            raise _fail(errno.ENOTDIR)
        if node.entries:
            raise _fail(errno.ENOTEMPTY)
        self._unlink_name(*self._parent(path))
        return 0

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        if path == CONTROL:
            return _CONTROL_FH
        return self._new(path, stat.S_IFREG | (mode & 0o7777), directory=False).ino

    def open(self, path: str, flags: int) -> int:
        if path == CONTROL:
            return _CONTROL_FH
        node = self._lookup(path)
        if flags & os.O_TRUNC:
            self._truncate(node, 0)
        return node.ino

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        node = self._node(path, fh)
        end = min(offset + size, node.size)
        out = bytearray()
        position = offset
        while position < end:
            index, start = divmod(position, PAGE)
            take = min(PAGE - start, end - position)
            page = node.pages.get(index)
            if page is not None:
                out += page[start : start + take]
            else:
                chunk = self._base(node, position, take)
                out += chunk + bytes(take - len(chunk))
            position += take
        return bytes(out)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if fh == _CONTROL_FH:
            if data.strip() == b"cut":
                self.cut()
                return len(data)
            raise _fail(errno.EINVAL)
        node = self._node(path, fh)
        position = offset
        view = memoryview(data)
        while view:
            index, start = divmod(position, PAGE)
            take = min(PAGE - start, len(view))
            self._page(node, index)[start : start + take] = view[:take]
            view = view[take:]
            position += take
        node.size = max(node.size, offset + len(data))
        node.mtime = time.time_ns()
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if path == CONTROL or fh == _CONTROL_FH:
            return 0
        node = self._node(path, fh)
        if node.is_dir:
            raise _fail(errno.EISDIR)
        self._truncate(node, length)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        node = self._node(path, fh)
        if not node.is_dir:
            self._sync_file(node)
        if self.mode == "ext4":
            self._journal_commit()
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        node = self.nodes.get(fh)
        if self.mode == "ext4" and not self.dead and node is not None and node.truncated_to_zero:
            self._sync_file(node)  # auto_da_alloc: a file truncated to zero is written on close
        return 0

    def unlink(self, path: str) -> int:
        parent, name = self._parent(path)
        if self._lookup(path).is_dir:
            raise _fail(errno.EISDIR)
        self._unlink_name(parent, name)
        return 0

    def rename(self, old: str, new: str) -> int:
        source_dir, source_name = self._parent(old)
        target_dir, target_name = self._parent(new)
        node = self._lookup(old)
        assert source_dir.entries is not None and target_dir.entries is not None
        replaced = target_dir.entries.get(target_name)
        if replaced == node.ino:
            return 0
        if replaced is not None:
            victim = self.nodes[replaced]
            if victim.is_dir != node.is_dir:
                raise _fail(errno.EISDIR if victim.is_dir else errno.ENOTDIR)
            if victim.entries:
                raise _fail(errno.ENOTEMPTY)
            if self.mode == "ext4" and not node.is_dir:
                self._sync_file(node)  # auto_da_alloc: rename over a file writes its data first
            self._unlink_name(target_dir, target_name)
        del source_dir.entries[source_name]
        target_dir.entries[target_name] = node.ino
        source_dir.mtime = target_dir.mtime = time.time_ns()
        return 0

    def link(self, target: str, source: str) -> int:
        node = self._lookup(source)
        if node.is_dir:
            raise _fail(errno.EPERM)
        parent, name = self._parent(target)
        assert parent.entries is not None
        if name in parent.entries:
            raise _fail(errno.EEXIST)
        parent.entries[name] = node.ino
        node.nlink += 1
        return 0

    def chmod(self, path: str, mode: int) -> int:
        node = self._lookup(path)
        node.mode = stat.S_IFMT(node.mode) | (mode & 0o7777)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        node = self._lookup(path)
        node.uid = node.uid if uid == -1 else uid
        node.gid = node.gid if gid == -1 else gid
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        self._lookup(path).mtime = times[1] if times else time.time_ns()
        return 0

    def destroy(self, path: str) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def serve(backing: Path, mountpoint: Path, mode: str, seed: int) -> None:
    """Mount in the foreground until unmounted (``fusermount3 -u MOUNT``)."""
    mfusepy.FUSE(PowerCutFS(backing, mode, seed), str(mountpoint), foreground=True,
                 nothreads=False, fsname="powercut", default_permissions=False)
