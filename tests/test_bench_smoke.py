"""The benchmarks still run: a quick pass, checked for its table, never for its times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_local_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_local.py", "--quick", "--skip-original",
         "--sizes", "100", "--runs", "1", "--array-jobs", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Pool" in result.stdout
    assert "gridmap" in result.stdout
