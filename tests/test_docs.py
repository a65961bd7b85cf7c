"""Every code example in README.md and docs/*.md runs as pasted.

The blocks of one document run in order in one fresh directory, as a reader pasting them one
after another would, so an example may use the store an earlier one made. The directory
holds ``tests/fixtures`` (read-only, linked) because the examples are run from a checkout.

- ``python``: a fresh interpreter runs the block; it must exit 0, and print what its comments
  say it prints, in that order: the comment after ``print(...)`` on its line, and the
  comment lines right under a line that calls ``print``.
- ``console``: every ``$ command`` line runs, as the shell would run it; it must fail exactly
  when the transcript shows an ``error:`` line under it, and succeed otherwise. The rest of the
  transcript (times, ages, sizes) is not compared. ``$DSN`` names a database of the suite's
  PostgreSQL, the same for the whole document.
- ``sh``: every line starting with ``evstore`` runs, and must exit 0.
- ``sql``: the statements run in another database of that server, one per document, so
  that a schema the document shows can be created as shown.

A block that cannot run here is marked on the line before its fence with
``<!-- docs-test: skip: why -->``; it shows as a skip with that reason (``pytest -ra`` lists
each one), so the summary line counts the blocks run against those skipped by marker. A block
of another language, or one with nothing to run and no marker, fails: nothing goes unrun
silently.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from evstore._fleet.pgserver import PgServer, create_database

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
        self.databases: dict[str, str] = {}  # purpose -> DSN, made when first asked for
        (path / "tests").mkdir()
        (path / "tests" / "fixtures").symlink_to(ROOT / "tests" / "fixtures")

    def database(self, purpose: str, request: pytest.FixtureRequest) -> str:
        """The DSN of this document's database for ``purpose``; the server starts only if a
        document needs one."""
        if purpose not in self.databases:
            server: PgServer = request.getfixturevalue("pg_server")
            self.databases[purpose] = create_database(server, f"docs_{next(_databases)}")
        return self.databases[purpose]

    def run(self, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` here, with this interpreter's scripts first on PATH."""
        path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        return subprocess.run(
            argv, cwd=self.path, env={**os.environ, "PATH": path, **env}, capture_output=True,
            text=True, timeout=RUN_TIMEOUT,
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


def shown_output(code: str) -> list[str]:
    """The lines the comments of ``code`` say its ``print`` calls print, in order."""
    shown: list[str] = []
    after_print = False
    for line in code.splitlines():
        text = line.strip()
        if after_print and text.startswith("# "):
            shown.append(text[2:])
            continue
        statement, _, comment = line.partition("  # ")
        after_print = "print(" in statement
        if after_print and comment:
            shown.append(comment.strip())
    return shown


def is_in_order(wanted: list[str], lines: list[str]) -> bool:
    """Whether ``wanted`` are among ``lines``, in this order."""
    rest = iter(lines)
    return all(any(line.strip() == want for line in rest) for want in wanted)


def run_python(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    done = space.run([sys.executable, "-c", block.text])
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"
    wanted = shown_output(block.text)
    assert is_in_order(wanted, done.stdout.splitlines()), (
        f"{block.name} printed:\n{done.stdout}\nwhere its comments show:\n" + "\n".join(wanted)
    )


def console_commands(text: str) -> list[tuple[str, bool]]:
    """Each ``$ command`` of a transcript, and whether its output shows an error."""
    commands: list[tuple[str, bool]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], False))
        elif line.startswith("error:") and commands:
            commands[-1] = (commands[-1][0], True)
    return commands


# Runs a block's evstore commands one after another in one interpreter, through the console
# script's own entry point, as the shell would (variables expanded, quotes and comments
# parsed), writing their exit statuses to the file named second: an interpreter and an import
# per block, not per command, keep the test short.
_SESSION = """
import json, os, shlex, sys, traceback
from importlib.metadata import entry_points

(main,) = [point.load() for point in entry_points(group="console_scripts", name="evstore")]
commands, out = json.loads(sys.argv[1]), sys.argv[2]
sys.stderr = sys.stdout  # one stream, in order, for the failure message
codes = []
for command in commands:
    print("$", command, flush=True)
    sys.argv = shlex.split(os.path.expandvars(command), comments=True)
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
    except Exception:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    codes.append(code or 0)
with open(out, "w") as file:
    json.dump(codes, file)
"""


def run_commands(space: Workspace, commands: list[str], **env: str) -> tuple[list[int], str]:
    """The exit status of each command, in order, and everything they printed."""
    if not all(command.startswith("evstore ") for command in commands):
        runs = [space.run(["bash", "-c", command], **env) for command in commands]
        return [run.returncode for run in runs], "".join(r.stdout + r.stderr for r in runs)
    codes = space.path / ".exit-codes.json"
    done = space.run([sys.executable, "-c", _SESSION, json.dumps(commands), str(codes)], **env)
    printed = done.stdout + done.stderr
    assert done.returncode == 0 and codes.exists(), printed
    return json.loads(codes.read_text()), printed


def run_console(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    commands = console_commands(block.text)
    assert commands, f"{block.name}: a transcript without a '$ ' command"
    uses_dsn = any("$DSN" in command for command, _ in commands)
    env = {"DSN": space.database("DSN", request)} if uses_dsn else {}
    codes, printed = run_commands(space, [command for command, _ in commands], **env)
    expected = [fails for _, fails in commands]
    assert [code != 0 for code in codes] == expected, f"{block.name}:\n{printed}"


def run_sh(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    commands = [line for line in block.text.splitlines() if line.startswith("evstore ")]
    assert commands, f"{block.name}: runs no evstore command; mark it if it cannot run here"
    codes, printed = run_commands(space, commands)
    assert codes == [0] * len(commands), f"{block.name}:\n{printed}"


def run_sql(block: Block, space: Workspace, request: pytest.FixtureRequest) -> None:
    with psycopg.connect(space.database("sql", request), autocommit=True) as conn:
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


def test_shown_output_is_read_from_the_comments() -> None:
    code = 'x = 1  # not printed\nprint(x)   # 1\nfor y in "ab":\n    print(y)\n# a\n# b\n\n# no\n'
    assert shown_output(code) == ["1", "a", "b"]
    assert is_in_order(["1", "b"], ["1", "a", "b"])
    assert not is_in_order(["b", "a"], ["a", "b"])


def test_the_documents_have_examples() -> None:
    """The extraction finds the blocks: a broken pattern would pass every document."""
    languages = {block.language for block in BLOCKS}
    assert {"python", "console", "sh"} <= languages
    assert len([b for b in BLOCKS if b.document.name == "README.md"]) >= 8
