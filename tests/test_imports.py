"""Dependencies point one way: no evstore module imports, even inside a function, one that
imports it back (directly or through others). Imports under ``TYPE_CHECKING`` are for type
checkers only and do not count.

KNOWN_CYCLES lists the cycles not broken yet; it may only shrink: a cycle not listed fails,
and so does a listed one that is gone (delete it from the list).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import evstore

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "evstore"

KNOWN_CYCLES: set[frozenset[str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def type_checking_only(tree: ast.Module) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for child in node.body:
                skipped.update(id(inner) for inner in ast.walk(child))
    return skipped


def target(name: str, node: ast.ImportFrom, alias: str) -> str:
    """The module an ``from ... import alias`` in module ``name`` loads: the submodule
    when ``alias`` is one, else the module itself; a name the package loads on first use
    counts as the module that defines it."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    if f"{module}.{alias}" in MODULES:
        return f"{module}.{alias}"
    if module == "evstore" and alias in evstore._LAZY:
        return f"evstore.{evstore._LAZY[alias]}"
    return module


def imports(name: str) -> set[str]:
    """The evstore modules ``name`` loads when it runs (at module level or in a function)."""
    tree = ast.parse(MODULES[name].read_text())
    skipped = type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(target(name, node, alias.name) for alias in node.names)
    return {module for module in found if module in MODULES and module != name}


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in sorted(graph[node]):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_imports() -> None:
    for name in MODULES:
        importlib.import_module(name)


def test_no_new_import_cycles_and_known_ones_only_shrink() -> None:
    found = cycles({name: imports(name) for name in MODULES})
    assert found - KNOWN_CYCLES == set(), "new import cycle"
    assert KNOWN_CYCLES - found == set(), "a known cycle is gone: delete it from KNOWN_CYCLES"


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == {frozenset({"a", "b", "c"})}


# the layers, from the data's path up: a module may import its own layer and those below
LAYERS = [
    "evstore._core", "evstore._storage", "evstore._history", "evstore._ops", "evstore._views",
    "evstore._store", "evstore._fleet", "evstore", "evstore._bench", "evstore._cli",
    "evstore.__main__",
]


def layer(name: str) -> int:
    """The rank of a module's layer; the public modules (``evstore.aio``, ...) sit on the
    private ones and under the command line."""
    for rank in range(len(LAYERS) - 1, -1, -1):
        prefix = LAYERS[rank]
        if name == prefix or (prefix != "evstore" and name.startswith(prefix + ".")):
            return rank
    return LAYERS.index("evstore")


def test_dependencies_point_down_the_layers() -> None:
    upward = sorted(
        f"{name} -> {found}" for name in MODULES for found in imports(name)
        if layer(found) > layer(name)
    )
    assert upward == []


def test_only_storage_imports_lmdb() -> None:
    importers = sorted(
        name for name, path in MODULES.items()
        if any(
            (isinstance(node, ast.Import) and any(a.name == "lmdb" for a in node.names))
            or (isinstance(node, ast.ImportFrom) and node.module == "lmdb")
            for node in ast.walk(ast.parse(path.read_text()))
        )
    )
    assert importers and all(name.startswith("evstore._storage.") for name in importers)


def test_the_layer_check_sees_an_upward_import() -> None:
    assert layer("evstore._storage.log") < layer("evstore._views.pods")
    assert layer("evstore.aio") > layer("evstore._store.aio")
    assert layer("evstore._cli.main") > layer("evstore.aio")


def test_the_architecture_page_names_every_module() -> None:
    """docs/architecture.md, the map an outside engineer starts from, stays true."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"^\| `(evstore/[\w/]+\.py)` \|", page, flags=re.M))
    files = {str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")}
    assert named == files
