"""The benchmarks still run: a quick pass, checked for its table, never for its times."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT


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


def test_bench_journal_quick(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "bench/bench_journal.py", "--jobs", "20", "--runs", "1",
         "--temp-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A kept journal took time in its writer; a skipped one is the baseline.
    assert re.search(r"^\s+kept \|\s+[\d.]+ \|\s+[\d.]+x \|\s+[\d.]+ \|", result.stdout,
                     re.MULTILINE), result.stdout
    assert re.search(r"^skipped \|\s+[\d.]+ \|\s+1\.00x", result.stdout, re.MULTILINE), \
        result.stdout


# -- the cluster benchmarks: one harness (bench/cluster_*.py), an adapter per scheduler --

def _bench(script: str, *options: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, f"bench/{script}", *options], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _medians(out: str) -> dict[str, str]:
    """The table of contenders (from its header to the blank line): label -> median."""
    block = out[out.index("\ncontender "):].split("\n\n")[0]
    return {label.strip(): median for label, median
            in re.findall(r"^(.+?) \| +(-|\d+\.\d\d s) \| ", block, re.MULTILINE)}


def _ratios(out: str) -> dict[str, str]:
    """The tables of ratios: name -> value."""
    return dict(re.findall(r"^([\w-]+/[\w-]+) +\| +(-|\d+\.\d\dx)", out, re.MULTILINE))


def test_cluster_benchmarks_keep_their_own_options() -> None:
    sge = _bench("bench_sge.py", "--help", timeout=60)
    slurm = _bench("bench_slurm.py", "--help", timeout=60)
    assert sge.returncode == 0 and slurm.returncode == 0, sge.stderr + slurm.stderr
    for option in ("--runs RUNS", "--skip-original", "--skip-gridmap", "--queue", "--sge-env",
                   "--idle-wait", "gridmap015-sge"):
        assert option in sge.stdout, option
    for option in ("--rounds ROUNDS, --runs ROUNDS", "--skip-raw", "--skip-submitit",
                   "--skip-variants", "--submitit-poll", "--partition", ".venvs/submitit"):
        assert option in slurm.stdout, option
    assert "--partition" not in sge.stdout and "--sge-env" not in slurm.stdout


def test_slurm_benchmark_without_slurm_says_why_and_exits_3() -> None:
    # clean_settings points SLURM_CONF at a file that does not exist.
    result = _bench("bench_slurm.py", "--quick", timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Slurm is not available here: SLURM_CONF=" in result.stderr
    assert result.stdout == ""


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The harness's modules; they import their siblings by name, as the scripts do."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return SimpleNamespace(child=importlib.import_module("cluster_child"),
                           runs=importlib.import_module("cluster_runs"))


def _answered(harness: SimpleNamespace, tmp_path: Path, answer: dict[str, object]) -> Any:
    """What the harness makes of a Python contender's answer, from a stand-in child."""
    tmp_path.mkdir(exist_ok=True)
    script = tmp_path / "child.py"
    script.write_text(f"import json\nprint('@@BENCH ' + json.dumps({answer!r}))\n")
    bench = SimpleNamespace(script=script, function=lambda x: 2 * x,
                            child_arguments=lambda args, contender: [],
                            child_settings=lambda contender: {},
                            job_name=lambda prefix, contender: prefix + contender)
    ctx = harness.runs.Context(bench, SimpleNamespace(timeout=60),
                               SimpleNamespace(prefix="gmbenchtest"), dict(os.environ),
                               tmp_path, print)
    workdir = tmp_path / "run"
    workdir.mkdir()
    return harness.runs.run_python(ctx, "gridmap", 3, workdir)


def test_a_contenders_answer_is_split_into_its_figures(harness: SimpleNamespace,
                                                       tmp_path: Path) -> None:
    outcome = _answered(harness, tmp_path, {
        "status": "ok", "seconds": 1.5, "results": [0, 2, 4], "version": "9", "file": "/x",
        "python": "3.11", "submit_seconds": 0.25, "array": "7"})
    # Without the status: in the JSON it would overwrite the contender's own status.
    assert outcome.info == {"version": "9", "file": "/x", "python": "3.11"}
    assert outcome.details == {"submit_seconds": 0.25, "array": "7"}
    assert outcome.seconds == 1.5


def test_a_contenders_wrong_results_or_absence_are_told_apart(harness: SimpleNamespace,
                                                               tmp_path: Path) -> None:
    with pytest.raises(harness.child.ContenderFailed, match="first difference at index 2"):
        _answered(harness, tmp_path / "a", {"status": "ok", "seconds": 1, "results": [0, 2, 5]})
    with pytest.raises(harness.child.ContenderUnavailable, match="no backend"):
        _answered(harness, tmp_path / "b", {"status": "unavailable", "reason": "no backend"})


def _two_jobs(script: str, title: str, runs: str, *options: str) -> tuple[str, list[str]]:
    """A run of two jobs a contender: the report, and the contenders without a median."""
    result = _bench(script, "--jobs", "2", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith(f"gridmap {title} benchmark, ")
    assert f"\n2 trivial jobs per run, median of 1 interleaved {runs}" in out, out
    return out, [name for name, median in _medians(out).items() if median == "-"]


def test_sge_benchmark_runs(sge_cluster: str) -> None:
    out, missing = _two_jobs("bench_sge.py", "SGE", "run; cluster queues: all.q",
                             "--runs", "1", "--skip-original")
    assert list(_medians(out)) == ["raw qsub array", "GridMap 0.15.0",
                                   'gridmap, backend "sge"'], out
    assert missing == ["GridMap 0.15.0"] and "skipped: --skip-original" in out
    assert list(_ratios(out)) == ["gridmap/raw", "gridmap/original", "original/raw"], out
    assert re.search(r"^Target: gridmap within 1.3x of raw: \d+\.\d\dx, (met|NOT met)$",
                     out, re.MULTILINE), out


def test_slurm_benchmark_runs(slurm_cluster: str) -> None:
    out, missing = _two_jobs("bench_slurm.py", "Slurm", "round\n",
                             "--rounds", "1", "--skip-submitit")
    assert list(_medians(out)) == ["raw sbatch array (true)",
                                   "raw sbatch array (python -c pass)", "submitit, job.result()",
                                   "submitit, poll_interval 0.1 s", 'gridmap, backend "slurm"',
                                   "gridmap, a runner per job (REUSE_RUNNERS off)"], out
    assert missing == ["submitit, job.result()", "submitit, poll_interval 0.1 s"], out
    assert list(_ratios(out)) == ["gridmap/raw", "gridmap/submitit", "submitit/raw",
                                  "gridmap/raw-python", "raw-python/raw",
                                  "gridmap-fresh/raw", "gridmap/gridmap-fresh"], out
    assert re.search(r"^gridmap/raw +\| +\d+\.\d\dx \| <= 1.3x: (met|NOT met)$", out,
                     re.MULTILINE), out
