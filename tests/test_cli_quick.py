"""A reading command begins its store's probe before the command line loads: the walk it
collects is the one of the path it opens, and a damaged store still ends in one error line.
Their usual forms run without click, printing and failing exactly as under click."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from damage import scramble_page
from test_damage import crashed_store

from evstore._bench.operator import build_operator_store
from evstore._cli import quick
from evstore._cli.main import main
from evstore._storage import probe


def test_the_commands_guessed_at_take_only_flags() -> None:
    """PATH is their first argument that does not start with a dash, and the lane knows
    each command's arguments and flags as its click command declares them."""
    ctx = click.Context(main)
    for name, (count, flags) in quick.QUICK_COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None
        options = [p for p in command.params if isinstance(p, click.Option)]
        assert all(option.is_flag for option in options), name
        assert command.params[0].name == "path", name
        assert sum(isinstance(p, click.Argument) for p in command.params) == count, name
        assert {o: p.name for p in options for o in p.opts} == flags, name


@pytest.mark.parametrize("args", [
    [], ["ls"], ["ls", "--help"], ["ls", "PATH", "--jsn"], ["ls", "PATH", "--json=1"],
    ["ls", "PATH", "extra"], ["ls", "--", "PATH"], ["ls", "-"], ["pods", "PATH", "-a"],
    ["history", "PATH"], ["history", "PATH", "-1"], ["history", "PATH", "ID", "--all"],
    ["replay", "PATH"], ["--version"],
])
def test_other_forms_are_left_to_click(args: list[str]) -> None:
    assert quick.plain(args) is None


@pytest.fixture(scope="module")
def kubelet_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Twelve containers in three pods, closed cleanly, and the id of the first."""
    directory = tmp_path_factory.mktemp("lane")
    return directory / "store", build_operator_store(directory / "store", directory / "files", 12)


def python(code: str) -> str:
    """What a fresh interpreter running ``code`` prints (it must exit with 0)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout


@pytest.mark.parametrize("form", [
    "ls {p}", "ls --json {p}", "pods {p}", "pods {p} --all", "pods --json --all {p} --json",
    "history {p} {id}", "history {p} {id8} --json", "history {p} 0000", "history {p} nosuch",
    "ls {p}/nothing", "pods {p}/nothing --json",
])
def test_the_lane_prints_and_exits_as_click_does(
    form: str, kubelet_store: tuple[Path, str], capfd: pytest.CaptureFixture[str]
) -> None:
    path, ident = kubelet_store
    args = form.format(p=path, id=ident, id8=ident[:8]).split()
    assert quick.plain(args) is not None
    code = quick.run(args)
    lane = capfd.readouterr()
    clicked = CliRunner().invoke(main, args)
    assert (code, lane.out, lane.err) == (clicked.exit_code, clicked.stdout, clicked.stderr)
    assert lane.out or lane.err.startswith("error: ")


def test_the_lane_loads_no_click(kubelet_store: tuple[Path, str]) -> None:
    path, _ident = kubelet_store
    code = (
        "import sys\nfrom evstore.__main__ import run\n"
        f"sys.argv = ['evstore', 'pods', {str(path)!r}, '--all']\n"
        "try:\n    run()\nexcept SystemExit as exc:\n"
        "    print('click' in sys.modules, exc.code)\n"
    )
    out = python(code)
    assert out.splitlines()[-1] == "False 0"
    assert "app-0" in out


def test_the_lane_as_the_program_loads_msgspec_without_typing_extensions(
    kubelet_store: tuple[Path, str]
) -> None:
    """msgspec loads as where typing_extensions is missing, prints the same, and a later
    import of typing_extensions still finds it."""
    path, _ident = kubelet_store
    args = ["ls", "--json", str(path)]
    code = (
        "import sys\nfrom evstore._cli import quick\n"
        "quick._is_program = lambda: True\n"
        f"code = quick.run({args!r})\n"
        "loaded = 'typing_extensions' in sys.modules\n"
        "import typing_extensions\n"
        "print(loaded, code, typing_extensions.__name__)\n"
    )
    *shown, last = python(code).splitlines()
    assert last == "False 0 typing_extensions"
    assert "\n".join(shown) + "\n" == CliRunner().invoke(main, args).stdout


def test_a_begun_walk_is_collected_by_the_probe_of_its_path(store_path: Path) -> None:
    crashed_store(store_path)
    quick.start_probe(["ls", "--json", str(store_path)])
    assert list(probe._started) == [(str(store_path.resolve()), "load")]
    assert probe.probe(store_path) is not None
    assert probe._started == {}


@pytest.mark.parametrize("args", [["ls"], ["verify", "PATH"], ["ls", "/no/such/store"]])
def test_nothing_is_begun_without_a_store_to_walk(args: list[str]) -> None:
    quick.start_probe(args)
    assert probe._started == {}


def test_a_wrong_guess_is_not_collected(store_path: Path, tmp_path: Path) -> None:
    crashed_store(store_path)
    other = tmp_path / "other"
    shutil.copytree(store_path, other)
    probe.start(other)
    try:
        assert probe.probe(store_path) is not None
        assert list(probe._started) == [(str(other.resolve()), "load")]
    finally:
        probe._started.pop((str(other.resolve()), "load")).join()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("command", ["ls", "pods", "history"])
def test_a_damaged_store_is_one_error_line_never_a_crash(
    tmp_path: Path, command: str, seed: int
) -> None:
    path = tmp_path / "damaged"
    crashed_store(path, count=30, events=8)
    scramble_page(path, seed)
    args = [str(path), "0"] if command == "history" else [str(path)]
    done = subprocess.run(
        [sys.executable, "-m", "evstore", command, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # a crash would be negative
    if done.returncode == 1:
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def test_a_quick_command_run_as_the_program_prints_everything(store_path: Path) -> None:
    crashed_store(store_path)
    done = subprocess.run(
        [sys.executable, "-m", "evstore", "ls", "--json", str(store_path)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert len(json.loads(done.stdout)) == 6  # five containers and a sandbox


def test_run_called_by_another_program_returns_to_it(store_path: Path) -> None:
    """Only the program itself skips the teardown: a caller of ``run`` goes on."""
    crashed_store(store_path)
    code = (
        "import sys\nfrom evstore.__main__ import run\n"
        f"sys.argv = ['evstore', 'ls', {str(store_path)!r}]\n"
        "import gc\n"
        "try:\n    run()\nexcept SystemExit as exc:\n    print('returned', exc.code)\n"
        "assert gc.isenabled()\n"
    )
    assert python(code).endswith("returned 0\n")
