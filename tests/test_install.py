"""What a plain install brings and what loads when: a light ``import evstore`` and CLI start,
optional extras named in one line (with a pip command that fits the installation), the
package's version, types and ``help(evstore.open)``."""

from __future__ import annotations

import importlib.metadata
import json
import pydoc
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import evstore
from evstore._cli.main import main, summary
from evstore._core import extras as _extras
from evstore._store.store import TUNING_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("psycopg", "rich", "click", "grpc")
# ``evstore --help`` in a fresh interpreter
HELP = (
    "from click.testing import CliRunner; from evstore._cli.main import main\n"
    "CliRunner().invoke(main, ['--help'])"
)


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout
    return set(out.split())


def test_import_evstore_loads_no_driver_cli_or_store() -> None:
    loaded = loaded_after("import evstore")
    assert sorted(m for m in loaded if m.startswith(HEAVY)) == []
    assert "lmdb" not in loaded and "evstore._store.store" not in loaded  # loaded on first use


def test_the_command_line_loads_only_click_until_a_command_runs() -> None:
    for code in ("import evstore._cli.main", HELP):
        loaded = loaded_after(code)
        assert {m.split(".")[0] for m in loaded} & {
            "psycopg", "rich", "lmdb", "msgspec", "asyncio"
        } == set()
        assert sorted(m for m in loaded if m.startswith("evstore.")) == [
            "evstore._cli", "evstore._cli.errors", "evstore._cli.main", "evstore._cli.output",
            "evstore._core", "evstore._core.errors", "evstore._core.version",
        ]


@pytest.mark.parametrize("args", [["--version"], ["record", "--help"]])
def test_version_and_help_load_no_store_event_loop_or_package_metadata(args: list[str]) -> None:
    loaded = loaded_after(
        "from click.testing import CliRunner; from evstore._cli.main import main\n"
        f"assert CliRunner().invoke(main, {args!r}).exit_code == 0"
    )
    assert {m.split(".")[0] for m in loaded} & {
        "psycopg", "rich", "lmdb", "msgspec", "asyncio", "grpc"
    } == set()
    assert "importlib.metadata" not in loaded


def test_a_command_loads_its_own_module_only() -> None:
    loaded = loaded_after(
        "from click.testing import CliRunner; from evstore._cli.main import main\n"
        "CliRunner().invoke(main, ['ls', '--help'])"
    )
    assert sorted(m for m in loaded if m.startswith("evstore._cli.")) == [
        "evstore._cli.errors", "evstore._cli.lookups", "evstore._cli.main",
        "evstore._cli.options", "evstore._cli.output", "evstore._cli.reading",
    ]


def test_help_lists_every_command_with_the_summary_of_its_help() -> None:
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None, name
        assert command.get_short_help_str(limit=1_000) == summary(name), name


def test_public_names_load_on_first_use() -> None:
    for name in evstore.__all__:
        assert getattr(evstore, name) is not None, name
    from evstore._store.store import Store

    assert evstore.Store is Store
    assert set(evstore.__all__) <= set(dir(evstore))
    with pytest.raises(AttributeError):
        evstore.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_version_comes_from_the_package_metadata() -> None:
    assert evstore.__version__ == importlib.metadata.version("evstore")
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"evstore {evstore.__version__}\n"


def test_help_of_open_is_titled_open_and_lists_the_tuning_keywords() -> None:
    text = pydoc.render_doc(evstore.open, renderer=pydoc.plaintext)
    assert "open(path" in text and "open_store" not in text
    assert set(evstore.Tuning.__annotations__) == set(TUNING_DEFAULTS)
    for keyword in TUNING_DEFAULTS:
        assert f"``{keyword}``" in text, keyword


def test_the_package_ships_its_type_marker() -> None:
    assert (ROOT / "evstore" / "py.typed").is_file()
    assert "py.typed" in (ROOT / "pyproject.toml").read_text()


def test_a_typed_user_program_passes_mypy_strict() -> None:
    """The public API as a user's type checker sees it (``open_async`` was ``object``);
    ``.ci/run`` checks the same program against an installed wheel."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "tests/typed_user.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("args", [
    ["ship", "store", "--dsn", "x", "--node", "n"],
    ["fleet", "ls", "--dsn", "x"],
    ["fleet", "history", "--dsn", "x", "node", "id"],
])
def test_a_missing_fleet_extra_is_one_line_naming_it(
    args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(_extras.MODULES, "fleet", "evstore_no_such_module")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    command = " ".join(args[:2] if args[0] == "fleet" else args[:1])
    assert result.stderr.startswith(
        f"error: evstore {command} needs the fleet extra"
        " (evstore_no_such_module is not installed): "
    )
    assert result.stderr.endswith(f": {_extras.install_hint('fleet')}\n")
    assert list(tmp_path.iterdir()) == []  # no store was created or opened


class FakeDistribution:
    def __init__(self, direct_url: dict[str, Any] | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.direct_url is None else json.dumps(self.direct_url)


@pytest.mark.parametrize(("found", "hint"), [
    ([], "pip install 'evstore[fleet]'"),  # not installed: run from a checkout
    ([None], "pip install 'evstore[fleet]'"),  # from an index
    ([{"url": "file:///src/ev%20store", "dir_info": {"editable": True}}],
     "pip install -e '/src/ev store[fleet]'"),
    ([None, {"url": "file:///src/evstore", "dir_info": {}}],  # past a checkout's egg-info
     "pip install '/src/evstore[fleet]'"),
    ([{"url": "file:///tmp/evstore-0.1.0-py3-none-any.whl", "archive_info": {}}],
     "pip install 'evstore[fleet]'"),  # a wheel file: not -e, not a directory
    ([{"url": "https://example.com/evstore.tar.gz", "archive_info": {}}],
     "pip install 'evstore[fleet]'"),
])
def test_install_hints_fit_how_evstore_was_installed(
    found: list[dict[str, Any] | None], hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        importlib.metadata, "distributions",
        lambda name: [FakeDistribution(url) for url in found],
    )
    assert _extras.install_hint("fleet") == hint


@pytest.mark.parametrize("module", ["evstore.fleet", "evstore.shipping"])
def test_importing_a_fleet_module_without_psycopg_names_the_extra(module: str) -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if not installed\n"
        f"try:\n    import {module}\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc, sep=': ')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
    ).stdout
    assert out == (
        "MissingExtraError: evstore.fleet needs the fleet extra (psycopg is not installed):"
        f" {_extras.install_hint('fleet')}\n"
    )
