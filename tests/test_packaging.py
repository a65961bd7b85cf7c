"""Every library the package imports is one it declares, so `pip install .` alone runs it.

CI installs the test extra, whose packages bring others along (trio brings sniffio); a
library that only arrives that way works in CI and fails for a user who installed evstore
alone, as `sniffio` did once anyio stopped depending on it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0].lower() for req in requirements}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level module names ``path`` imports: at module level, and inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    top: set[str] = set()
    nested: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found = {name.split(".")[0] for name in names} - set(sys.stdlib_module_names)
        (top if node.col_offset == 0 else nested).update(found - {"evstore"})
    return top, nested


# modules that are an extra's feature, loaded only where it is used (the command line checks
# the extra first): they may import what the extra brings when they load
FEATURE_MODULES = {"database.py": "fleet", "shipping.py": "fleet"}  # in evstore/_fleet/


def test_every_imported_library_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = _requirement_names(project["dependencies"])
    optional = project["optional-dependencies"]
    extras = _requirement_names([req for reqs in optional.values() for req in reqs])
    undeclared = []
    for path in sorted((ROOT / "evstore").rglob("*.py")):
        top, nested = _imports(path)
        feature = FEATURE_MODULES.get(path.name)
        loaded_with = required | (_requirement_names(optional[feature]) if feature else set())
        # imported when a module loads: installed with evstore itself (or with the extra
        # the module serves); imported in a function (a plot, a peer, trio when trio runs):
        # at least an extra must name it
        undeclared += [f"{path.name}: {name}" for name in sorted(top - loaded_with)]
        undeclared += [f"{path.name}: {name}" for name in sorted(nested - required - extras)]
    assert undeclared == []
