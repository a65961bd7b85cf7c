"""The tuning keywords of ``open`` and ``open_async``, typed for users' type checkers."""

from __future__ import annotations

from typing import TypedDict


class Tuning(TypedDict, total=False):
    """The tuning keywords of ``open`` and ``open_async`` (each an integer of at least 1)."""

    map_size: int
    snapshot_every: int
    checkpoint_every: int
    max_batch: int
    max_pending: int
    index_every: int
