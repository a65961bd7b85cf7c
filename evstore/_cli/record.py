"""``evstore record``: follow a CRI runtime into a store (see ``evstore._views.cri``).

A command of its own module, registered by ``evstore._cli.main``; its errors are ``EvstoreError``s,
which the command line shows as one line.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from evstore._views.cri import SyncReport


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--cri", "endpoint", required=True, metavar="ENDPOINT",
              help="The runtime's CRI socket: unix:///run/containerd/containerd.sock or a path.")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, metavar="SECONDS",
              help="Seconds between syncs when the runtime sends no container events.")
@click.option("--once", is_flag=True, help="Sync once, print what it did and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")
def record(path: Path, endpoint: str, interval: float, once: bool, as_json: bool) -> None:
    """Record every container and pod sandbox change of the CRI runtime at ENDPOINT into
    the store at PATH (created if missing).

    Without --once it follows the runtime until SIGINT or SIGTERM, printing a line for each
    sync that recorded something. A runtime that stops answering is retried (said once per
    outage on stderr); nothing is recorded as deleted meanwhile.
    """
    from evstore._views.cri import load_client

    load_client()  # without the extra: one line saying which to install
    _say_outages()
    import asyncio  # here: ``record --help`` need not load it (about 20 ms)

    asyncio.run(_record(path, endpoint, interval, once, as_json))


async def _record(path: Path, endpoint: str, interval: float, once: bool, as_json: bool) -> None:
    from evstore._store.aio import open_async
    from evstore._views.cri import Recorder

    async with open_async(path) as store:
        recorder = Recorder(store, endpoint, interval=interval,
                            on_sync=lambda report: _show(report, as_json, every=False))
        if once:
            try:
                report = await recorder.sync()
            finally:
                await recorder.aclose()
            _show(report, as_json, every=True)
            return
        await _until_signalled(recorder.run())


async def _until_signalled(follow: Coroutine[Any, Any, None]) -> None:
    """Run ``follow`` until SIGINT or SIGTERM; either ends it cleanly (exit 0)."""
    import asyncio

    task = asyncio.ensure_future(follow)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _show(report: SyncReport, as_json: bool, *, every: bool) -> None:
    """One line (or JSON object) for a sync; while following, only for one that recorded."""
    if not (every or report.recorded):
        return
    if as_json:
        import msgspec

        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
        sys.stdout.buffer.flush()
    else:
        click.echo(str(report))


def _say_outages() -> None:
    """The recorder's warnings (runtime down, back) as lines on stderr."""
    logger = logging.getLogger("evstore._views.cri")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("evstore record: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
