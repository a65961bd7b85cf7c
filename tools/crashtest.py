#!/usr/bin/env python3
"""Crash test: run a store as a runtime would, SIGKILL it at a random moment, check the reopen.

Each trial starts a writer process on the store. Its threads each own some ids and add,
update_sync, update (alone, or followed by ``flush``) and delete them at random, printing
every operation before it starts and once it is acknowledged. The harness kills the writer
with SIGKILL after a random delay, reopens the store and checks that every acknowledged add,
update_sync, flushed update and delete is there (an operation in flight at the kill may or
may not be), that no entry loads UNKNOWN, and that ``verify`` finds the store sound. Exit
status 1 if anything was lost. On a terminal, a progress bar runs on stderr.

    python tools/crashtest.py --trials 500 --writers 8 --seed 1
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from rich.console import Console
from rich.progress import Progress, TextColumn

import evstore
from evstore import ContainerMetadata, ContainerStatus
from evstore._core.inputs import positive_int
from evstore._ops.verify import verify

IDS_PER_WRITER = 6


# -- the writer process -------------------------------------------------------------------


def writer(path: str, writers: int, seed: int) -> None:
    store = evstore.open(path, snapshot_every=8, checkpoint_every=200)
    lock = threading.Lock()

    def say(*words: object) -> None:
        line = " ".join(map(str, words)) + "\n"
        with lock:
            sys.stdout.write(line)
            sys.stdout.flush()

    def run(thread: int) -> None:
        rng = random.Random(seed * 1_000 + thread)
        ids = [f"w{thread}-{n}" for n in range(IDS_PER_WRITER)]
        while True:
            ident = rng.choice(ids)
            try:
                entry = store.containers.get(ident)
            except evstore.NotFoundError:
                say("begin add", ident)
                store.containers.add(ContainerMetadata(id=ident), ContainerStatus(created_at=1))
                say("ack add", ident)
                continue
            roll = rng.random()
            if roll < 0.08:
                say("begin del", ident)
                entry.status.delete()
                say("ack del", ident)
            elif roll < 0.4:
                entry.status.update(lambda s: msgspec.structs.replace(s, message=str(rng.random())))
            elif roll < 0.48:
                pid = entry.status.get().pid + 1
                say("begin flush", ident, pid)
                entry.status.update(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
                store.flush()
                say("ack flush", ident, pid)
            else:
                pid = entry.status.get().pid + 1
                say("begin sync", ident, pid)
                entry.status.update_sync(lambda s, pid=pid: msgspec.structs.replace(s, pid=pid))
                say("ack sync", ident, pid)

    say("ready")
    for thread in range(writers):
        threading.Thread(target=run, args=(thread,), daemon=True).start()
    time.sleep(3_600)


# -- the harness ---------------------------------------------------------------------------


@dataclass
class Expect:
    """What one id must look like after the kill."""

    live: bool = False
    pid: int = 0
    pending: tuple[str, int] | None = None  # the operation in flight, if any

    def allows(self, live: bool, pid: int) -> bool:
        if (live, pid if live else 0) == (self.live, self.pid if self.live else 0):
            return True
        if self.pending is None:
            return False
        op, value = self.pending
        return (op == "add" and live and pid == 0) or (op == "del" and not live) or (
            op in ("sync", "flush") and live and pid == value
        )


@dataclass
class Totals:
    trials: int = 0
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)


def trial(
    path: Path, writers: int, rng: random.Random, totals: Totals, expect: dict[str, Expect]
) -> dict[str, Expect]:
    """One kill and its check; returns what the store holds now, the next trial's start."""
    run_writer(path, writers, rng, totals, expect)
    found = check(path, expect, totals)
    totals.trials += 1
    return found


def run_writer(
    path: Path, writers: int, rng: random.Random, totals: Totals, expect: dict[str, Expect],
    args: tuple[str, ...] | None = None,
) -> None:
    """Start a writer (this file's by default), SIGKILL it after a random delay, read its acks."""
    command = args or (__file__, "--child", str(path), str(writers), str(rng.randrange(1 << 30)))
    proc = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    killer = threading.Timer(rng.uniform(0.05, 0.6), proc.send_signal, (signal.SIGKILL,))
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("crashtest: the writer did not start")
        killer.start()
        for line in proc.stdout:
            totals.acknowledged += read_line(line.split(), expect)
    finally:
        proc.kill()  # never leave a writer behind, whatever happened here
        proc.wait()
        killer.cancel()
        proc.stdout.close()


def read_line(words: list[str], expect: dict[str, Expect]) -> int:
    """Apply one line of the writer's output; return 1 for an acknowledgement."""
    if len(words) < 3:
        return 0  # a line cut by the kill
    stage, op, ident = words[:3]
    value = int(words[3]) if len(words) > 3 else 0
    entry = expect.setdefault(ident, Expect())
    if stage == "begin":
        entry.pending = (op, value)
        return 0
    entry.pending = None
    entry.live, entry.pid = op != "del", value
    return 1


def check(path: Path, expect: dict[str, Expect], totals: Totals) -> dict[str, Expect]:
    """Count in ``totals`` what was lost; return the entries the store holds."""
    with evstore.open(path) as store:
        for ident, reason in store.load_report.unknown.items():
            totals.lost.append(f"{ident}: loaded UNKNOWN ({reason})")
        live = {entry.id: entry.status.get().pid for entry in store.containers.list()}
    for ident, wanted in expect.items():
        if not wanted.allows(ident in live, live.get(ident, 0)):
            totals.lost.append(f"{ident}: expected {wanted}, found pid {live.get(ident)}")
    report = verify(path)
    totals.lost.extend(f"verify: {problem}" for problem in report.problems)
    return {ident: Expect(live=True, pid=pid) for ident, pid in live.items()}


@contextmanager
def progress(total: int) -> Iterator[Callable[[str], None]]:
    """A bar on stderr while trials run, only on a terminal; yields ``advance(status)``."""
    if not sys.stderr.isatty():
        yield lambda status: None
        return
    columns = (*Progress.get_default_columns(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("trials", total=total, status="")
        yield lambda status: bar.update(task, advance=1, status=status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=positive_int, default=20)
    parser.add_argument(
        "--writers", type=positive_int, default=8, help="threads in the writer process"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh-every", type=positive_int, default=25, help="trials per store")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the stores")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="crashtest-", dir=args.dir))
    totals = Totals()
    started = time.monotonic()
    try:
        with progress(args.trials) as advance:
            expect: dict[str, Expect] = {}
            for number in range(args.trials):
                if number % args.fresh_every == 0:
                    expect = {}  # a new store
                path = base / f"store-{number // args.fresh_every}"
                expect = trial(path, args.writers, rng, totals, expect)
                advance(f"acknowledged={totals.acknowledged} lost={len(totals.lost)}")
                if totals.lost:
                    break
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for problem in totals.lost[:20]:
        print("LOST", problem)
    print(
        f"crashtest: trials={totals.trials} writers={args.writers} seed={args.seed}"
        f" acknowledged={totals.acknowledged} lost={len(totals.lost)}"
        f" seconds={time.monotonic() - started:.1f}"
    )
    return 1 if totals.lost else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())
