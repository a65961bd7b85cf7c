"""A reading command's probe, begun before the command line loads.

Opening a store first walks it in a child process (``evstore._storage.probe``), which then
runs alone while this process waits. Begun here, from the raw arguments, the walk runs
while click, msgspec and the store's modules load, and the open only collects its outcome.
The arguments are only guessed at: a wrong guess costs a walk nobody waits for, since the
open probes the path click parsed, and collects a begun walk only for that same path.
"""

from __future__ import annotations

import os

# commands whose options are all flags, so that PATH is their first argument that is not one
FLAGS_ONLY = ("ls", "pods", "history")


def start_probe(args: list[str]) -> None:
    """Begin the probe of ``evstore ls|pods|history PATH ...``'s store, if it has one."""
    if not args or args[0] not in FLAGS_ONLY:
        return
    path = next((arg for arg in args[1:] if not arg.startswith("-")), None)
    if path is None or not os.path.isfile(os.path.join(path, "data.mdb")):
        return  # no store to walk: the command says what is wrong with PATH
    from evstore._storage import probe

    try:
        probe.start(path)
    except OSError:
        return  # the open probes as usual, and reports what fails then
