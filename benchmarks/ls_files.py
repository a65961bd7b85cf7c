"""What an operator has without evstore: containerd's status files, read and shown as a table.

    python benchmarks/ls_files.py ROOT

Reads every ``ROOT/<id>/status`` (containerd's versioned JSON, as ``evstore bench`` writes
its baseline) and prints the table ``evstore ls`` prints for the same containers: id,
entity, state, pid, exit code and age, sorted by id. The standard library only, so that it
starts as fast as Python does: ``evstore bench`` times ``evstore ls``, ``pods`` and
``history`` against it.
"""

from __future__ import annotations

import json
import os
import sys
import time

NS = 1_000_000_000
AGE_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def state(status: dict[str, int]) -> str:
    """containerd's ``Status.State()``, in its order."""
    if status.get("FinishedAt"):
        return "EXITED"
    if status.get("StartedAt"):
        return "RUNNING"
    if status.get("CreatedAt"):
        return "CREATED"
    return "UNKNOWN"


def age(created_at: int, now: int) -> str:
    if created_at <= 0 or now < created_at:
        return "-"
    seconds = (now - created_at) // NS
    for unit, size in AGE_UNITS:
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return "0s"


def rows(root: str, now: int) -> list[tuple[str, ...]]:
    found = []
    with os.scandir(root) as it:
        for entry in it:
            try:
                with open(os.path.join(entry.path, "status"), "rb") as f:
                    status = json.load(f)
            except (OSError, ValueError):  # containerd loads it as unknown
                found.append((entry.name, "container", "UNKNOWN", "0", "255", "-"))
                continue
            found.append((
                entry.name, "container", state(status), str(status.get("Pid", 0)),
                str(status.get("ExitCode", 0)), age(status.get("CreatedAt", 0), now),
            ))
    return sorted(found)


def table(found: list[tuple[str, ...]]) -> str:
    """Aligned columns, the last three to the right, as ``evstore ls`` prints them."""
    lines = [("ID", "ENTITY", "STATE", "PID", "EXIT CODE", "AGE"), *found]
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i >= 3 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def main() -> int:
    if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
        print("usage: ls_files.py ROOT (a directory of <id>/status files)", file=sys.stderr)
        return 2
    print(table(rows(sys.argv[1], time.time_ns())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
