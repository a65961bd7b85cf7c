"""Every error a user can get is an exported ``EvstoreError`` subclass (also its old base,
for callers that catch that), and an error raised while handling another keeps it as its
cause."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import msgspec
import pytest

import evstore
import evstore._core.errors
from evstore._bench import BenchConfig
from evstore._core.times import parse_age, parse_time
from evstore._fleet.pgserver import ServerError
from evstore._views.containerd import decode_status
from evstore._views.importer import StatusError

ROOT = Path(__file__).resolve().parent.parent
# exception classes defined outside errors.py, and why a user never gets them
INTERNAL = {
    "evstore._cli.errors.UserError": "click shows it as one error line and exits",
    "evstore._cli.errors.UsageFailure": "click shows it as one error line and exits",
    "evstore._cli.errors.Interrupted": "click shows it as one line and exits 130",
    "evstore._core.codec.RecordError": "a damaged record: readers skip it and verify reports it",
}


def evstore_modules() -> list[str]:
    found = ["evstore"]
    for info in pkgutil.walk_packages(evstore.__path__, "evstore."):
        found.append(info.name)
    return found


def test_every_exception_class_is_an_exported_evstore_error() -> None:
    outside = []
    for name in evstore_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not (isinstance(value, type) and issubclass(value, BaseException)):
                continue
            if value.__module__ != name or attr != value.__name__:
                continue  # imported or an alias (containerd.StatusError)
            qualified = f"{name}.{attr}"
            if name == "evstore._core.errors":
                assert issubclass(value, evstore.EvstoreError), qualified
                assert attr in evstore.__all__ and getattr(evstore, attr) is value, qualified
            elif qualified not in INTERNAL:
                outside.append(qualified)
    assert outside == []


@pytest.mark.parametrize(("error", "old_base"), [
    (evstore.StoreNotFoundError, evstore.NotFoundError),
    (evstore.StoreNotFoundError, FileNotFoundError),
    (evstore.ContainerdStatusError, ValueError),
    (evstore.PostgresServerError, RuntimeError),
    (evstore.BenchError, RuntimeError),
    (evstore.MissingExtraError, ImportError),
])
def test_new_errors_keep_the_base_callers_caught(
    error: type[Exception], old_base: type[Exception]
) -> None:
    assert issubclass(error, evstore.EvstoreError) and issubclass(error, old_base)


def test_a_missing_store_is_a_store_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(evstore.StoreNotFoundError) as caught:
        evstore.open(tmp_path / "none", readonly=True)
    assert isinstance(caught.value, FileNotFoundError)
    assert isinstance(caught.value, evstore.NotFoundError)
    assert str(caught.value) == f"{tmp_path / 'none'}: no evstore store there"


def test_old_names_are_the_exported_errors() -> None:
    assert StatusError is evstore.ContainerdStatusError
    assert ServerError is evstore.PostgresServerError


def test_a_containerd_status_error_keeps_its_cause() -> None:
    with pytest.raises(evstore.ContainerdStatusError) as caught:
        decode_status(b"{not json")
    assert isinstance(caught.value.__cause__, msgspec.DecodeError)


@pytest.mark.parametrize(("parse", "text"), [
    (parse_time, "yesterday"), (parse_time, "2025-13-01T00:00:00Z"), (parse_age, "3 weeks"),
])
def test_time_parsers_raise_invalid_input(parse: object, text: str) -> None:
    assert callable(parse)
    with pytest.raises(evstore.InvalidInputError):
        parse(text)


def test_a_bad_bench_config_is_invalid_input() -> None:
    with pytest.raises(evstore.InvalidInputError):
        BenchConfig(seconds=0).check()


def test_errors_raised_while_handling_another_keep_it_as_their_cause() -> None:
    """No ``raise ... from None`` and no bare ``raise X(...)`` in an ``except`` block."""
    found = []
    for path in sorted((ROOT / "evstore").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for handler in ast.walk(tree):
            if not isinstance(handler, ast.ExceptHandler):
                continue
            for node in ast.walk(handler):
                if isinstance(node, ast.Raise) and node.exc is not None and (
                    node.cause is None
                    or (isinstance(node.cause, ast.Constant) and node.cause.value is None)
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


def test_errors_module_documents_every_class() -> None:
    for name, value in inspect.getmembers(evstore._core.errors, inspect.isclass):
        if value.__module__ == "evstore._core.errors":
            assert value.__doc__, name


def test_a_containerd_root_of_the_wrong_type_is_invalid_input(store: evstore.Store) -> None:
    from evstore.importer import import_containerd

    with pytest.raises(evstore.InvalidInputError, match="root must be a str"):
        import_containerd(None, store)  # type: ignore[arg-type]


@pytest.mark.parametrize(("dsn", "node", "what"), [
    (None, "n1", "dsn must be a string"), ("host=/nowhere", 5, "node must be a string"),
])
def test_shipping_arguments_of_the_wrong_type_are_invalid_input(
    store: evstore.Store, dsn: object, node: object, what: str
) -> None:
    pytest.importorskip("psycopg")
    from evstore.fleet import ship_store

    with pytest.raises(evstore.InvalidInputError, match=what):
        ship_store(store, dsn, node)  # type: ignore[arg-type]


def test_a_failing_operator_command_is_a_bench_error() -> None:
    from evstore._bench.operator import timed

    with pytest.raises(evstore.BenchError, match="failed"):
        timed(["false"], {})


def test_a_negative_operator_count_is_invalid_input() -> None:
    with pytest.raises(evstore.InvalidInputError, match="operator_containers"):
        BenchConfig(operator_containers=-1).check()


def test_the_recorder_reads_a_missing_entry_as_none() -> None:
    """It catches the store's own errors, not any ``KeyError`` (a bug would hide)."""
    from evstore._views.cri import _current

    class Entries:
        def __init__(self, error: Exception) -> None:
            self.error = error

        def get(self, ident: str) -> object:
            raise self.error

    for error in (evstore.NotFoundError("c"), evstore.AmbiguousIDError("c")):
        assert _current(Entries(error), "c") is None  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        _current(Entries(KeyError("c")), "c")  # type: ignore[arg-type]
