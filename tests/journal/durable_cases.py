"""The cases every backend's durable-map tests run: a submitter killed, then the map
taken on with ``gridmap attach``; killed and left alone; cancelled from another shell.

Each takes a :class:`~tests.support.durable.Submitter` and ``listed``, which says
whether the scheduler still lists any job of the map's name.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from gridmap_core.journal.store import Journal
from gridmap_core.wire import beacon
from tests.support.durable import Submitter, environment, processes_of

COUNT = 50


def killed_then_attached(map_: Submitter, listed: Callable[[str], bool], *,
                         seconds: float, kill_after: int = 10) -> None:
    """SIGKILL the submitter mid-map, then ``gridmap attach``: every result right, no
    job that had finished runs again, nothing left queued or running."""
    try:
        map_.start(seconds)
        finished = map_.kill_after(kill_after)
        assert len(finished) >= kill_after
        map_id = _map_id(map_)
        done = map_.gridmap("attach", map_.name, "--temp-dir", str(map_.temp_dir))
        assert done.returncode == 0, done.stdout + done.stderr
        assert map_.results() == {x: x * x for x in range(map_.count)}
        runs = map_.executions()
        assert set(runs) == set(range(map_.count))
        twice = {x: runs[x] for x in finished if runs[x] != 1}
        assert not twice, f"jobs that had finished before the kill ran again: {twice}"
        _nothing_left(map_, listed, map_id)
        assert beacon.end_mark(map_.session()) == beacon.ENDED
    finally:
        map_.clean_up()


def killed_and_left(map_: Submitter, listed: Callable[[str], bool], *, seconds: float,
                    grace: float, runners_outlive: bool = True) -> None:
    """SIGKILL the submitter and let nobody attach: within the grace and a minute, the
    map's jobs are gone and its runners ended; runners that outlive their submitter
    (on a cluster) have marked the map abandoned."""
    try:
        map_.start(seconds)
        map_.kill_after(3)
        map_id = _map_id(map_)
        map_.wait_for("the map's jobs gone from the queue and its runners ended",
                      lambda: not listed(map_.name) and not processes_of(map_id),
                      timeout=grace + 60)
        assert beacon.end_mark(map_.session()) == (beacon.ABANDONED if runners_outlive
                                                   else None)
    finally:
        map_.clean_up()


def cancelled_from_another_shell(map_: Submitter, listed: Callable[[str], bool], *,
                                 seconds: float) -> None:
    """``gridmap cancel`` while the submitter runs: its map ends with the unfinished
    jobs cancelled, and nothing is left queued or running."""
    try:
        map_.start(seconds)
        map_.wait_for("3 results", lambda: map_.has_results(3))
        map_id = _map_id(map_)
        done = map_.gridmap("cancel", map_.name, "--temp-dir", str(map_.temp_dir))
        assert done.returncode == 0, done.stdout + done.stderr
        assert map_.process is not None
        map_.process.wait(120)
        said = map_.output.read_text()
        assert map_.process.returncode != 0 and "cancel" in said, said[-3000:]
        _nothing_left(map_, listed, map_id)
        journal = Journal.open(map_.session())
        try:
            assert journal.map_record().state == "cancelled"
            counts = journal.counts()
        finally:
            journal.close()
        left = set(counts) & {"queued", "running"}
        assert counts.get("cancelled", 0) > 0 and not left, counts
    finally:
        map_.clean_up()


def _map_id(map_: Submitter) -> str:
    journal = Journal.open(map_.session())
    try:
        return journal.map_record().id
    finally:
        journal.close()


def _nothing_left(map_: Submitter, listed: Callable[[str], bool], map_id: str) -> None:
    # The scheduler may take a moment to forget jobs cancelled at the map's end.
    deadline = time.monotonic() + 60
    while (listed(map_.name) or processes_of(map_id)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not listed(map_.name), f"jobs of {map_.name} are still queued or running"
    assert not processes_of(map_id), processes_of(map_id)


class ClusterSuite:
    """The cases on a real cluster: a subclass names its ``backend``, gives the
    fixture ``cluster`` (its cluster's, which makes the tests fail in CI when the
    cluster is missing) and says what the scheduler ``listed``."""

    backend = ""
    seconds = 1.0  # each job's time
    grace = 15.0  # MONITOR_GRACE where nobody attaches

    @staticmethod
    def listed(name: str) -> bool:
        raise NotImplementedError

    def _map(self, tmp_path: Path, **settings: str) -> Submitter:
        return Submitter(tmp_path, f"durable-{uuid.uuid4().hex[:8]}", self.backend, COUNT,
                         environment(tmp_path, settings))

    def test_a_killed_submitters_map_is_finished_by_attach(self, cluster: str,
                                                           tmp_path: Path) -> None:
        killed_then_attached(self._map(tmp_path), self.listed, seconds=self.seconds)

    def test_a_killed_submitters_map_is_given_up_within_the_grace(self, cluster: str,
                                                                  tmp_path: Path) -> None:
        killed_and_left(self._map(tmp_path, GRIDMAP_MONITOR_GRACE=f"{self.grace:g}"),
                        self.listed, seconds=self.seconds, grace=self.grace)

    def test_gridmap_cancel_from_another_shell_ends_the_map(self, cluster: str,
                                                            tmp_path: Path) -> None:
        cancelled_from_another_shell(self._map(tmp_path), self.listed, seconds=self.seconds)
