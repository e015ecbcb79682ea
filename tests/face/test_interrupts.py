"""A Ctrl-C that the kernel hands to another thread than the main one still stops a map.

The kernel may deliver a process's SIGINT to any thread that does not block it; CPython
then raises KeyboardInterrupt only when the main thread next runs. These tests deliver
it to a non-main thread on purpose (``pthread_kill``), which a plain ``kill`` leaves to
chance.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT

PRELUDE = """
import os, signal, sys, threading, time

def ctrl_c_elsewhere(after, thread=None):
    '''SIGINT to a thread other than the main one, ``after`` seconds from now.'''
    def target():
        time.sleep(after)
        victim = thread or next(t for t in threading.enumerate()
                                if t is not threading.main_thread()
                                and t is not threading.current_thread())
        print("signalling", victim.name, flush=True)
        signal.pthread_kill(victim.ident, signal.SIGINT)
    threading.Thread(target=target, name="ctrl-c", daemon=True).start()

def report(wait):
    started = time.monotonic()
    try:
        wait()
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.2f} s", flush=True)
        sys.exit(7)
    print("not interrupted", flush=True)
"""

WAITS = {
    "wait_all": "wait_all([run])",
    "Run.wait": "run.wait()",
    "Run.wait_for": "run.wait_for(0)",
}


def _run(body: str, timeout: float = 30) -> tuple[int, str, float]:
    script = PRELUDE + textwrap.dedent(body)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.parametrize("wait", WAITS)
def test_a_wait_for_results_ends_on_a_ctrl_c_received_by_another_thread(wait: str) -> None:
    code, output, _ = _run(f"""
        from gridmap_core.map.runs import Run, wait_all
        run = Run(1)  # a job that never ends
        sleeper = threading.Thread(target=time.sleep, args=(60,), name="sleeper", daemon=True)
        sleeper.start()
        ctrl_c_elsewhere(0.3, sleeper)
        report(lambda: {WAITS[wait]})
    """)
    assert code == 7, output
    assert "signalling sleeper" in output
    seconds = float(output.split("interrupted after ")[1].split()[0])
    assert seconds < 5, output


def test_a_map_ends_on_a_ctrl_c_received_by_a_backend_thread(tmp_path: Path) -> None:
    # The local backend's own thread takes the signal; the main thread waits in grid_map.
    marker = tmp_path / "started"
    code, output, elapsed = _run(f"""
        from pathlib import Path
        from gridmap_core import grid_map

        def work(x):
            Path({str(marker)!r}).touch()
            time.sleep(60)

        ctrl_c_elsewhere(3)
        report(lambda: grid_map(work, range(4), local=True, max_processes=2))
    """, timeout=60)
    assert code == 7, output
    assert marker.exists(), output  # the jobs were running when it came
    assert "signalling" in output and "signalling ctrl-c" not in output
    assert elapsed < 30, output
