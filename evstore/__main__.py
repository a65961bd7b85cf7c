"""The ``evstore`` script and ``python -m evstore``: the command line, with a Ctrl-C during
its start-up (while click and the command's modules load, before click can catch it) shown
as the same one line, ``interrupted``, and exit 130."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from evstore._cli.main import main

        main()
    except KeyboardInterrupt as exc:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from exc


if __name__ == "__main__":
    run()
