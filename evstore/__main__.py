"""The ``evstore`` script and ``python -m evstore``: the command line, with a Ctrl-C during
its start-up (while click and the command's modules load, before click can catch it) shown
as the same one line, ``interrupted``, and exit 130. A reading command's probe begins first
(see ``evstore._cli.prefetch``)."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from evstore._cli.prefetch import start_probe

        start_probe(sys.argv[1:])
        from evstore._cli.main import main

        main()
    except KeyboardInterrupt as exc:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from exc


if __name__ == "__main__":
    run()
