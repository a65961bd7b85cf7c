"""Benchmarks: evstore against containerd's per-update fsync'd JSON file checkpoint."""

from evstore._bench.baseline import FileCheckpoint
from evstore._bench.runner import BenchConfig, BenchResult, Measure, count_steps, run

__all__ = ["BenchConfig", "BenchResult", "FileCheckpoint", "Measure", "count_steps", "run"]
