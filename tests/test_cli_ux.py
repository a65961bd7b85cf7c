"""The command line as a new user meets it: --json on every command that reports, Ctrl-C as
one line and exit 130 at any moment (compact finishing its swap first), a --json or --plot
file in a missing directory said so, and help without reStructuredText markup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import msgspec
import pytest
from click.testing import CliRunner, Result

import evstore
import evstore._ops.compact
from evstore import ContainerMetadata, ContainerStatus
from evstore._cli.main import main

EVSTORE = str(Path(sys.executable).with_name("evstore"))
FIXTURE = Path(__file__).parent / "fixtures" / "containerd-root"


def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def make_store(path: Path, containers: int = 20) -> Path:
    with evstore.open(path) as store:
        for n in range(containers):
            store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1))
        for n in range(0, containers, 2):
            store.containers.delete(f"c{n}")
    return path


def test_verify_json(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    result = invoke("verify", store, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    assert report["path"] == str(store) and report["events"] == 30 and report["entries"] == 20


def test_compact_json(tmp_path: Path) -> None:
    store = make_store(tmp_path / "s")
    report = json.loads(invoke("compact", store, "--json").stdout)
    assert set(report) == {"path", "before", "after", "reclaimed", "dropped"}
    assert report["reclaimed"] == report["before"] - report["after"]
    assert report["dropped"] is None
    kept = json.loads(invoke("compact", store, "--keep", "1s", "--json").stdout)["dropped"]
    assert set(kept) == {"floor", "floor_time", "events", "entries", "removed", "kept"}


def test_import_containerd_json(tmp_path: Path) -> None:
    first = invoke("import-containerd", FIXTURE, tmp_path / "s", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert set(report) == {"imported", "skipped", "unknown"} and report["imported"]
    again = json.loads(invoke("import-containerd", FIXTURE, tmp_path / "s", "--json").stdout)
    assert again["imported"] == [] and sorted(again["skipped"]) == sorted(report["imported"])


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_an_output_file_in_a_missing_directory_is_one_line(option: str, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "out.json"
    result = invoke("bench", "--quick", option, target)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert f"cannot write {target}: no directory {target.parent}" in result.stderr


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_help_texts_have_no_restructured_text_markup() -> None:
    for path in commands(main):
        result = invoke(*path, "--help")
        assert result.exit_code == 0, path
        assert "``" not in result.stdout, path


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evstore._store.store.Store, "__init__", interrupted)
    result = invoke("ls", tmp_path)
    assert (result.exit_code, result.stdout, result.stderr) == (130, "", "interrupted\n")


def test_ctrl_c_while_the_command_line_loads_is_one_line(tmp_path: Path) -> None:
    """As if Ctrl-C came while click loads: before click can catch anything."""
    code = (
        "import builtins\n"
        "real = builtins.__import__\n"
        "def interrupting(name, *args, **kwargs):\n"
        "    if name == 'click':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupting\n"
        "from evstore.__main__ import run\n"
        "run()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "ls", str(tmp_path)], capture_output=True, text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")


def next_pid(status: ContainerStatus) -> ContainerStatus:
    return msgspec.structs.replace(status, pid=status.pid + 1)


def test_ctrl_c_during_a_real_run_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """SIGINT to the process group, as a terminal sends it, once an export is under way."""
    with evstore.open(tmp_path / "s") as store:
        for n in range(2_000):
            entry = store.containers.add(ContainerMetadata(id=f"c{n}"), ContainerStatus())
            for _pid in range(1, 20):
                entry.status.update(next_pid)
    outcomes = []
    for _attempt in range(3):
        proc = subprocess.Popen(
            [EVSTORE, "export", str(tmp_path / "s")], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()  # the export is running
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        outcomes.append((proc.returncode, err.decode()))
        if outcomes[-1] != (0, ""):  # else it finished first
            break
    assert outcomes[-1] == (130, "interrupted\n")


def test_ctrl_c_during_compact_finishes_the_swap_then_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path / "s", 200)
    real = evstore._ops.compact.compact

    def interrupted_midway(
        path: Path, drop_before: int | None = None
    ) -> evstore._ops.compact.CompactReport:
        os.kill(os.getpid(), signal.SIGINT)  # while the work runs in its thread
        time.sleep(0.2)  # the main thread handles it now, not after the copy
        return real(path, drop_before)

    monkeypatch.setattr(evstore._ops.compact, "compact", interrupted_midway)
    result = invoke("compact", store)
    assert result.exit_code == 130
    assert result.stderr == "interrupted: finishing the compaction in progress, then exiting\n"
    assert result.stdout.startswith(f"{store}: ")  # the compaction's own report
    assert invoke("verify", store).exit_code == 0
    with evstore.open(store, readonly=True) as reopened:
        assert len(reopened.containers) == 100
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
