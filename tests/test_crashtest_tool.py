"""The crash-test harness itself, run for a few trials (the closing note reports a large run)."""

from __future__ import annotations

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
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("crashtest: trials=6 writers=4 seed=7 acknowledged=")
    assert " lost=0 " in summary
    acknowledged = int(summary.split("acknowledged=")[1].split()[0])
    assert acknowledged > 0
