"""Operator commands: ``evstore ls``, ``pods`` and ``history ID`` as processes, against a
plain script that reads containerd's status files and prints the same table.

The store holds ``cfg.operator_containers`` containers in pods of four (kubelet labels, so
that ``pods`` shows them), each with ten events: created, started, seven resource updates,
and for one in four an exit. The script (``benchmarks/ls_files.py``, standard library only)
reads the same containers' final statuses as containerd's ``<id>/status`` files. Each
command is timed whole, from the process's start to its exit, as an operator waits for it.
"""

from __future__ import annotations

import compileall
import functools
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

import evstore
from evstore import (
    BenchError,
    ContainerConfig,
    ContainerMetadata,
    ContainerResources,
    ContainerStatus,
    LinuxContainerResources,
)
from evstore._bench.baseline import write_status_file
from evstore._bench.config import BenchConfig, Steps
from evstore._bench.result import Measure, make_measure
from evstore._bench.workload import container_id, created_status, round_pairs

SCRIPT = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "ls_files.py"
POD_SIZE = 4  # containers per pod
COMMANDS = ("ls", "pods", "history")
# what the commands import before they read a byte: the libraries as their lane loads them
# (msgspec without typing_extensions, no click), not evstore's own code
LIBRARIES = "import lmdb; from evstore._cli import quick; quick._msgspec_alone()"
LIBRARIES_LABEL = "msgspec and lmdb as the lane loads them"


def count_operator_steps(cfg: BenchConfig) -> int:
    """The store built, then per run the script and each command."""
    if not cfg.operator_containers or not SCRIPT.exists():
        return 0
    return 1 + cfg.repeats * (1 + len(COMMANDS))  # (the libraries' import is not a step)


def _labels(i: int) -> dict[str, str]:
    pod = i // POD_SIZE
    return {
        "io.kubernetes.pod.uid": f"{pod:08x}-0000-4000-8000-000000000000",
        "io.kubernetes.pod.name": f"app-{pod}", "io.kubernetes.pod.namespace": "default",
    }


def _events(i: int) -> list[Callable[[ContainerStatus], ContainerStatus]]:
    """What happens to container ``i`` after it is created: nine events."""
    replace = msgspec.structs.replace
    started: list[Callable[[ContainerStatus], ContainerStatus]] = [
        lambda s: replace(s, pid=10_000 + i, started_at=s.created_at + 1_000_000)
    ]
    for k in range(7):
        linux = LinuxContainerResources(cpu_shares=256 + k, memory_limit_in_bytes=(k + 1) << 28)
        resources = ContainerResources(linux=linux)
        started.append(functools.partial(replace, resources=resources))
    if i % 4 == 3:
        started.append(lambda s: replace(s, finished_at=s.started_at + 1, exit_code=1))
    else:
        started.append(lambda s: replace(s, message=f"ready {i}"))
    return started


def build_operator_store(path: Path, files: Path, count: int) -> str:
    """The store (closed cleanly) and its containers' final statuses as status files;
    the id whose history is shown."""
    with evstore.open(path) as store:
        entries = [
            store.containers.add(
                ContainerMetadata(
                    id=container_id(i), name=f"app-{i // POD_SIZE}-c{i % POD_SIZE}",
                    config=ContainerConfig(
                        name=f"c{i % POD_SIZE}", image="registry.example/app:1.0",
                        labels=_labels(i),
                    ),
                ),
                created_status(i),
            )
            for i in range(count)
        ]
        for i, entry in enumerate(entries):
            for fn in _events(i):
                entry.status.update(fn)
        store.flush()
        for entry in entries:
            write_status_file(files, entry.id, entry.status.get())
    return container_id(0)


def command_argv(*args: str) -> list[str]:
    """``evstore ARGS`` as an operator types it: the console script beside this Python,
    else ``python -m evstore``."""
    script = Path(sys.executable).with_name("evstore")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "evstore", *args]


def _env() -> dict[str, str]:
    package_parent = str(Path(evstore.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": pythonpath}


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Seconds from start to exit, and the output; a failing command is an error."""
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise BenchError(f"{' '.join(argv[-3:])} failed: {why[0]}")
    return seconds, done.stdout


def operator_measures(
    cfg: BenchConfig, work: Path, step: Steps, note: Callable[[str], None]
) -> list[Measure]:
    """``ls``, ``pods`` and ``history`` against the script, alternating, ``repeats`` each."""
    count = cfg.operator_containers
    if not count:
        return []
    if not SCRIPT.exists():
        note(f"operator commands skipped: {SCRIPT} not found (run from a source checkout)")
        return []
    directory = work / "operator"
    store, files = directory / "store", directory / "files"
    try:
        ident = build_operator_store(store, files, count)
        step(f"operator store of {count:,} containers")
        return _measure(cfg, store, files, ident, count, step)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _compile_package() -> None:
    """Write evstore's bytecode, as installing it does: in a source checkout under
    ``PYTHONDONTWRITEBYTECODE`` every command would otherwise compile the package's modules
    first, a cost no installed evstore pays."""
    compileall.compile_dir(Path(evstore.__file__).resolve().parent, quiet=2)


def _measure(
    cfg: BenchConfig, store: Path, files: Path, ident: str, count: int, step: Steps
) -> list[Measure]:
    env = _env()
    _compile_package()
    argv = {
        "ls": command_argv("ls", str(store)),
        "pods": command_argv("pods", str(store)),
        "history": command_argv("history", str(store), ident),
    }
    script = [sys.executable, str(SCRIPT), str(files)]
    base: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    start: list[float] = []  # the interpreter alone, what every one of them pays first
    libraries: list[float] = []  # the interpreter and the libraries the commands load
    out: dict[str, str] = {}
    for _ in range(cfg.repeats):
        for _pair in round_pairs(cfg.round_seconds):
            start.append(timed([sys.executable, "-c", "pass"], env)[0])
            libraries.append(timed([sys.executable, "-c", LIBRARIES], env)[0])
            seconds, out["script"] = timed(script, env)
            base.append(seconds)
            for name in COMMANDS:
                seconds, out[name] = timed(argv[name], env)
                times[name].append(seconds)
        step("operator: the file-reading script")
        for name in COMMANDS:
            step(f"operator: evstore {name}")
    lines = {name: len(text.splitlines()) for name, text in out.items()}
    shown = {"ls": "ls", "pods": "pods", "history": "history ID"}
    return [
        make_measure(
            f"operator_{name}_{count}",
            f"evstore {shown[name]}, {count:,} containers (baseline: the file-reading script)",
            "s", times[name], base,
            {"argv": _shown_argv(argv[name]), "script": _shown_argv(script),
             "output_lines": lines[name], "script_output_lines": lines["script"],
             "script_median": statistics.median(base),
             "python_start_median": statistics.median(start),
             "libraries_median": statistics.median(libraries), "libraries": LIBRARIES_LABEL,
             # the script prints the table ls prints, for the same containers
             "script_same_as_ls": out["script"] == out["ls"]},
        )
        for name in COMMANDS
    ]


def _shown_argv(argv: list[str]) -> list[str]:
    """The command without the run's own paths: the program's name and the subcommand."""
    return [Path(argv[0]).name, *(a for a in argv[1:] if not a.startswith("/"))]

