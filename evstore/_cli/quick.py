"""How the short reading commands (``ls``, ``pods``, ``history``) start and end quickly: an
operator types them all day, so what they wait for beside their own work matters.

Their usual forms (the arguments, and flags spelled out: ``evstore ls PATH --json``) run in
a lane without click, whose import alone costs about a fifth of such a command: ``plain``
recognizes them and ``lookups`` does their work. Any other form, ``--help`` or a mistake
included, goes to click, which parses it and words its answer; a failure in the lane is
shown by the same code as under click (``main.shown_failure``).

They begin their store's probe before the command line loads. Opening a store first walks
it in a child process (``evstore._storage.probe``), which would then run alone while this
process waits; begun here, from the raw arguments, the walk runs while click, msgspec and
the store's modules load, and the open only collects its outcome. The arguments are only
guessed at: a wrong guess costs a walk nobody waits for, since the open probes the path
click parsed and collects a begun walk only for that same path.

Run as the program (the ``evstore`` script, ``python -m evstore``), they load msgspec as it
loads where typing_extensions is not installed (``_msgspec_alone``), and they end without the
interpreter's teardown, which frees every module and object one by one and takes about as
long as reading the store: once such a command has returned, its store is closed and it
leaves no thread, exit hook or file of its own, so flushing its output is all that remains.
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

# per command: how many arguments it takes (PATH first), and each of its flags with the
# name of the parameter it sets; their options are all flags, so PATH is their first
# argument that is not one (a test checks this against their click commands)
QUICK_COMMANDS: dict[str, tuple[int, dict[str, str]]] = {
    "ls": (1, {"--json": "as_json"}),
    "pods": (1, {"--all": "show_all", "--json": "as_json"}),
    "history": (2, {"--json": "as_json"}),
}


def is_quick(args: list[str]) -> bool:
    return bool(args) and args[0] in QUICK_COMMANDS


def plain(args: list[str]) -> tuple[str, list[str], dict[str, bool]] | None:
    """``args`` as (command, arguments, flags set) when they are a short reading command in
    its usual form: exactly its arguments, none starting with a dash, and only its own flags,
    spelled out; else None, for click to parse."""
    if not is_quick(args):
        return None
    count, known = QUICK_COMMANDS[args[0]]
    arguments = [arg for arg in args[1:] if not arg.startswith("-")]
    flags = [arg for arg in args[1:] if arg.startswith("-")]
    if len(arguments) != count or not all(flag in known for flag in flags):
        return None
    return args[0], arguments, {known[flag]: True for flag in flags}


def run(args: list[str]) -> int | None:
    """Run ``args`` in the lane and return the exit code, or None when click must parse
    them."""
    call = plain(args)
    if call is None:
        return None
    name, (path, *rest), flags = call
    program = _is_program()  # a program that called the lane goes on as it was
    if program:
        # what the command allocates lives until the process ends: the cyclic collector
        # would only walk the modules and entries again (a tenth of an ls of 1,000 entries)
        gc.disable()
    start_probe(args)
    if program:
        _msgspec_alone()
    from evstore._cli import lookups
    from evstore._cli.output import escape_unencodable
    from evstore._core.errors import EvstoreError

    escape_unencodable()
    try:
        getattr(lookups, name)(Path(path), *rest, **flags)
    except (EvstoreError, OSError) as exc:
        from evstore._cli.main import shown_failure

        return shown_failure(exc)
    return 0


def _msgspec_alone() -> None:
    """Load msgspec as it loads where typing_extensions is not installed.

    msgspec uses typing_extensions only if it can, else ``typing``, which has all it takes
    from there on the Pythons evstore supports. That import, with ``inspect`` under it, took
    7 of the 16 ms that loading msgspec took (``hyperfine -N``), in a command of about 43.
    It is hidden only while msgspec loads: a later import finds it as usual.
    """
    if "msgspec" in sys.modules or "typing_extensions" in sys.modules:
        return
    sys.modules["typing_extensions"] = None  # type: ignore[assignment]  # "not installed"
    try:
        import msgspec  # noqa: F401
    finally:
        del sys.modules["typing_extensions"]


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
