"""The crash-test harness itself, run for a few trials (the closing note reports a large run)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parent.parent / "tools" / "crashtest.py"


def test_crashtest_loses_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(TOOL), "--trials", "6", "--writers", "4", "--seed", "7",
         "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("crashtest: trials=6 writers=4 seed=7 acknowledged=")
    assert " lost=0 " in summary
    acknowledged = int(summary.split("acknowledged=")[1].split()[0])
    assert acknowledged > 0


def test_crashtest_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """On a terminal stderr shows how far the trials are; stdout ends with the same line."""
    terminal, child_end = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, str(TOOL), "--trials", "2", "--writers", "2", "--seed", "3",
             "--dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=child_end, text=True,
            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
        )
        os.close(child_end)
        shown = b""
        while chunk := _read(terminal):
            shown += chunk
        stdout, _ = proc.communicate(timeout=300)
    finally:
        os.close(terminal)
    assert proc.returncode == 0, stdout + shown.decode(errors="replace")
    assert b"trials" in shown and b"acknowledged=" in shown
    assert stdout.strip().splitlines()[-1].startswith("crashtest: trials=2 writers=2 seed=3 ")


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the child closed the terminal
        return b""
