"""The audit commands (ls, history, replay, export, compact, import-containerd) through the
installed console script, in a subprocess, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

import evstore
from evstore import (
    ContainerConfig,
    ContainerMetadata,
    ContainerStatus,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
)
from evstore._cli.render import columns, entry_object, format_age, format_time, parse_time
from evstore._history.replay import states_at

EVSTORE = str(Path(sys.executable).with_name("evstore"))
FIXTURE = Path(__file__).parent / "fixtures" / "containerd-root"
COMMANDS = ["ls", "history", "replay", "export", "compact", "import-containerd"]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EVSTORE, *map(str, args)], capture_output=True, text=True, timeout=120)


def ok(*args: object) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def as_data(value: Any) -> Any:
    return json.loads(msgspec.json.encode(value))


def replace(**fields: object) -> Any:
    return lambda s: msgspec.structs.replace(s, **fields)


def lifecycle(store: evstore.Store) -> None:
    """c1: created, started, exited, deleted, created again; s1: a sandbox made ready."""
    entry = store.containers.add(ContainerMetadata(id="c1"), ContainerStatus(created_at=10))
    entry.status.update_sync(replace(pid=42, started_at=20))
    entry.status.update_sync(replace(finished_at=30, exit_code=137, message="a [b] <c> & d"))
    store.containers.delete("c1")
    store.containers.add(ContainerMetadata(id="c1"), ContainerStatus(created_at=40))
    sandbox = store.sandboxes.add(SandboxMetadata(id="s1"), SandboxStatus(created_at=5))
    sandbox.status.update_sync(replace(state=SandboxState.READY, pid=7))


def test_import_containerd_and_rerun(store_path: Path) -> None:
    first = ok("import-containerd", FIXTURE, store_path)
    assert first.splitlines() == [
        "unknown: deadbeef: unsupported status version 'v2'",
        "imported 4 containers (1 unknown), skipped 0 already in the store",
    ]
    again = ok("import-containerd", FIXTURE, store_path)
    assert again == "imported 0 containers (0 unknown), skipped 4 already in the store\n"


def test_ls_table_and_json(store_path: Path) -> None:
    ok("import-containerd", FIXTURE, store_path)
    table = ok("ls", store_path).splitlines()
    assert table[0].split() == ["ID", "ENTITY", "STATE", "PID", "EXIT", "CODE", "AGE"]
    rows = {line.split()[0]: line.split()[1:5] for line in table[1:]}
    assert rows == {
        "3f2a9c01": ["container", "RUNNING", "31337", "0"],
        "7be1d2aa": ["container", "EXITED", "0", "137"],
        "c0ffee42": ["container", "CREATED", "0", "0"],
        "deadbeef": ["container", "UNKNOWN", "0", "255"],
    }
    listed = json.loads(ok("ls", store_path, "--json"))
    assert [(o["id"], o["entity"], o["state"], o["exit_code"]) for o in listed] == [
        ("3f2a9c01", "container", "running", 0), ("7be1d2aa", "container", "exited", 137),
        ("c0ffee42", "container", "created", 0), ("deadbeef", "container", "unknown", 255),
    ]
    assert listed[0]["pid"] == 31337 and listed[0]["created_at"] == 1763884800123456789
    assert listed[0]["status"]["resources"]["linux"]["unified"] == {"memory.high": "400M"}
    assert listed[1]["status"]["message"] == "container <app> exceeded memory & was killed"


def test_history_table_and_json(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        lifecycle(store)
        expected = as_data(store.history("c1"))
    assert json.loads(ok("history", store_path, "c1", "--json")) == expected
    table = ok("history", store_path, "c1").splitlines()
    assert table[0] == "container c1: 5 event(s)"
    assert [line.split()[3] for line in table[2:]] == [
        "created", "started", "exited", "deleted", "created",
    ]
    assert table[2].split()[2] == format_time(expected[0]["time"])
    assert '"message":"a [b] <c> & d"' in table[4]  # shown as it is, not as markup


def test_replay_by_position_and_time(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        lifecycle(store)
        feed = list(store.events())
        deleted = next(e for e in feed if e.type == "deleted")
        expected = as_data([entry_object(s) for s in states_at(store, position=deleted.position)])
        at_end = as_data([entry_object(s) for s in states_at(store, position=feed[-1].position)])
    assert expected == []  # c1 was deleted and s1 not yet added
    assert json.loads(ok("replay", store_path, "--position", deleted.position, "--json")) == []
    exited = feed[2]
    by_time = json.loads(ok("replay", store_path, "--time", exited.time, "--json"))
    assert [(o["id"], o["state"], o["exit_code"]) for o in by_time] == [("c1", "exited", 137)]
    iso = ok("replay", store_path, "--time", format_time(exited.time))
    assert iso.splitlines()[0] == f"at position 3, {format_time(exited.time)}: 1 entries"
    assert iso.splitlines()[2].split()[:5] == ["c1", "container", "EXITED", "42", "137"]
    everything = json.loads(ok("replay", store_path, "--position", feed[-1].position, "--json"))
    assert everything == at_end
    assert [(o["id"], o["entity"], o["state"]) for o in everything] == [
        ("c1", "container", "created"), ("s1", "sandbox", "ready"),
    ]


def test_export_streams_json_lines(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        lifecycle(store)
        feed = list(store.events())
    lines = ok("export", store_path).splitlines()
    assert [msgspec.json.decode(line, type=evstore.Event) for line in lines] == feed
    rest = ok("export", store_path, "--since", 5).splitlines()
    assert [json.loads(line)["position"] for line in rest] == [6, 7]
    assert ok("export", store_path, "--since", 7) == ""


def churn(store_path: Path) -> None:
    """Enough snapshot rewrites and commits to leave free pages behind."""
    with evstore.open(store_path, snapshot_every=1) as store:
        for n in range(400):
            entry = store.containers.add(
                ContainerMetadata(id=f"c{n}"), ContainerStatus(created_at=1, message="x" * 300)
            )
            for k in range(3):
                entry.status.update_sync(replace(message=f"{k}" * 300))


def test_compact_reclaims_space_and_keeps_every_event(store_path: Path) -> None:
    churn(store_path)
    before = ok("export", store_path)
    size = (store_path / "data.mdb").stat().st_size
    line = ok("compact", store_path)
    after = (store_path / "data.mdb").stat().st_size
    assert after < size
    assert line == f"{store_path}: {size:,} -> {after:,} bytes ({size - after:,} bytes reclaimed)\n"
    assert ok("export", store_path) == before
    assert ok("verify", store_path).startswith(f"{store_path}: sound; 1,600 events")
    assert list(store_path.iterdir()) != [] and not any(
        p.name.startswith(".compact-") for p in store_path.iterdir()
    )
    with evstore.open(store_path) as store:  # writable again, and it still takes writes
        store.containers.add(ContainerMetadata(id="new"), ContainerStatus(created_at=1))
        assert store.containers.get("c399").status.get().message == "2" * 300


_HOLD = textwrap.dedent(
    """
    import sys, evstore
    with evstore.open(sys.argv[1], readonly=True) as store:
        print("open", flush=True)
        sys.stdin.readline()
    """
)


def test_compact_refuses_beside_a_writer_or_a_reader(store_path: Path) -> None:
    churn(store_path)
    size = (store_path / "data.mdb").stat().st_size
    with evstore.open(store_path):
        result = run("compact", store_path)
    assert result.returncode == 1
    assert result.stderr == f"error: {store_path}: another writer has this store open\n"
    reader = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(store_path)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline() == "open\n"
        result = run("compact", store_path)
    finally:
        reader.communicate("\n", timeout=60)
    assert result.returncode == 1
    assert result.stderr == (
        f"error: {store_path}: process {reader.pid} has the store open;"
        " close it before compacting\n"
    )
    assert (store_path / "data.mdb").stat().st_size == size


def test_read_commands_work_beside_a_running_writer(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        lifecycle(store)
        assert [o["id"] for o in json.loads(ok("ls", store_path, "--json"))] == ["c1", "s1"]
        entry = store.containers.get("c1")
        entry.status.update_sync(replace(pid=9, started_at=50))  # after the commands began
        history = json.loads(ok("history", store_path, "c1", "--json"))
        assert history[-1]["changes"] == {"pid": 9, "started_at": 50}
        replayed = json.loads(ok("replay", store_path, "--position", 8, "--json"))
        assert [(o["id"], o["state"], o["pid"]) for o in replayed] == [
            ("c1", "running", 9), ("s1", "ready", 7),
        ]
        assert len(ok("export", store_path).splitlines()) == 8
        assert ok("verify", store_path).startswith(f"{store_path}: sound")
        assert entry.status.update_sync(replace(finished_at=60)).finished_at == 60


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    return result.stderr


def test_user_mistakes_are_one_line_errors(store_path: Path, tmp_path: Path) -> None:
    with evstore.open(store_path) as store:
        lifecycle(store)
    missing, a_file = tmp_path / "missing", Path(__file__)
    for args in (("ls", missing), ("ls", a_file), ("history", missing, "c1"),
                 ("export", a_file), ("replay", missing, "--position", 1), ("compact", missing),
                 ("compact", a_file), ("import-containerd", FIXTURE, a_file)):
        one_line_error(run(*args))
    assert not missing.exists()  # nothing is created by a mistake
    assert "'nope': no such container or sandbox" in one_line_error(
        run("history", store_path, "nope")
    )
    for args in (("replay", store_path), ("replay", store_path, "--time", 1, "--position", 1),
                 ("replay", store_path, "--time", "yesterday"), ("export", store_path, "--since",
                 -1), ("import-containerd", missing, store_path), ("ls",)):
        one_line_error(run(*args), code=2)
    assert not missing.exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    text = ok(command, "--help")
    assert text.startswith(f"Usage: evstore {command} ")
    assert command in ok("--help")


def test_times_read_back_exactly() -> None:
    ns = 1_763_884_800_123_456_789
    assert format_time(ns) == "2025-11-23T08:00:00.123456789Z"
    assert parse_time(format_time(ns)) == ns
    assert parse_time(str(ns)) == ns
    assert parse_time("2025-11-23T09:00:00.5+01:00") == 1_763_884_800_500_000_000
    assert parse_time("2025-11-23 08:00") == 1_763_884_800_000_000_000
    with pytest.raises(ValueError):
        parse_time("03:12")
    assert format_time(0) == "-"


def test_ages_and_columns() -> None:
    now = 10**18
    assert [format_age(now - s * 10**9, now) for s in (0, 59, 61, 7_200, 200_000)] == [
        "0s", "59s", "1m", "2h", "2d",
    ]
    assert format_age(0, now) == "-"
    assert columns(("id", "n"), [("a", "1"), ("bbb", "22")], right=1).splitlines() == [
        "ID    N", "a     1", "bbb  22",
    ]


def test_output_an_ascii_terminal_cannot_show_is_escaped(store_path: Path) -> None:
    """A name or message with characters the output's encoding lacks is escaped, not a
    traceback halfway through a table."""
    with evstore.open(store_path) as store:
        entry = store.containers.add(
            ContainerMetadata(id="u1", name="caf\u00e9", config=ContainerConfig(name="caf\u00e9")),
            ContainerStatus(created_at=1),
        )
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, message="d\u00e9j\u00e0"))
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    shown = {}
    for args in (["ls"], ["pods", "--all"], ["history", "u1"], ["replay", "--position", "2"]):
        done = subprocess.run(
            [EVSTORE, args[0], str(store_path), *args[1:]], capture_output=True, text=True,
            timeout=120, env=env, check=False,
        )
        assert (done.returncode, done.stderr) == (0, ""), args
        shown[args[0]] = done.stdout
    # pods prints through click like every other table (click writes UTF-8 to an ASCII stream)
    assert "u1" in shown["pods"] and "caf" in shown["pods"]
