"""Shared fixtures: a fresh store directory and a store opened on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import evstore

pytest_plugins = ["pgserver"]  # a real PostgreSQL for the fleet tests (tests/pgserver.py)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A path where no store exists yet (opening it creates one)."""
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[evstore.Store]:
    """A writable store, closed after the test."""
    s = evstore.open(store_path)
    try:
        yield s
    finally:
        s.close()
