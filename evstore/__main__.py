"""The ``evstore`` script and ``python -m evstore``: the command line, with a Ctrl-C during
its start-up (while click and the command's modules load, before click can catch it) shown
as the same one line, ``interrupted``, and exit 130. The short reading commands start and
end quickly (see ``evstore._cli.quick``)."""

from __future__ import annotations

import sys


def run() -> None:
    args = sys.argv[1:]
    try:
        from evstore._cli import quick

        code = quick.run(args)
        if code is not None:
            raise SystemExit(code)
        quick.start_probe(args)
        from evstore._cli.main import main

        main(args)
    except KeyboardInterrupt as exc:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from exc
    except SystemExit as done:
        if isinstance(done.code, int):
            quick.exit_now(args, done.code)
        raise


if __name__ == "__main__":
    run()
