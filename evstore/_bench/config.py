"""What a bench run does and how it reports its progress; every row reads these."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evstore._core.errors import InvalidInputError

Progress = Callable[[str, int, int], None]  # (what was just done, steps done, steps in all)


@dataclass(frozen=True)
class BenchConfig:
    """What to run. ``seconds`` is the length of one timed run; each measure has ``repeats``."""

    seconds: float = 5.0
    repeats: int = 5
    pool: int = 64  # containers pre-added for the throughput measures
    threads: tuple[int, ...] = (8, 64)
    tasks: tuple[int, ...] = (1, 100, 1_000)  # concurrent async tasks doing update_sync
    get_writers: int = 8  # update_sync threads running while status.get is timed
    reopen_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    events: int = 50  # events per container in the reopen store (the first is the add)
    directory: Path | None = None  # where the work directory is made
    peer: bool = True  # measure the eventsourcing library too, when it is installed
    peer_threads: tuple[int, ...] = (8, 64)  # peer thread counts (and 1), also in threads
    peer_reopen_sizes: tuple[int, ...] = (1_000,)  # peer reopen, at sizes also in reopen_sizes
    fleet_stores: int = 0  # stores shipping at once into one PostgreSQL (0: no fleet figure)
    fleet_repeats: int = 0  # runs of the fleet figure (0: ``repeats``)
    floors: bool = True  # measure each throughput's floors (free writer, thread hand-off)
    operator_containers: int = 1_000  # the store the operator commands read (0: none)

    @property
    def round_seconds(self) -> float:
        """How long each of the ``repeats`` rounds of a short measure (a reopen, a command)
        takes samples for: a fifth of a timed run."""
        return self.seconds / 5

    @classmethod
    def quick(cls, **overrides: Any) -> BenchConfig:
        """About two minutes on a 2-core machine."""
        base = cls(
            seconds=1.0, repeats=3, reopen_sizes=(1_000, 10_000), peer_threads=(),
            peer_reopen_sizes=(), fleet_stores=8, fleet_repeats=1,
        )
        return dataclasses.replace(base, **overrides)

    @classmethod
    def full(cls, **overrides: Any) -> BenchConfig:
        return dataclasses.replace(cls(fleet_stores=8), **overrides)

    def check(self) -> None:
        if self.seconds <= 0 or self.repeats < 1 or self.pool < 1 or self.events < 2:
            raise InvalidInputError("seconds, repeats, pool must be positive and events at least 2")
        counts = (
            *self.threads, *self.tasks, self.get_writers, *self.reopen_sizes,
            *self.peer_threads, *self.peer_reopen_sizes,
        )
        if self.operator_containers < 0:
            raise InvalidInputError("operator_containers must not be negative")
        if any(n < 1 for n in counts):
            raise InvalidInputError(
                "thread, task and writer counts and reopen sizes must be positive"
            )


class Steps:
    """Counts finished steps and tells the progress callback, if any."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress

    def __call__(self, what: str) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress(what, self.done, self.total)
