"""The README's "Record a node" transcript, made by a real run (as root):

    .venv/bin/python tools/record_demo.py [--base /tmp/evdemo]

Starts the tests' private containerd (tests/cri_node.py) under BASE/node and plays the
scenario the README describes: pod ``web`` runs ``app``; between the syncs ``migrate`` starts
and exits with 3, and ``hog`` is OOM-killed under a 16 MiB limit. Each step runs the
``evstore`` console script installed beside this interpreter, in BASE, on the store
``node-store``, and the transcript is printed as a ``console`` block to paste. BASE must not
exist; it is removed at the end, with the daemon, its shims, mounts and cgroups.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cri_node import Node, NodeError, running_node, wait_for_file

STORE = "node-store"
HOG_LIMIT = 16 << 20


class Transcript:
    """Runs ``evstore`` commands in one directory and keeps what a console would show."""

    def __init__(self, where: Path) -> None:
        found = Path(sys.executable).with_name("evstore")
        command = str(found) if found.exists() else shutil.which("evstore")
        if command is None:
            raise SystemExit("no evstore console script: pip install -e '.[cri]' first")
        self.command = command
        self.where = where
        self.lines: list[str] = []

    def run(self, *args: str) -> None:
        done = subprocess.run([self.command, *args], cwd=self.where, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"evstore {shlex.join(args)} failed: {done.stderr.strip()}")
        self.lines += [f"$ evstore {shlex.join(args)}", *done.stdout.splitlines()]

    def text(self) -> str:
        return "\n".join(["```console", *self.lines, "```"])


def wait_for_oom(node: Node, container: str, timeout: float = 10.0) -> None:
    """containerd may learn of an OOM kill after the exit; wait until CRI says so, so that
    the sync after it sees the container's final status."""
    node.wait_exited(container)
    deadline = time.monotonic() + timeout
    while node.container_status(container).reason != "OOMKilled":
        if time.monotonic() > deadline:
            raise NodeError(f"{container} was not OOM-killed")
        time.sleep(0.05)


def scenario(node: Node, shell: Transcript, signals: Path) -> None:
    record = ("record", STORE, "--cri", node.endpoint, "--once")
    pod = node.run_pod("web", namespace="shop", uid=str(uuid.uuid4()))
    app = node.create(pod, "app", ["/bin/sleep", "1000000"])
    node.start_container(app)
    migrate = node.create(pod, "migrate", wait_for_file("done", "exit 3"), host_dir=signals)
    shell.run(*record)
    node.start_container(migrate)
    shell.run(*record)
    (signals / "done").touch()
    node.wait_exited(migrate)
    hog = node.create(pod, "hog", ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M",
                                   "count=1"], memory=HOG_LIMIT)
    node.start_container(hog)
    wait_for_oom(node, hog)
    shell.run(*record)
    shell.run(*record, "--json")
    shell.run("pods", STORE, "--all")
    shell.run("history", STORE, migrate)
    shell.run("history", STORE, hog)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, default=Path("/tmp/evdemo"))
    args = parser.parse_args()
    base: Path = args.base.resolve()
    base.mkdir(parents=True)  # refuses an existing BASE: everything in it is removed after
    try:
        shell = Transcript(base)
        (base / "signals").mkdir()
        with running_node(base / "node") as node:
            scenario(node, shell, base / "signals")
        print(shell.text())
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
