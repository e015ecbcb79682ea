"""A submitter killed with SIGKILL once it has launched its jobs, for the tests of a
scheduler adopting the jobs of a process that died: the submitter runs as a Python of
its own (one DRMAA session per process) and prints the ids it launched as one JSON line,
``{"running": [...], "failing": [...]}``."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence

from tests import PROJECT_ROOT

__all__ = ["killed_submitter"]


@contextlib.contextmanager
def killed_submitter(argv: Sequence[str], env: Mapping[str, str],
                     cancel: str) -> Iterator[dict[str, list[str]]]:
    """Start ``argv`` in the project's root with ``env``, read the ids it launched, kill
    it with SIGKILL (its jobs go on) and give the ids. At the end, whatever happened,
    the submitter is gone and its jobs are cancelled with the command ``cancel`` (qdel,
    scancel), so that a failing test leaves nothing on the cluster."""
    launcher = subprocess.Popen(list(argv), cwd=PROJECT_ROOT, env=dict(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ids: list[str] = []
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        assert line, launcher.communicate(timeout=60)
        launched: dict[str, list[str]] = json.loads(line)
        ids = launched["running"] + launched["failing"]
        launcher.send_signal(signal.SIGKILL)  # the submitter dies, its jobs go on
        launcher.wait(timeout=60)
        yield launched
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        if ids:
            subprocess.run([cancel, *ids], capture_output=True, timeout=60, check=False)
