"""Runners that cannot reach the monitor: the user hears it as soon as jobs the
scheduler runs stay silent for a few seconds, with the address and what to do, not
only when MAX_TIME_BETWEEN_HEARTBEATS counts them dead."""

from __future__ import annotations

import logging
import time

import pytest

from gridmap_core.map.job_watch import UNHEARD_AFTER
from tests.support import monitored
from tests.support.monitored import runner_executor

pytestmark = pytest.mark.timeout(120)


def _unheard_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.name == "gridmap_core.map.monitor" and record.levelno == logging.WARNING
            and "no job reached the monitor" in record.getMessage()]


def test_runners_that_cannot_connect_are_told_before_they_are_counted_dead(
        caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens on port 9 of this host: every runner dials in vain.
    settings = {"MONITOR_ADDRESS": "tcp://127.0.0.1:9", "MAX_TIME_BETWEEN_HEARTBEATS": 90,
                "NUM_RESUBMITS": 0}
    caplog.set_level(logging.WARNING, logger="gridmap_core.map.monitor")
    with runner_executor(settings) as executor:
        futures = [executor.submit(monitored.sleep_for, 0.1) for _ in range(2)]
        # Well before the 90 s after which the jobs would be counted dead.
        deadline = time.monotonic() + UNHEARD_AFTER + 30
        while not _unheard_warnings(caplog) and time.monotonic() < deadline:
            time.sleep(0.2)
        warnings = _unheard_warnings(caplog)
        assert not any(future.done() for future in futures)  # still waiting, not dead
        executor.shutdown(wait=False, cancel_futures=True)
    assert len(warnings) == 1, warnings
    [warning] = warnings
    assert "tcp://127.0.0.1:9" in warning and "GRIDMAP_MONITOR_ADDRESS" in warning, warning
    assert "have not called it in" in warning, warning


def test_no_word_of_it_when_runners_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gridmap_core.map.monitor")
    with runner_executor() as executor:
        assert list(executor.map(monitored.sleep_for, [0.1, 0.1])) == [0.1, 0.1]
    assert not _unheard_warnings(caplog)
