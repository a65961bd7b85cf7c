"""What recording a node costs: the recorder against a real, private containerd (as root).

    python tools/cri_cost.py [--containers 100] [--idle-syncs 50] [--interval 1.0]

Starts a private containerd (tests/cri_node.py: its own root, sockets and cgroup parent under
a temporary directory, taken down at the end) with CONTAINERS containers in pods of 20, and
measures, with the recorder in this process:

- CPU per sync (this process's, all threads) and containerd's CPU answering it, when nothing
  changed, and per change when CONTAINERS containers are created, started or stopped at once;
- the lag in polling mode: ``evstore record --interval INTERVAL`` runs as a process of its own
  while CONTAINERS containers start together and exit at random times over 20 s; each lag is
  the time an event was written minus the time the runtime reports for the change
  (``started_at``, ``finished_at``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cri_node import Node, running_node

import evstore
from evstore._views.cri import Recorder, SyncReport

POD_SIZE = 20
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """Seconds of CPU (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Meter:
    """CPU of this process and of containerd across one awaited call."""

    def __init__(self, node: Node) -> None:
        assert node.process is not None
        self.daemon = node.process.pid

    async def measure(self, call: object) -> tuple[float, float, SyncReport]:
        ours, theirs = time.process_time(), cpu_of(self.daemon)
        report = await call  # type: ignore[misc]
        return time.process_time() - ours, cpu_of(self.daemon) - theirs, report


def make_containers(node: Node, count: int, command: list[str]) -> list[str]:
    pods = [node.run_pod(f"cost-{n}") for n in range(-(-count // POD_SIZE))]
    return [node.create(pods[n // POD_SIZE], f"c{n}", command) for n in range(count)]


async def cost(node: Node, path: Path, count: int, idle_syncs: int) -> None:
    meter = Meter(node)
    async with evstore.open_async(path) as store:
        recorder = Recorder(store, node.endpoint)
        await recorder.sync()
        containers = make_containers(node, count, ["/bin/sleep", "100000"])
        rows = [("create", *await meter.measure(recorder.sync()))]
        for container in containers:
            node.start_container(container)
        rows.append(("start", *await meter.measure(recorder.sync())))
        idle = [await meter.measure(recorder.sync()) for _ in range(idle_syncs)]
        for container in containers:
            node.stop_container(container)
        rows.append(("stop", *await meter.measure(recorder.sync())))
        await recorder.aclose()
    # means: one pass in ten reads every status, and containerd's CPU counts in 10 ms ticks
    ours = statistics.fmean(m[0] for m in idle)
    theirs = statistics.fmean(m[1] for m in idle)
    print(f"{count} containers ({-(-count // POD_SIZE)} pods), {len(idle)} syncs with no change:")
    print(f"  CPU per sync: recorder {ours * 1e3:.1f} ms, containerd {theirs * 1e3:.1f} ms"
          " (means)")
    for what, mine, daemon, report in rows:
        changes = report.added + report.changed
        print(f"  {what} {count} at once: {changes} recorded; per change: recorder"
              f" {(mine - ours) / max(changes, 1) * 1e3:.2f} ms, containerd"
              f" {(daemon - theirs) / max(changes, 1) * 1e3:.2f} ms")


def lag(node: Node, path: Path, count: int, interval: float) -> None:
    rng = random.Random(17)
    pods = [node.run_pod(f"lag-{n}") for n in range(-(-count // POD_SIZE))]
    containers = [
        node.create(pods[n // POD_SIZE], f"l{n}",
                    ["/bin/sleep", f"{rng.uniform(1, 20):.3f}"])
        for n in range(count)
    ]
    recorder = subprocess.Popen(
        [sys.executable, "-m", "evstore", "record", str(path), "--cri", node.endpoint,
         "--interval", str(interval)], stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(2 * interval + 1)
        for container in containers:
            node.start_container(container)
        for container in containers:
            node.wait_exited(container, timeout=60)
        time.sleep(2 * interval + 1)
    finally:
        recorder.terminate()
        recorder.wait()
    lags = []
    with evstore.open(path, readonly=True) as store:
        for container in containers:
            status = store.containers.get(container).status.get()
            for event in store.history(container):
                for field, when in (("started_at", status.started_at),
                                    ("finished_at", status.finished_at)):
                    if field in event.changes:
                        lags.append((event.time - when) / 1e9)
    lags.sort()
    p99 = lags[min(len(lags) - 1, round(0.99 * (len(lags) - 1)))]
    print(f"lag, polling every {interval:g} s, {len(lags)} changes of {count} containers:"
          f" median {statistics.median(lags) * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms,"
          f" max {lags[-1] * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--idle-syncs", type=int, default=50)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    if args.containers < 1 or args.idle_syncs < 1 or not args.interval > 0:
        parser.error("--containers and --idle-syncs must be >= 1, --interval > 0")
    with tempfile.TemporaryDirectory(prefix="evstore-cost-") as scratch:
        with running_node() as node:
            asyncio.run(cost(node, Path(scratch) / "cost", args.containers, args.idle_syncs))
        with running_node() as node:
            lag(node, Path(scratch) / "lag", args.containers, args.interval)


if __name__ == "__main__":
    main()
