"""A job whose function comes from a script run as ``__main__`` raises: its remote
traceback names the script's file and shows the line, even when the job's host can
no longer read the script. The script runs in a Python of its own, as a user's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

SCRIPT = '''
import os
import sys

from gridmap_core import GridMapExecutor, JobException

SCRIPT = os.path.abspath(__file__)


def fail(x):
    os.replace(SCRIPT, SCRIPT + ".moved")  # the job's host no longer sees this file
    raise ValueError(f"bad {x}")  # the line the traceback shows


if __name__ == "__main__":
    settings = {"NUM_RESUBMITS": 0, "CHECK_FREQUENCY": 0.5, "HEARTBEAT_FREQUENCY": 0.5}
    options = {"mode": sys.argv[1]} if sys.argv[1:] else {}
    with GridMapExecutor(backend="local", max_processes=1, settings=settings,
                         backend_options=options) as executor:
        try:
            list(executor.map(fail, [1]))
        except JobException as error:
            print(error)
'''


@pytest.mark.parametrize("mode", ["runner", "pool"])
def test_a_main_script_s_traceback_shows_its_file_and_line(tmp_path: Path, mode: str) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), *(["runner"] if mode == "runner" else [])],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "raised ValueError: bad 1" in done.stdout, done.stdout + done.stderr
    assert "<dynamic-code>" not in done.stdout
    assert f'File "{script}", line 12, in fail' in done.stdout, done.stdout
    assert 'raise ValueError(f"bad {x}")  # the line the traceback shows' in done.stdout
