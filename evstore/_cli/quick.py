"""How the short reading commands (``ls``, ``pods``, ``history``) start and end quickly: an
operator types them all day, so what they wait for beside their own work matters.

They begin their store's probe before the command line loads. Opening a store first walks
it in a child process (``evstore._storage.probe``), which would then run alone while this
process waits; begun here, from the raw arguments, the walk runs while click, msgspec and
the store's modules load, and the open only collects its outcome. The arguments are only
guessed at: a wrong guess costs a walk nobody waits for, since the open probes the path
click parsed and collects a begun walk only for that same path.

Run as the program (the ``evstore`` script, ``python -m evstore``), they end without the
interpreter's teardown, which frees every module and object one by one and takes about as
long as reading the store: once such a command has returned, its store is closed and it
leaves no thread, exit hook or file of its own, so flushing its output is all that remains.
"""

from __future__ import annotations

import os
import sys

# commands whose options are all flags, so that PATH is their first argument that is not one
QUICK_COMMANDS = ("ls", "pods", "history")


def is_quick(args: list[str]) -> bool:
    return bool(args) and args[0] in QUICK_COMMANDS


def start_probe(args: list[str]) -> None:
    """Begin the probe of ``evstore ls|pods|history PATH ...``'s store, if it has one."""
    if not is_quick(args):
        return
    path = next((arg for arg in args[1:] if not arg.startswith("-")), None)
    if path is None or not os.path.isfile(os.path.join(path, "data.mdb")):
        return  # no store to walk: the command says what is wrong with PATH
    from evstore._storage import probe

    try:
        probe.start(path)
    except OSError:
        return  # the open probes as usual, and reports what fails then


def exit_now(args: list[str], code: int) -> None:
    """End the process with ``code`` after flushing its output, skipping the teardown, when
    a quick command ran as the program; else return, for the usual exit."""
    if not (is_quick(args) and _is_program()):
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        return  # a closed pipe: the usual exit says so as it always has
    os._exit(code)


def _is_program() -> bool:
    """Whether this process is ``python -m evstore`` or the ``evstore`` script, rather than
    a program that calls the command line and goes on after it."""
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "evstore.__main__":
        return True
    return os.path.basename(getattr(main, "__file__", None) or "") == "evstore"
