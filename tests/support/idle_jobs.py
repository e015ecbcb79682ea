"""Jobs that wait in the ways well-behaved jobs do, for tests of idle detection.

This module travels to the runners by value, so runners need not import ``tests``.
"""

from __future__ import annotations

import subprocess
import sys
import time

import cloudpickle


def sleep_in_steps(step: float, steps: int) -> int:
    """Sleep ``steps`` times ``step`` seconds, doing next to nothing in between."""
    for _ in range(steps):
        time.sleep(step)
    return steps


def wait_on_busy_child(seconds: float) -> int:
    """Wait on a subprocess that keeps a CPU busy for ``seconds``."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    return subprocess.run([sys.executable, "-c", spin], check=True).returncode


cloudpickle.register_pickle_by_value(sys.modules[__name__])
