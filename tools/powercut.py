#!/usr/bin/env python3
"""Power-cut test: a store on a FUSE mount that forgets everything not fsynced when cut.

``kill -9`` leaves the kernel's page cache intact, so it cannot show a missing fsync. Here the
store lives on a mount of ``powercut_fs`` (beside this file), which keeps every unsynced
write, truncation and name change in memory. Each trial mounts it over a backing directory,
runs ``crashtest.py``'s writer process on a store created on the mount (threads add,
update_sync, update, update + flush and delete, printing every acknowledgement to a pipe
outside the mount), SIGKILLs it at a random moment, then cuts the power: the filesystem
drops what the mode says a power cut loses, and is unmounted. The next mount, clean from the
backing directory, reopens the store and checks every acknowledged operation, that no entry
loads UNKNOWN and that ``evstore verify`` finds the store sound.

Modes (see ``powercut_fs.py``): ``strict`` (names durable only by a directory fsync), ``ext4``
(an fsync commits every name change, auto_da_alloc) and ``torn`` (strict, and half of the
unsynced pages survive). As a control, the same cut is applied to containerd's scheme
(status written to a temporary file, fsynced, renamed over the old one, the directory never
fsynced): under ``strict`` it loses the latest acknowledged version, which shows that the
harness sees loss. Needs root and /dev/fuse (``fusermount3`` from Debian's ``fuse3``).

    python tools/powercut.py --trials 300 --control-trials 100 --seed 1

Prints one summary line per scheme and mode, then a table; exit status 1 if evstore lost an
acknowledged operation, or if the control lost nothing under ``strict``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import crashtest
from crashtest import Expect, Totals, check, progress, run_writer
from powercut_fs import CONTROL, MODES, PAGE, serve

from evstore._core.inputs import positive_int

CONTROL_IDS = 4
__all__ = ["MODES", "PAGE", "Mount", "fuse_missing", "mounted"]
FUSE_MISSING = "powercut needs root and /dev/fuse, with fusermount3 (Debian: fuse3)"


def fuse_missing() -> str | None:
    """Why FUSE cannot be mounted here, or None."""
    if not os.path.exists("/dev/fuse"):
        return f"{FUSE_MISSING}: no /dev/fuse"
    if os.geteuid() != 0:
        return f"{FUSE_MISSING}: not root"
    if shutil.which("fusermount3") is None:
        return f"{FUSE_MISSING}: no fusermount3"
    return None


def mounted(point: Path) -> bool:
    """Whether anything is mounted there (also a mount whose server died: os.path.ismount
    says no to those)."""
    wanted = os.path.realpath(point).encode()
    with open("/proc/self/mountinfo", "rb") as table:
        return any(line.split()[4] == wanted for line in table)


class Mount:
    """``powercut_fs`` served by a child process over ``backing`` at ``point``.

    Leaving the block always unmounts and ends the server, whatever happened inside.
    """

    def __init__(self, backing: Path, point: Path, mode: str, seed: int) -> None:
        self.backing, self.point, self.mode, self.seed = backing, point, mode, seed
        self.log = backing.with_name(backing.name + ".log")
        self.server: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Mount:
        self.backing.mkdir(parents=True, exist_ok=True)
        self.point.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.server = subprocess.Popen(
                [sys.executable, __file__, "serve", str(self.backing), str(self.point),
                 "--mode", self.mode, "--seed", str(self.seed)],
                stdout=log, stderr=log,
            )
        try:
            deadline = time.monotonic() + 20
            while not mounted(self.point):
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"powercut: the filesystem did not mount: {self.log_tail()}")
                time.sleep(0.01)
        except BaseException as exc:
            self.server.kill()
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def cut(self) -> None:
        """Drop everything unsynced (the server refuses every call from now on)."""
        with open(self.point / CONTROL.lstrip("/"), "w") as control:
            control.write("cut")

    def unmount(self) -> None:
        for flags in (["-u"], ["-u"], ["-u"], ["-uz"]):  # -z once the mount stays busy
            if not mounted(self.point):
                return
            subprocess.run(["fusermount3", *flags, str(self.point)], capture_output=True)
            time.sleep(0.05)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.unmount()
        if self.server is not None:
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.unmount()  # a server that mounted late, or died mounted
        if kind is not None:
            return  # the caller's exception says more; the log stays for a look
        failed = self.server is None or self.server.returncode != 0
        if failed or "Traceback" in self.log.read_text(errors="replace"):
            raise SystemExit(f"powercut: the filesystem failed: {self.log_tail()}")
        self.log.unlink(missing_ok=True)


# -- containerd's scheme, the control ------------------------------------------------------


def control_setup(root: Path) -> None:
    """The state directory, made durable as long-running containerd's would be."""
    for ident in range(CONTROL_IDS):
        directory = root / f"c{ident}"
        directory.mkdir(parents=True, exist_ok=True)
        write_status(directory, 0)
        fsync_path(directory)
    fsync_path(root)
    fsync_path(root.parent)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_status(directory: Path, version: int) -> None:
    """containerd's checkpoint: temporary file, fsync, rename; no directory fsync."""
    scratch = directory / "status.tmp"
    with open(scratch, "w") as handle:
        json.dump({"version": version, "pad": "x" * 200}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    scratch.replace(directory / "status")


def read_version(directory: Path) -> int:
    try:
        return int(json.loads((directory / "status").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return -1


def control_writer(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    versions = {n: read_version(root / f"c{n}") for n in range(CONTROL_IDS)}
    print("ready", flush=True)
    while True:
        ident = rng.randrange(CONTROL_IDS)
        versions[ident] += 1
        write_status(root / f"c{ident}", versions[ident])
        print(f"ack sync c{ident} {versions[ident]}", flush=True)


def control_found(root: Path) -> dict[str, Expect]:
    return {f"c{n}": Expect(True, read_version(root / f"c{n}")) for n in range(CONTROL_IDS)}


def control_check(root: Path, expect: dict[str, Expect], totals: Totals) -> None:
    for ident, wanted in expect.items():
        found = read_version(root / ident)
        if found < wanted.pid:
            totals.lost.append(f"{ident}: acknowledged version {wanted.pid}, found {found}")


# -- the trials ------------------------------------------------------------------------------


@dataclass
class Run:
    """One scheme under one mode: its backing directories and counts."""

    scheme: str
    mode: str
    base: Path
    point: Path
    writers: int
    fresh_every: int
    totals: Totals
    seconds: float = 0.0
    checked: int = 0  # acknowledgements checked after a cut (a trial stopped early: none)

    def trials(self, count: int, rng: random.Random, advance: Callable[[str], None]) -> None:
        started = time.monotonic()
        try:
            for first in range(0, count, self.fresh_every):
                self.group(min(self.fresh_every, count - first), first, rng, advance)
        finally:
            self.seconds = time.monotonic() - started

    def group(
        self, count: int, first: int, rng: random.Random, advance: Callable[[str], None]
    ) -> None:
        """``count`` cuts on one backing directory: a store created on the mount, reused."""
        backing = self.base / f"{self.scheme}-{self.mode}-{first}"
        target = self.point / ("store" if self.scheme == "evstore" else "state")
        expect: dict[str, Expect] = {}
        for number in range(count + 1):
            with Mount(backing, self.point, self.mode, rng.randrange(1 << 30)) as mount:
                if number:
                    expect = self.check(target, expect)
                    advance(self.status())
                if number == count:
                    break
                self.prepare(target, expect)
                run_writer(target, self.writers, rng, self.totals, expect, self.writer(target, rng))
                mount.cut()
        shutil.rmtree(backing, ignore_errors=True)

    def prepare(self, target: Path, expect: dict[str, Expect]) -> None:
        if self.scheme == "containerd" and not expect:
            control_setup(target)
            expect.update(control_found(target))

    def writer(self, target: Path, rng: random.Random) -> tuple[str, ...]:
        seed = str(rng.randrange(1 << 30))
        if self.scheme == "evstore":
            return (crashtest.__file__, "--child", str(target), str(self.writers), seed)
        return (__file__, "control-writer", str(target), seed)

    def check(self, target: Path, expect: dict[str, Expect]) -> dict[str, Expect]:
        """Count what the cut lost; return what is there now."""
        if self.scheme == "evstore":
            found = check(target, expect, self.totals)
        else:
            control_check(target, expect, self.totals)
            found = control_found(target)
        self.totals.trials += 1
        self.checked = self.totals.acknowledged
        return found

    def status(self) -> str:
        return (f"{self.scheme} {self.mode} acknowledged={self.checked}"
                f" lost={len(self.totals.lost)}")

    def summary(self) -> str:
        return (f"powercut: scheme={self.scheme} mode={self.mode} trials={self.totals.trials}"
                f" acknowledged={self.checked} lost={len(self.totals.lost)}"
                f" seconds={self.seconds:.1f}")


def table(runs: list[Run]) -> list[str]:
    """Both schemes side by side, one row per mode (markdown)."""
    lines = [
        "| mode | evstore: trials | acknowledged | lost | containerd scheme: trials"
        " | acknowledged | lost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in dict.fromkeys(run.mode for run in runs):
        cells = [mode]
        for scheme in ("evstore", "containerd"):
            found = [run for run in runs if run.mode == mode and run.scheme == scheme]
            cells += ([f"{found[0].totals.trials:,}", f"{found[0].checked:,}",
                       f"{len(found[0].totals.lost):,}"] if found else ["-", "-", "-"])
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def modes(text: str) -> list[str]:
    chosen = [mode.strip() for mode in text.split(",") if mode.strip()]
    wrong = [mode for mode in chosen if mode not in MODES]
    if wrong or not chosen:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}, not {text!r}")
    return chosen


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}")
    return int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", type=modes, default=list(MODES), help="comma-separated")
    parser.add_argument("--trials", type=count, default=20, help="evstore cuts per mode (0: none)")
    parser.add_argument("--control-trials", type=count, default=10,
                        help="containerd-scheme cuts per mode (0: none)")
    parser.add_argument("--writers", type=positive_int, default=4,
                        help="threads in the writer process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh-every", type=positive_int, default=10,
                        help="cuts per store: each store is created on the mount")
    parser.add_argument("--dir", type=Path, default=None, help="where to put backing dirs")
    args = parser.parse_args()
    if (reason := fuse_missing()) is not None:
        print(f"powercut: {reason}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="powercut-", dir=args.dir))
    runs = [
        Run(scheme, mode, base, base / "mnt", args.writers, args.fresh_every, Totals())
        for mode in args.modes
        for scheme, count in (("evstore", args.trials), ("containerd", args.control_trials))
        if count > 0
    ]
    counts = {"evstore": args.trials, "containerd": args.control_trials}
    done: list[Run] = []
    try:
        with progress(sum(counts[run.scheme] for run in runs)) as advance:
            for run in runs:
                done.append(run)
                run.trials(counts[run.scheme], rng, advance)
                print(run.summary(), flush=True)
    except Stopped as stop:  # report what was done; a trial cut short counts for nothing
        print(done[-1].summary(), f"(stopped early: {stop})", flush=True)
        runs = done
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for run in runs:
        for problem in run.totals.lost[:10 if run.scheme == "evstore" else 2]:
            print(f"LOST {run.scheme} {run.mode}: {problem}")
    print("\n".join(table(runs)))
    evstore_lost = any(run.totals.lost for run in runs if run.scheme == "evstore")
    control_blind = any(
        run.scheme == "containerd" and run.mode == "strict" and run.checked
        and not run.totals.lost for run in runs
    )
    return 1 if evstore_lost or control_blind else 0


class Stopped(Exception):
    """SIGTERM or SIGINT: unmount on the way out and report the trials done so far."""


def _terminate(signum: int, frame: object) -> None:
    raise Stopped(f"signal {signum}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serving = argparse.ArgumentParser()
        serving.add_argument("command")
        serving.add_argument("backing", type=Path)
        serving.add_argument("mountpoint", type=Path)
        serving.add_argument("--mode", choices=MODES, default="strict")
        serving.add_argument("--seed", type=int, default=0)
        served = serving.parse_args()
        serve(served.backing, served.mountpoint, served.mode, served.seed)
    elif sys.argv[1:2] == ["control-writer"]:
        control_writer(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _terminate)
        sys.exit(main())
