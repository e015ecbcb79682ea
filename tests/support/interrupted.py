"""Ctrl-C of a submitting process whose map runs on a real cluster (SGE and Slurm tests).

The submitting process writes its output to a file, not a pipe: a pipe nobody reads
fills up and blocks whichever thread logs next. When it does not end in time, the test
fails with a dump of every thread's stack, so a hang shows where it hangs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SCRIPT = """
import faulthandler, signal, sys, time
from pathlib import Path
from gridmap_core import grid_map

faulthandler.register(signal.SIGUSR1, all_threads=True)

def work(x):
    Path({started!r}).touch()
    time.sleep(300)

grid_map(work, range({count}), name={name!r}, backend={backend!r}, require_cluster=True,
         temp_dir={temp!r}{extra})
"""


def interrupt_a_running_map(tmp_path: Path, backend: str, name: str,
                            listed: Callable[[], str], clean_up: Sequence[str], *,
                            extra: str = "", count: int = 40) -> None:
    """Start a map of ``count`` sleeping jobs, Ctrl-C it once one runs, and check that
    it ends and leaves nothing that ``listed`` (the scheduler's job names) shows."""
    started = tmp_path / "started"
    script = tmp_path / "submit.py"
    script.write_text(textwrap.dedent(SCRIPT.format(
        started=str(started), count=count, name=name, backend=backend, temp=str(tmp_path),
        extra=extra)))
    output = tmp_path / "submit.err"
    # Idle detection would end the sleepers and resubmit them: not what is tested here.
    env = {**os.environ, "MAX_IDLE_HEARTBEATS": "0"}
    with open(output, "wb") as sink:
        process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                                   stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, "no job started"
            time.sleep(0.2)
        assert name in listed()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGUSR1)  # faulthandler: every thread's stack
            time.sleep(1)
            raise AssertionError("the map did not end within 60 s of Ctrl-C:\n"
                                 + output.read_text()[-20000:]) from None
        assert "KeyboardInterrupt" in output.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            subprocess.run([*clean_up, name], capture_output=True)
    # Every job of the map, running or waiting, is gone or going.
    deadline = time.monotonic() + 30
    while name in (names := listed()):
        assert time.monotonic() < deadline, names
        time.sleep(0.5)
