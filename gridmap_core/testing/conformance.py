"""The backend conformance suite, :class:`BackendConformance`: what every backend must do,
on its real scheduler (how to use it: :mod:`gridmap_core.testing`).

Every assertion here carries its message: pytest rewrites the assertions of test
modules only, not of this one, so a bare ``assert`` would fail without saying what.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gridmap_core.face.executor import GridMapExecutor
from gridmap_core.model.job import Job, JobException, JobState
from gridmap_core.plugins.manager import get_plugin_manager
from gridmap_core.testing.jobs import (
    add,
    raise_value_error,
    record_pid_then,
    sleep_then,
    wait_for_file,
    where,
    where_after,
)
from gridmap_core.testing.recorder import EventRecorder

__all__ = ["BackendConformance"]

# The events that end a job; a cancelled job must hear none of them.
_ENDINGS = ("finished", "failed", "died", "resubmitted")


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class BackendConformance:
    """Tests every backend must pass. Not collected itself (no ``Test`` prefix)."""

    backend: str = "local"
    backend_options: Mapping[str, Any] = {}
    settings: Mapping[str, Any] = {}
    max_processes: int = 2
    timeout: float = 180.0  # seconds a test waits for its jobs

    #: Settings every test uses, under the subclass's ``settings``: quick checks, and
    #: one resubmission.
    base_settings: Mapping[str, Any] = {
        "NUM_RESUBMITS": 1,
        "CHECK_FREQUENCY": 1,
        "HEARTBEAT_FREQUENCY": 1,
        "MAX_IDLE_HEARTBEATS": 0,
    }

    # -- hooks for subclasses --------------------------------------------------------

    def executor(self, **settings: Any) -> GridMapExecutor:
        """An executor on the backend under test; a cluster backend (``is_cluster`` in
        its spec) must run the jobs itself, not fall back to the local backend."""
        spec = get_plugin_manager().backend(self.backend, "the conformance suite's backend")
        return GridMapExecutor(
            backend=self.backend,
            require_cluster=spec.is_cluster,
            max_processes=self.max_processes,
            settings={**self.base_settings, **self.settings, **settings},
            backend_options=dict(self.backend_options),
        )

    @contextlib.contextmanager
    def shared_dir(self) -> Iterator[Path]:
        """A directory the jobs can write to and this process can read."""
        base = self.settings.get("DEFAULT_TEMP_DIR")
        with tempfile.TemporaryDirectory(dir=base if base and os.path.isdir(base) else None,
                                         prefix="gridmap-conformance-") as path:
            os.chmod(path, 0o777)  # jobs may run as another user
            yield Path(path)

    def kill(self, pid: int, host: str) -> None:
        """Kill a running job's process with SIGKILL (it runs on ``host``)."""
        assert host == socket.gethostname(), (
            f"the job runs on {host}; override kill() to reach that host"
        )
        os.kill(pid, signal.SIGKILL)

    def process_ended(self, pid: int, host: str) -> bool | None:
        """Whether a job's process ``pid`` on ``host`` has ended; None when this process
        cannot see that host's processes (by default, any host but this one)."""
        return not _alive(pid) if host == socket.gethostname() else None

    #: What test_resources_are_honoured asks for (Job keyword arguments).
    resource_request: Mapping[str, Any] = {"num_slots": 2, "h_vmem": "600M", "h_rt": 600}

    def assert_resources_honoured(self, where: Mapping[str, Any],
                                  request: Mapping[str, Any]) -> None:
        """Check, from inside the job (``where``), that the scheduler granted
        ``request``. By default only that the job ran: a backend without a scheduler
        accepts requests it cannot enforce. Cluster backends override this."""
        assert where["value"] == 4, f"the job returned {where['value']!r}, not 4"

    def assert_ran_on_backend(self, where: Mapping[str, Any]) -> None:
        """Check that a job ran under the backend's scheduler (its environment, host).
        By default: in another process than this one."""
        assert where["pid"] != os.getpid(), (
            "the job ran in the test's own process; override assert_ran_on_backend for a "
            "backend that runs jobs in this process"
        )

    def assert_scheduler_id(self, job_id: str | int, where: Mapping[str, Any]) -> None:
        """Check that ``job_id`` is the id the scheduler gave the job that saw
        ``where``. By default: that it has one."""
        assert job_id not in (-1, ""), (
            f"the job has no scheduler id ({job_id!r}); override assert_scheduler_id for a "
            "backend without one"
        )

    # -- the tests -------------------------------------------------------------------

    def test_results_come_back_in_input_order(self) -> None:
        with self.executor() as executor:
            results = list(executor.map(where, range(7)))
        values = [r["value"] for r in results]
        assert values == [x * x for x in range(7)], f"results out of order: {values}"
        for result in results:
            self.assert_ran_on_backend(result)

    def test_every_job_has_the_id_of_the_scheduler_job_it_ran_in(self) -> None:
        # One batch of one request: where runners take on queued jobs, several jobs
        # run in one scheduler job, and each must carry the id of the one it ran in.
        jobs = [Job(where, [x], name=f"where{x}") for x in range(6)]
        with self.executor() as executor:
            executor.run_jobs(jobs)
        for job in jobs:
            self.assert_scheduler_id(job.id, job.ret)

    def test_resources_are_honoured(self) -> None:
        job = Job(where, [2], **self.resource_request)
        with self.executor() as executor:
            executor.run_jobs([job])
        self.assert_ran_on_backend(job.ret)
        self.assert_resources_honoured(job.ret, self.resource_request)

    def test_keyword_arguments_and_closures_run(self) -> None:
        offset = 100

        def closure(x: int) -> int:
            return x + offset

        with self.executor() as executor:
            jobs = [Job(add, [1, 2], {"scale": 3}), Job(closure, [5]), Job(lambda: "λ", [])]
            executor.run_jobs(jobs)
        returned = [job.ret for job in jobs]
        assert returned == [9, 105, "λ"], f"expected [9, 105, 'λ'], got {returned}"
        states = [job.state for job in jobs]
        assert all(state is JobState.DONE for state in states), f"states: {states}"

    def test_an_exception_comes_back_with_its_remote_traceback(self) -> None:
        jobs = [Job(raise_value_error, [4], name="bad"), Job(add, [1, 1], name="good")]
        with self.executor() as executor:
            try:
                executor.run_jobs(jobs)
            except JobException as error:
                named = [job.name for job in error.jobs]
                assert named == ["bad"], f"JobException names {named}, not ['bad']"
                assert "conformance job refused 4" in str(error), (
                    f"JobException does not carry the job's error: {error}")
            else:
                raise AssertionError("JobException was not raised")
        bad, good = jobs
        assert bad.state is JobState.FAILED and isinstance(bad.ret, ValueError), (
            f"the failing job: state {bad.state}, ret {bad.ret!r}")
        assert bad.traceback is not None and "raise_value_error" in bad.traceback, (
            f"the remote traceback does not show the job's function: {bad.traceback!r}")
        assert bad.num_resubmits == 0, (
            f"an exception is not a death, yet the job was resubmitted {bad.num_resubmits} "
            "times")
        assert good.ret == 2, f"the good job returned {good.ret!r}, not 2"

    def test_a_killed_job_is_resubmitted_and_the_map_completes(self) -> None:
        with self.shared_dir() as shared:
            marker = shared / "first-attempt"
            jobs = [Job(record_pid_then, [str(marker), 300, 42]), Job(sleep_then, [0.5, 7])]
            with self.executor() as executor:
                runner = threading.Thread(target=executor.run_jobs, args=(jobs,))
                runner.start()
                _wait_for(lambda: marker.exists() and marker.read_text(), self.timeout,
                          "the first job to start")
                pid, host = marker.read_text().split()
                self.kill(int(pid), host)
                runner.join(self.timeout)
                assert not runner.is_alive(), "the map did not finish after the kill"
        returned = [job.ret for job in jobs]
        assert returned == [42, 7], f"expected [42, 7] after the resubmission, got {returned}"
        assert jobs[0].num_resubmits == 1 and jobs[0].cause_of_death, (
            f"the killed job: {jobs[0].num_resubmits} resubmissions, cause of death "
            f"{jobs[0].cause_of_death!r}; expected 1 and a cause")
        assert jobs[1].num_resubmits == 0, (
            f"the job that was not killed was resubmitted {jobs[1].num_resubmits} times")

    def test_cancelling_stops_running_jobs(self) -> None:
        with self.shared_dir() as shared:
            marker = shared / "running"
            executor = self.executor()
            future = executor.submit(record_pid_then, str(marker), 300, 1)
            _wait_for(lambda: marker.exists() and marker.read_text(), self.timeout,
                      "the job to start")
            pid, host = marker.read_text().split()
            executor.shutdown(cancel_futures=True)
            assert future.cancelled() or future.done(), (
                "the future of a cancelled job is still pending after the shutdown")
            if self.process_ended(int(pid), host) is not None:
                _wait_for(lambda: self.process_ended(int(pid), host), 60,
                          f"job process {pid} on {host} to end")

    def test_environment_and_working_directory_are_honoured(self) -> None:
        with self.shared_dir() as shared:
            job = Job(where, [3], add_env={"GRIDMAP_CONFORMANCE": "a=b=c"})
            job.working_dir = str(shared)
            with self.executor() as executor:
                executor.run_jobs([job])
        result = job.ret
        seen = result["environment"].get("GRIDMAP_CONFORMANCE")
        assert seen == "a=b=c", f"add_env GRIDMAP_CONFORMANCE='a=b=c' reached the job as {seen!r}"
        assert os.path.realpath(result["cwd"]) == os.path.realpath(shared), (
            f"the job ran in {result['cwd']}, not in its working_dir {shared}")
        self.assert_ran_on_backend(result)

    def test_observers_hear_each_jobs_lifecycle(self) -> None:
        jobs = [Job(where_after, [1.5, 3], name="good"), Job(raise_value_error, [2], name="bad")]
        with EventRecorder().listening() as recorder, self.executor() as executor:
            executor.run_jobs(jobs, on_failure="return")
        # Heartbeats come only from runners, and only from jobs that live long enough.
        heard = [e for e in recorder.of("good") if e != "heartbeat"]
        assert heard == ["submitted", "started", "finished"], (
            f"a job that returned was heard as {heard}")
        heard = recorder.of("bad")
        assert heard == ["submitted", "started", "failed"], (
            f"a job that raised was heard as {heard}")
        for job in jobs:
            # From its start on, an observer sees the id the scheduler gave the job.
            ids = recorder.ids(job.name)
            assert set(ids[1:]) == {job.id}, (
                f"job {job.name} ended with id {job.id!r}, but observers heard ids {ids}")
        self.assert_scheduler_id(jobs[0].id, jobs[0].ret)
        assert recorder.events[-1] == ("map_finished", "1/2", None), (
            f"the last event is {recorder.events[-1]}, not the map's end with 1 of 2 done")
        backend = recorder.summaries[0]["backend"]
        assert backend == self.backend, f"the map's summary names backend {backend!r}"

    def test_failure_policy_return_gives_exceptions_in_place(self) -> None:
        jobs = [Job(raise_value_error, [1]), Job(add, [2, 3])]
        with self.executor() as executor:
            executor.run_jobs(jobs, on_failure="return")
        assert isinstance(jobs[0].ret, ValueError) and jobs[1].ret == 5, (
            f"expected [ValueError, 5], got {[job.ret for job in jobs]}")

    def test_failure_policy_cancel_stops_the_rest(self) -> None:
        with self.shared_dir() as shared:
            release = str(shared / "release")
            jobs = [Job(raise_value_error, [1], name="failing")] + [
                Job(wait_for_file, [release, 300, 0], name=f"waiting{i}") for i in range(2)]
            try:
                with EventRecorder().listening() as recorder, self.executor() as executor:
                    try:
                        executor.run_jobs(jobs, on_failure="cancel")
                    except JobException as error:
                        assert error.cancelled == 2, (
                            f"JobException counts {error.cancelled} cancelled jobs, not 2")
                    else:
                        raise AssertionError("JobException was not raised")
            finally:
                Path(release).touch()  # whatever the backend left running ends now
        states = [job.state for job in jobs]
        assert states == [JobState.FAILED] + [JobState.CANCELLED] * 2, (
            f"expected one failed job and two cancelled ones, got {states}")
        for job in jobs[1:]:
            # What close(cancel=True) stops is not reported: it was cancelled, not lost.
            ended = [event for event in recorder.of(job.name) if event in _ENDINGS]
            assert not ended, (
                f"cancelled job {job.name} was reported as {ended}: a backend must report "
                "nothing for the jobs that close(cancel=True) stops")
