"""Error mail from jobs that a real cluster ends for their memory: the job that grows,
the mail settings, and the checks every scheduler's mail must pass.

This module travels to the jobs by value, so they need not import ``tests``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cloudpickle
import pytest

from gridmap_core import Job
from gridmap_core.model.config import SETTINGS
from gridmap_core.notifiers.plots import PLOT_SIZE
from gridmap_core.notifiers.plugin import EMAIL_SETTINGS
from tests.support.smtp_server import Received, Server, png_sizes, running_smtp_server


def grow_then_exceed(step_megabytes: int, steps: int) -> int:
    """Allocate ``step_megabytes`` every 0.5 s (pages written, so they are resident),
    so heartbeats see memory grow until the scheduler's memory limit ends the job."""
    blocks = []
    for _ in range(steps):
        blocks.append(b"\1" * (step_megabytes * 2**20))
        time.sleep(0.5)
    return len(blocks)


cloudpickle.register_pickle_by_value(sys.modules[__name__])


@contextmanager
def mailing_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A real SMTP server, and error mail to it on, through the settings' environment
    variables (as process_jobs reads them); no resubmissions."""
    # The SMTP settings are the email notifier's own; the rest are the core's.
    declared = {**SETTINGS, **{setting.name: setting for setting in EMAIL_SETTINGS}}
    with running_smtp_server(tmp_path) as server:
        for name, value in {"SEND_ERROR_MAIL": True, "SMTP_SERVER": f"127.0.0.1:{server.port}",
                            "ERROR_MAIL_WINDOW": 0.3, "ERROR_MAIL_RECIPIENT": "ann@example.org",
                            "NUM_RESUBMITS": 0}.items():
            monkeypatch.setenv(declared[name].env_var, str(value))
        yield server


def check_out_of_memory_mail(mail: Received, job: Job, backend: str) -> None:
    """The mail names the job's id, host, backend and cause, and carries both plots."""
    assert job.cause_of_death is not None and "out of memory" in job.cause_of_death
    body = mail.message.get_body(("plain",)).get_content()
    for line in (f"Job id: {job.id}", "Host: vm", f"Backend: {backend}",
                 f"Cause of death: {job.cause_of_death}", "Resubmits: 0 of 0"):
        assert line in body, (line, body)
    # The memory plot is drawn from the heartbeats the job sent while it grew.
    assert len(job.track_mem) >= 2 and max(job.track_mem) > min(job.track_mem)
    assert png_sizes(mail) == {"cpu.png": PLOT_SIZE, "memory.png": PLOT_SIZE}
