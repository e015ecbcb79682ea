"""The cluster examples run, and show for each call the scheduler job and array element
it ran in, which is the id gridmap reports for it (``job.id``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT

pytestmark = pytest.mark.timeout(300)


def run_example(name: str) -> list[re.Match[str]]:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4, done.stdout
    pattern = re.compile(r"square(\d): \1 squared is (\d+), on \S+ in (?:Grid Engine|Slurm) "
                         r"job (\d+), array element (\d+) \((?:partition \S+, )?job\.id (\S+)\)")
    matches = [pattern.fullmatch(line) for line in lines]
    assert all(matches), lines
    found = [m for m in matches if m is not None]
    assert [int(m.group(2)) for m in found] == [0, 1, 4, 9], lines
    return found


def test_sge_example_shows_the_element_each_call_ran_in(sge_cluster: str) -> None:
    for match in run_example("sge_example.py"):
        job, task, job_id = match.group(3), match.group(4), match.group(5)
        assert job_id == f"{job}.{task}", match.group(0)


def test_slurm_example_shows_the_element_each_call_ran_in(slurm_cluster: str) -> None:
    for match in run_example("slurm_example.py"):
        job, task, job_id = match.group(3), match.group(4), match.group(5)
        assert job_id == f"{job}_{task}", match.group(0)
