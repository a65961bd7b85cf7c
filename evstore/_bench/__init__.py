"""Benchmarks: evstore against containerd's per-update fsync'd JSON file checkpoint."""

from evstore._bench.baseline import FileCheckpoint
from evstore._bench.config import BenchConfig
from evstore._bench.result import BenchResult, Measure
from evstore._bench.runner import count_steps, run

__all__ = ["BenchConfig", "BenchResult", "FileCheckpoint", "Measure", "count_steps", "run"]
