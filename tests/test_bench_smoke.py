"""The benchmarks still run: a quick pass, checked for its table, never for its times."""

from __future__ import annotations

import re
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


def test_bench_monitor_quick() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_monitor.py", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Heartbeats handled by MonitoredSession's thread" in out
    assert re.search(r"^\s+1,000\s+\d+\s+\d+\s+[\d,]+\s+[\d.]+ us\s+[\d,]+\s+[\d.]+ us\s+"
                     r"[\d.]+x", out, re.MULTILINE), out
    assert "expected 10 deaths, found 10, missed 0, wrongly declared 0" in out
    assert re.search(r"^\s+[\d,]+\s+[\d.]+\s+[\d,]+x", out, re.MULTILINE), out  # MB/s row
    assert "no missed or wrong death: met" in out


def test_bench_status_page_quick() -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_status_page.py", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"server listening \+ first page served\s*\|\s+[\d.]+", result.stdout)
    assert re.search(r"^trivial x200\s+\|(\s+[\d.]+\s+\|){4}\s+[\d.]+x", result.stdout,
                     re.MULTILINE), result.stdout
    assert re.search(r"\((\d+) requests answered", result.stdout).group(1) != "0"  # type: ignore[union-attr]
