"""Reading a store in a child process first, so damage that would crash a reader kills only it.

LMDB 0.9 trusts the sizes and page numbers in its file; bytes overwritten in the wrong
place can make a read run past the end of the mapping, and the kernel answers with
SIGBUS, which no Python code can catch. A probe reads what the caller is about to read
in a throwaway process and turns such a death into a ``CorruptStoreError``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import CorruptStoreError, EvstoreError

_CHILD = "import sys; from {module} import child_main; child_main(sys.argv[1:])"
Lines = Callable[[str], None]


def run_probe(
    path: str | os.PathLike[str], task: str, on_line: Lines | None = None,
    module: str = __name__,
) -> str:
    """Run ``task`` on ``path`` in a child (``module``'s ``child_main``: "load" here, and
    "verify" in ``verify``, which imports this module); return its last output line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD.format(module=module), task, os.fspath(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, sys.path))},
    )
    assert proc.stdout is not None and proc.stderr is not None
    last = ""
    for line in proc.stdout:
        last = line.rstrip("\n")
        if on_line is not None:
            on_line(last)
    error = proc.stderr.read().strip()
    proc.stdout.close()
    proc.stderr.close()
    code = proc.wait()
    if code == -signal.SIGINT:  # Ctrl-C reached the child too: not damage
        raise KeyboardInterrupt
    if code < 0:
        name = signal.Signals(-code).name
        raise CorruptStoreError(f"{path}: store file is damaged (it killed a reader: {name})")
    if code != 0:
        raise _rebuild(path, error)
    return last


def _rebuild(path: str | os.PathLike[str], stderr: str) -> EvstoreError:
    """The child's error, as the same type when it was one of ours."""
    import evstore.errors as errors

    last = stderr.splitlines()[-1] if stderr else "no output"
    name, _, message = last.partition(": ")
    kind = getattr(errors, name, None)
    if isinstance(kind, type) and issubclass(kind, EvstoreError):
        return kind(message)
    return CorruptStoreError(f"{path}: store file is damaged or unreadable ({last})")


def child_main(args: list[str]) -> None:
    """In the child: load the store; print "ok"."""
    _task, path = args
    with reporting_errors():
        from .log import Log
        from .recovery import load

        log = Log(Path(path), readonly=True, map_size=1 << 20)
        try:
            load(log)
        finally:
            log.close()
        print("ok")


@contextmanager
def reporting_errors() -> Iterator[None]:
    """In a child: an ``EvstoreError`` as ``Type: message`` on stderr and exit 1, which
    ``run_probe`` raises again in the parent as the same type."""
    try:
        yield
    except EvstoreError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
