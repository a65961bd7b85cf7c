"""Benchmarks: evstore against containerd's per-update fsync'd JSON file checkpoint."""

from .baseline import FileCheckpoint
from .runner import BenchConfig, BenchResult, Measure, count_steps, run

__all__ = ["BenchConfig", "BenchResult", "FileCheckpoint", "Measure", "count_steps", "run"]
