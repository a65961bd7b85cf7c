"""The targets of issue 19, each read from a run's measures and marked met or missed.

Every target is a ratio taken within one run, so it does not move with the machine as an
absolute figure would: reopen against the file load, the operator commands against the
file-reading script, a caller's p99 latency against the median commit of the same runs,
a throughput against its floor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from evstore._bench.latency import free_p99_over_commit

if TYPE_CHECKING:
    from evstore._bench.result import Measure

Check = dict[str, Any]  # what, figure, op, limit, met (None: reported, no target)


def check(what: str, figure: float, op: str, limit: float | None, unit: str = "x") -> Check:
    met = None if limit is None else (figure <= limit if op == "<=" else figure >= limit)
    return {"what": what, "figure": figure, "op": op, "limit": limit, "unit": unit, "met": met}


def checks(measures: Sequence[Measure]) -> list[Check]:
    """Every target the measures allow, in the order of the issue."""
    by_name = {m.name: m for m in measures}
    found: list[Check] = []
    found += _reopen_checks(by_name)
    found += _operator_checks(measures)
    found += _latency_checks(measures)
    found += _floor_checks(by_name)
    return found


def _sized(measures: Iterable[Measure], pattern: str) -> list[tuple[int, Measure]]:
    found = [(int(match[1]), m) for m in measures if (match := re.fullmatch(pattern, m.name))]
    return sorted(found, key=lambda pair: pair[0])  # stable: ls, pods, history stay in order


def _reopen_checks(by_name: dict[str, Measure]) -> list[Check]:
    found = []
    for size, m in _sized(by_name.values(), r"reopen_(\d+)"):
        found.append(check(f"reopen, clean close, {size:,}: / file load", m.ratio, "<=", 1.0))
    for size, m in _sized(by_name.values(), r"reopen_kill9_(\d+)"):
        found.append(check(f"reopen after kill -9, {size:,}: / file load", m.ratio, "<=", 2.0))
    return found


def _operator_checks(measures: Sequence[Measure]) -> list[Check]:
    sized = _sized(measures, r"operator_(?:ls|pods|history)_(\d+)")
    found = [
        check(f"evstore {m.name.split('_')[1]}, {size:,} containers: / script", m.ratio, "<=", 1.5)
        for size, m in sized
    ]
    if sized and "libraries_median" in sized[0][1].detail:  # what no command can go under
        detail = sized[0][1].detail
        ratio = detail["libraries_median"] / detail["script_median"]
        # runs before the lane imported msgspec, lmdb and click, and said so in no field
        libraries = detail.get("libraries", "msgspec, lmdb, click")
        found.append(check(f"python importing {libraries}: / script", ratio, "<=", None))
    return found


def _latency_checks(measures: Sequence[Measure]) -> list[Check]:
    """Each p99 against the median commit and, reported beside it where it is the callers'
    own share, the same with the free writer (see ``latency.free_p99``)."""
    found = []
    for m in measures:
        ratio = m.detail.get("latency", {}).get("p99_over_commit")
        if ratio is not None:
            what = m.description.removeprefix("update_sync/s, ")
            found.append(check(f"update_sync p99 / median commit, {what}", ratio, "<=", 3.0))
            free = free_p99_over_commit(m.detail)
            if free is not None:
                found.append(check(f"free writer's p99 / median commit, {what}", free, "<=", None))
    return found


# (measure, target on its first floor; None: reported only)
_FLOOR_TARGETS = (
    ("update_1", 0.8),
    ("update_sync_async_1000", 0.8),
    ("update_sync_64", None),
)


def _floor_checks(by_name: dict[str, Measure]) -> list[Check]:
    found = []
    for name, limit in _FLOOR_TARGETS:
        m = by_name.get(name)
        floors = m.detail.get("floors") if m is not None else None
        if m is None or not floors:
            continue
        floor = floors[0]
        what = f"{m.description}: / {floor['kind']} floor"
        found.append(check(what, floor["fraction"], ">=", limit, unit="of floor"))
    return found
