"""Every code example in README.md and docs/*.md runs as pasted.

The blocks of one document run in order in one fresh directory, as a reader pasting them one
after another would, so an example may use the store an earlier one made. The directory
holds ``tests/fixtures`` (read-only, linked) because the examples are run from a checkout.

- ``python``: a fresh interpreter runs the block; it must exit 0.
- ``console``: every ``$ command`` line runs in bash; it must fail exactly when the
  transcript shows an ``error:`` line under it, and succeed otherwise. The rest of the
  transcript (times, ages, sizes) is not compared.
- ``sh``: every line starting with ``evstore`` runs in bash and must exit 0.
- ``sql``: the statements run in a database of the suite's PostgreSQL, one per document.

A block that cannot run here is marked on the line before its fence with
``<!-- docs-test: skip: why -->``; it shows as a skip with that reason (``pytest -ra`` lists
each one), so the summary line counts the blocks run against those skipped by marker. A block
of another language, or one with nothing to run and no marker, fails: nothing goes unrun
silently.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from evstore.pgserver import PgServer, create_database

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!-- docs-test: skip: (\S.*?) -->\s*$")
_databases = itertools.count(1)
RUN_TIMEOUT = 120  # seconds per block or command: a hang fails instead of stalling the suite


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text, and a skip reason if marked."""

    document: Path
    line: int
    language: str
    text: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}:{self.language or 'plain'}"


def blocks_of(document: Path) -> list[Block]:
    """The fenced blocks of ``document``, in order."""
    source = document.read_text()
    found = []
    for match in FENCE.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        before = source[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        found.append(
            Block(document, line, match.group(1), match.group(2), marker and marker.group(1))
        )
    return found


BLOCKS = [block for document in DOCUMENTS for block in blocks_of(document)]


class Workspace:
    """The directory (and, once asked for, the database) one document's blocks share."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dsn: str | None = None
        (path / "tests").mkdir()
        (path / "tests" / "fixtures").symlink_to(ROOT / "tests" / "fixtures")

    def env(self) -> dict[str, str]:
        """The environment of every command: this interpreter's scripts first on PATH."""
        scripts = str(Path(sys.executable).parent)
        return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}

    def run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=self.path, env=self.env(), capture_output=True, text=True,
            timeout=RUN_TIMEOUT,
        )


@pytest.fixture(scope="module")
def workspace_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Workspace]:
    """One workspace per document, made when its first block runs."""
    made: dict[Path, Workspace] = {}

    def get(document: Path) -> Workspace:
        if document not in made:
            made[document] = Workspace(tmp_path_factory.mktemp(document.stem))
        return made[document]

    return get


def run_python(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    done = space.run([sys.executable, "-c", block.text])
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


def console_commands(text: str) -> list[tuple[str, bool]]:
    """Each ``$ command`` of a transcript, and whether its output shows an error."""
    commands: list[tuple[str, bool]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], False))
        elif line.startswith("error:") and commands:
            commands[-1] = (commands[-1][0], True)
    return commands


def run_console(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    commands = console_commands(block.text)
    assert commands, f"{block.name}: a transcript without a '$ ' command"
    for command, fails in commands:
        done = space.run(["bash", "-c", command])
        shown = f"{block.name}: $ {command}\n{done.stdout}\n{done.stderr}"
        assert (done.returncode != 0) == fails, shown


def run_sh(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    commands = [line for line in block.text.splitlines() if line.startswith("evstore ")]
    assert commands, f"{block.name}: runs no evstore command; mark it if it cannot run here"
    for command in commands:
        done = space.run(["bash", "-c", command])
        assert done.returncode == 0, f"{block.name}: $ {command}\n{done.stdout}\n{done.stderr}"


def run_sql(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    if space.dsn is None:  # the server starts only if some document has SQL to run
        server: PgServer = request.getfixturevalue("pg_server")
        space.dsn = create_database(server, f"docs_{next(_databases)}")
    with psycopg.connect(space.dsn, autocommit=True) as conn:
        conn.execute(block.text)


RUNNERS = {"python": run_python, "console": run_console, "sh": run_sh, "sql": run_sql}


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_example_runs(
    block: Block, workspace_of: Callable[[Path], Workspace], request: pytest.FixtureRequest
) -> None:
    if block.skip:
        pytest.skip(f"marked in {block.name}: {block.skip}")
    runner = RUNNERS.get(block.language)
    assert runner, f"{block.name}: no way to run {block.language or 'plain'!r} blocks; mark it"
    runner(block, workspace_of(block.document), request)


def test_the_documents_have_examples() -> None:
    """The extraction finds the blocks: a broken pattern would pass every document."""
    languages = {block.language for block in BLOCKS}
    assert {"python", "console", "sh"} <= languages
    assert len([b for b in BLOCKS if b.document.name == "README.md"]) >= 8
