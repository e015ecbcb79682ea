"""Maps made on disk as a monitor leaves them, for the tests of the map catalog and
the commands that act on maps: a session directory with its journal, submitter
record, monitor.json, ``launched`` file, marks and logs."""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from gridmap_core.journal.store import Journal, MapRecord
from gridmap_core.journal.submitter import SUBMITTER, machine, record_submitter
from gridmap_core.wire import beacon

GONE = 2**22 + 7  # a pid above the kernel's limit: no process has it
TRACEBACK = 'Traceback (most recent call last):\n  File "job.py", line 1, in square\n'


def make_map(root: Path, map_id: str, *, name: str = "squares",
             states: Sequence[str] = ("succeeded",), state: str = "running",
             submitter: str = "here", monitor: float | None = None,
             created: float | None = None, ended: float | None = None,
             cancel: Sequence[str] | None = None) -> Path:
    """A map of ``len(states)`` jobs in those states, whose journal says ``state``.

    ``submitter``: "here" (this process), "gone" (a dead process of this machine),
    "elsewhere" (another host) or "none" (no record). ``monitor``: seconds since
    monitor.json was last touched (None: no monitor.json). Job i runs as scheduler
    job ``100.{i + 1}``; ``cancel`` is the cancel command ``launched`` names."""
    directory = root / f"gridmap-{map_id[::-1]}"
    directory.mkdir(mode=0o700)
    now = time.time()
    journal = Journal.create(directory, MapRecord(
        map_id, name, "local", created or now, socket.gethostname(), os.getpid(),
        str(root), "running", None, {"MONITOR_GRACE": 600}))
    journal.add_spec(0, b"spec", b"function")
    journal.add_tasks([(i, 0, i, f"{name}-{i}", b"inputs") for i in range(len(states))])
    job_ids = [f"100.{i + 1}" for i in range(len(states))]
    journal.launched([(i, 0, job_id) for i, job_id in enumerate(job_ids)])
    beacon.record_launched(directory, job_ids, list(cancel) if cancel else None)
    for i, job_state in enumerate(states):
        if job_state == "queued":
            continue
        journal.started(i, 0, job_ids[i], "node1")
        if job_state == "succeeded":
            journal.store_result(i, 0, pickle.dumps((True, i * i, "", "node1")), ok=True,
                                 host="node1")
        elif job_state == "failed":
            error = ValueError(f"bad input {i}")
            traceback = f"{TRACEBACK}ValueError: {error}\n"
            journal.store_result(i, 0, pickle.dumps((False, error, traceback, "node1")),
                                 ok=False, host="node1")
        elif job_state == "dead":
            journal.resubmitted(i, 1, "killed by signal 9", "killed")
            journal.ended(i, 1, "dead", f"job {i} ran out of memory", "out of memory",
                          "node2")
    journal.flush()
    if state != "running":
        journal.set_state(state)
    if ended is not None:
        journal.query("UPDATE map SET ended=?", (ended,))
    journal.close()
    if submitter == "here":
        record_submitter(directory)
    elif submitter in ("gone", "elsewhere"):
        host = socket.gethostname() if submitter == "gone" else f"not-{socket.gethostname()}"
        (directory / SUBMITTER).write_text(json.dumps(
            {"host": host, **machine(), "pid": GONE, "started": 1.0, "ended": False}))
    if monitor is not None:
        beacon.write_monitor(directory, beacon.MonitorRecord(
            "zmq", "tcp://10.0.0.1:5000", "somewhere", GONE, now - monitor))
        os.utime(directory / beacon.MONITOR_FILE, (now - monitor, now - monitor))
    return directory


def age_files(directory: Path, seconds: float) -> None:
    """Make every file of ``directory`` last written ``seconds`` ago."""
    then = time.time() - seconds
    for path in directory.rglob("*"):
        os.utime(path, (then, then))
