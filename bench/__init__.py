"""Benchmark scripts: each prints ratios against a baseline measured in the same run, JSON last."""

# Before any benchmark imports torch: daemon/__init__.py sets the OpenMP wait policy the daemon runs
# with, so a benchmark on the main thread measures what the daemon's worker threads see.
import daemon  # noqa: F401
