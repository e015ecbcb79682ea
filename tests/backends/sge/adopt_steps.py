"""The submitter that test_sge_adopt.py kills: ``python -m
tests.backends.sge.adopt_steps DIR`` submits through Grid Engine's DRMAA (a session of
its own: one per process), prints the ids as JSON and waits to be killed."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence

from gridmap_sge.native import NativeOptions
from gridmap_sge.scheduler import SgeScheduler

from gridmap_core.backend import JobSpec
from gridmap_core.backend.drmaa import DrmaaConnection
from gridmap_core.backend.scheduler import Launch
from gridmap_core.model.resources import Resources


def shell_launch(directory: str, script: str, tasks: Sequence[int]) -> Launch:
    """Runners that run ``script`` in sh, whatever the arguments a runner gets."""
    spec = JobSpec(function=print, resources=Resources(), working_dir=directory,
                   name="adopted")
    return Launch(spec=spec, tasks=list(tasks), attempt=0, log_dir=directory,
                  runner=["/bin/sh", "-c", script, "sh"], name="adopted")


def launch(directory: str) -> None:
    scheduler = SgeScheduler(DrmaaConnection.acquire(), NativeOptions())
    running = scheduler.launch(shell_launch(directory, "sleep 300", [0, 1]))
    failing = scheduler.launch(shell_launch(directory, "exit 1", [2]))
    print(json.dumps({"running": running, "failing": failing}), flush=True)
    time.sleep(600)  # killed (SIGKILL) by the test, as a submitter that dies


if __name__ == "__main__":
    launch(sys.argv[1])
