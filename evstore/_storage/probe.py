"""Reading a store in a child process first, so damage that would crash a reader kills
only the child.

LMDB 0.9 trusts the sizes and page numbers in its file; bytes overwritten in the wrong
place can make a read run past the end of the mapping, and the kernel answers with
SIGBUS, which no Python code can catch. Before a process maps a store, ``probe`` has a
fresh interpreter read, record by record, what that process is about to read (every
branch, leaf and overflow page on the way), and turns the child's death into a
``CorruptStoreError``.

The child imports only ``lmdb``, without ``site`` (``python -I -S``) and without evstore:
it starts in a few tens of milliseconds and its walk runs in C, so a probe costs far less
than the second load of the store it replaces. It is a fresh interpreter, never a
``fork()`` of the caller: an LMDB environment must not be shared across a fork. An open
is probed for what opening reads; later reads of older pages (an entry's history) and
the free list, which only a writer reads, are not walked then, but ``verify``
walks every record first. Pages a writer adds later come from a sound process.

The walk comes in parts, so that opening need not wait for all of it: the child says when
it has walked what opening reads first (the meta and snapshot databases), walks the log's
tail while the caller reads those, says so, and walks the index, opening's last read,
while the caller folds the tail. The caller maps none of the file before the first word,
reads the log only after the second, and joins the walk before it reads the index or
starts its writer (``Walk``).
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path
from typing import Literal

import lmdb

from evstore._core.errors import CorruptStoreError
from evstore._storage.files import DB_NAMES, NEW_STORE_MODE, Modes, check_path

# argv: lmdb's directory, the store's path, the scope, the database names. Says "opening"
# once it has walked what opening reads first (the meta and snapshot databases), "walked"
# once it has walked all that opening reads but the index (the log's tail too), then prints
# the number of records of each database (-1: missing)
_WALK = """
import os, sys
sys.path.insert(0, sys.argv[1])
import lmdb
path, scope, names = sys.argv[2], sys.argv[3], sys.argv[4:]

def position(raw):
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 8 else 0

def walk(txn, db, start=None):
    cursor = txn.cursor(db=db)
    if start is None or cursor.set_range(start):
        all(cursor.iternext())  # reads every (key, value) pair, a tuple never false, in C
    if cursor.last():  # opening reads the newest record, even when nothing is after start
        cursor.item()

try:
    env = lmdb.open(path, readonly=True, create=False, max_dbs=len(names), map_size=1 << 20)
except lmdb.Error:
    sys.exit(3)
try:
    counts, dbs = [], {}
    with env.begin() as txn:
        walk(txn, None)
        for name in names:
            try:
                dbs[name] = env.open_db(name.encode(), txn=txn, create=False)
            except lmdb.NotFoundError:
                counts.append(-1)
                continue
            counts.append(txn.stat(dbs[name])["entries"])
        meta, start = dbs.get("meta"), None
        if scope == "load" and meta is not None:
            start = min(position(txn.get(key, db=meta)) for key in (b"checkpoint", b"indexed"))
            start = min(start + 1, 2**64 - 1).to_bytes(8, "big")
        first = [name for name in ("meta", "snapshots") if name in dbs]
        for name in first:
            walk(txn, dbs[name])
        print("opening", flush=True)  # the caller may open the store and read those now
        for name, db in dbs.items():
            if name != "index" and name not in first:
                walk(txn, db, start if name == "events" else None)
        print("walked", flush=True)  # and the log's tail
        if "index" in dbs:  # opening seeks every entry's first index record, last
            walk(txn, dbs["index"])
except lmdb.Error as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
print(*counts, flush=True)
os._exit(0)  # nothing left to do: tearing the interpreter down would only cost time
"""
_LMDB_HOME = os.path.dirname(os.path.dirname(os.path.abspath(lmdb.__file__)))
_CANNOT_OPEN = 3  # LMDB refused the environment: the caller's own open says why, typed
_OPENING, _WALKED = b"opening", b"walked"  # the child's words, in the order it says them


class _Child:
    """The walk's interpreter, started with ``os.posix_spawn`` (``subprocess`` would load a
    few milliseconds of modules that a reading command needs for nothing else): stdin from
    /dev/null, stdout and stderr to unbuffered pipes, signals as a fresh program has them.
    Only descriptors marked inheritable, none by Python's default, are passed on."""

    def __init__(self, argv: list[str]) -> None:
        out, out_end = os.pipe()
        err, err_end = os.pipe()
        try:
            self.pid = os.posix_spawn(
                argv[0], argv, os.environ, setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                              (os.POSIX_SPAWN_DUP2, out_end, 1),
                              (os.POSIX_SPAWN_DUP2, err_end, 2)],
            )
        except BaseException:
            os.close(out)
            os.close(err)
            raise
        finally:
            os.close(out_end)
            os.close(err_end)
        # unbuffered: a line read takes no byte beyond it
        self.stdout, self._stderr = io.FileIO(out), io.FileIO(err)
        self._output = (b"", b"")
        self.returncode: int | None = None  # as subprocess gives it: -N when killed by N

    def communicate(self) -> tuple[bytes, bytes]:
        """Its output to the end (a failure's few lines on stderr never fill the pipe while
        stdout is read), then its exit; again after a Ctrl-C cut a call short."""
        if not self.stdout.closed:
            self._output = self.stdout.readall(), self._stderr.readall()
            self.stdout.close()
            self._stderr.close()
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self._output

    def kill(self) -> None:
        if self.returncode is None:  # once reaped, its pid may be another process's
            os.kill(self.pid, signal.SIGKILL)


class Walk:
    """A probe's child at work on one store: ``opening`` waits for what opening reads
    first, ``walked`` for all but the index, ``join`` for the whole walk and its outcome,
    ``cancel`` stops it."""

    def __init__(self, store: Path, scope: str) -> None:
        names = [name.decode() for name in DB_NAMES]
        self._store = store
        self._child = _Child(
            [sys.executable, "-I", "-S", "-c", _WALK, _LMDB_HOME, str(store), scope, *names]
        )
        self._ended: tuple[bytes, bytes] | None = None  # its output, once it has ended
        self._heard: list[bytes] = []  # the words it has said so far

    def opening(self) -> None:
        """Return once the child has walked the meta and snapshot databases, which opening
        maps and reads first; raise what ``join`` raises when it ended first."""
        self._hear(_OPENING)

    def walked(self) -> None:
        """Return once the child has walked all that opening reads but the index (the
        log's tail too); raise what ``join`` raises when it ended first."""
        self._hear(_WALKED)

    def _hear(self, word: bytes) -> None:
        assert self._child.stdout is not None
        while word not in self._heard:
            try:
                line = b"" if self._ended is not None else self._child.stdout.readline()
            except BaseException:  # Ctrl-C while waiting: the walk is not left running
                self.cancel()
                raise
            if line.rstrip() not in (_OPENING, _WALKED):  # it ended: its exit says why
                self.join()
                self._heard = [_OPENING, _WALKED]
                return
            self._heard.append(line.rstrip())

    def join(self) -> dict[bytes, int] | None:
        """Wait for the whole walk: what ``probe`` returns or raises (again on each call)."""
        child = self._child
        if self._ended is None:
            try:
                self._ended = child.communicate()
            except BaseException:  # Ctrl-C while waiting: the walk is not left running
                self.cancel()
                raise
        out, err = self._ended
        code = child.returncode
        assert code is not None  # reaped by communicate
        if code == -signal.SIGINT:  # Ctrl-C reached the child too: not damage
            raise KeyboardInterrupt
        if code < 0:
            name = signal.Signals(-code).name
            raise CorruptStoreError(
                f"{self._store}: store file is damaged (it killed a reader: {name})"
            )
        if code == _CANNOT_OPEN:
            return None
        if code != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            reason = lines[-1] if lines else f"exit status {code}"
            raise CorruptStoreError(
                f"{self._store}: store file is damaged or unreadable ({reason})"
            )
        counts = map(int, (word for word in out.split() if word not in (_OPENING, _WALKED)))
        return {name: count for name, count in zip(DB_NAMES, counts, strict=True) if count >= 0}

    def cancel(self) -> None:
        """Stop the walk: its caller will not read the store."""
        if self._ended is None:
            self._child.kill()
            self._ended = self._child.communicate()


# walks begun by ``start``, by (absolute path, scope), each for the next ``begin`` of them
_started: dict[tuple[str, str], Walk] = {}


def start(path: str | os.PathLike[str], scope: Literal["load", "all"] = "load") -> Walk:
    """Begin the walk that this process's next ``begin`` (or ``probe``) of ``path`` and
    ``scope`` collects, so that it runs while this process does other work (a command line
    importing its modules). Nothing is mapped or decided here: ``begin`` still checks the
    path and reads the walk's word before the caller maps the file."""
    key = (os.path.abspath(path), scope)
    if key not in _started:
        _started[key] = Walk(Path(path), scope)
    return _started[key]


def begin(path: str | os.PathLike[str], scope: Literal["load", "all"] = "load") -> Walk:
    """``probe``, returning once the child has walked what opening reads first (``Walk``):
    the caller may open the store and read that meanwhile, waits for ``walked`` before it
    reads the log, and ``join``s the walk before it reads the index or writes. Raises what
    ``probe`` raises when the walk so far found damage."""
    store = Path(path)
    check_path(store, readonly=True, modes=Modes(NEW_STORE_MODE))  # reads: modes unused
    walk = _started.pop((os.path.abspath(store), scope), None) or Walk(store, scope)
    walk.opening()
    return walk


def probe(
    path: str | os.PathLike[str], scope: Literal["load", "all"] = "load"
) -> dict[bytes, int] | None:
    """Walk the store at ``path`` in a child; return each database's record count, or None
    when LMDB would not open it at all (the caller's own open then raises the typed error).

    ``scope`` "load" reads what opening a store reads (its meta and snapshot databases,
    the log after the checkpoint or the index mark, whichever is older: a cost that grows
    with the entries and ``checkpoint_every``, not with the history, and the index); "all"
    reads every record of every database, as ``verify`` does.

    Raises ``CorruptStoreError`` when the walk killed the child or LMDB found a page it
    cannot read, and what ``Log`` raises for a path that is no store (checked first, with
    plain reads, as is a data file shorter than its header says).
    """
    return begin(path, scope).join()
