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
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

import lmdb

from evstore._core.errors import CorruptStoreError
from evstore._storage.files import DB_NAMES, NEW_STORE_MODE, Modes, check_path

# argv: lmdb's directory, the store's path, the scope, the database names; prints the
# number of records of each database (-1: missing)
_WALK = """
import sys
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
        for name, db in dbs.items():  # opening seeks every entry's first index record
            walk(txn, db, start if name == "events" else None)
except lmdb.Error as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
print(*counts)
"""
_LMDB_HOME = os.path.dirname(os.path.dirname(os.path.abspath(lmdb.__file__)))
_CANNOT_OPEN = 3  # LMDB refused the environment: the caller's own open says why, typed


# walks begun by ``start``, by (absolute path, scope), each for the next ``probe`` of them
_started: dict[tuple[str, str], subprocess.Popen[str]] = {}


def start(path: str | os.PathLike[str], scope: Literal["load", "all"] = "load") -> None:
    """Begin the walk that the next ``probe(path, scope)`` of this process will wait for,
    so that it runs while this process does other work (a command line importing its
    modules). Nothing is mapped or decided here: ``probe`` still checks the path and reads
    the walk's outcome before the caller maps the file."""
    key = (os.path.abspath(path), scope)
    if key not in _started:
        _started[key] = _walker(Path(path), scope)


def _walker(store: Path, scope: str) -> subprocess.Popen[str]:
    names = [name.decode() for name in DB_NAMES]
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WALK, _LMDB_HOME, str(store), scope, *names],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def probe(
    path: str | os.PathLike[str], scope: Literal["load", "all"] = "load"
) -> dict[bytes, int] | None:
    """Walk the store at ``path`` in a child; return each database's record count, or None
    when LMDB would not open it at all (the caller's own open then raises the typed error).

    ``scope`` "load" reads what opening a store reads (its meta and snapshot databases,
    and the log after the checkpoint or the index mark, whichever is older: a cost that
    grows with the entries and ``checkpoint_every``, not with the history); "all" reads
    every record of every database, as ``verify`` does.

    Raises ``CorruptStoreError`` when the walk killed the child or LMDB found a page it
    cannot read, and what ``Log`` raises for a path that is no store (checked first, with
    plain reads, as is a data file shorter than its header says).
    """
    store = Path(path)
    check_path(store, readonly=True, modes=Modes(NEW_STORE_MODE))  # reads: modes unused
    child = _started.pop((os.path.abspath(store), scope), None) or _walker(store, scope)
    with child:
        try:
            stdout, stderr = child.communicate()
        except BaseException:  # Ctrl-C while waiting: the walk is not left running
            child.kill()
            raise
    done = subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)
    if done.returncode == -signal.SIGINT:  # Ctrl-C reached the child too: not damage
        raise KeyboardInterrupt
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise CorruptStoreError(f"{store}: store file is damaged (it killed a reader: {name})")
    if done.returncode == _CANNOT_OPEN:
        return None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise CorruptStoreError(f"{store}: store file is damaged or unreadable ({reason})")
    counts = map(int, done.stdout.split())
    return {name: count for name, count in zip(DB_NAMES, counts, strict=True) if count >= 0}
