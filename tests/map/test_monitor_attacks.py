"""The monitor under hostile input, and the submitting process interrupted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from gridmap_local.backend import LocalBackend

from gridmap_core import Job, JobException, hookimpl
from gridmap_core.backend import Batch, JobSpec, SessionOptions
from gridmap_core.face.executor import GridMapExecutor
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.map.runs import Run
from gridmap_core.model.config import load_settings
from gridmap_core.plugins.manager import get_plugin_manager
from gridmap_core.wire.protocol import Codec, Kind, new_key, read_key_file
from tests import PROJECT_ROOT
from tests.support import monitored

REPO = PROJECT_ROOT


def _open_session(settings: dict[str, Any]) -> MonitoredSession:
    options = SessionOptions(settings=load_settings({**monitored.FAST, **settings}),
                             max_processes=2, options={"mode": "runner"})
    session = LocalBackend().open(options)
    assert isinstance(session, MonitoredSession)
    return session


def _hostile_messages(session: MonitoredSession, count: int) -> list[list[bytes]]:
    """Random bytes, forged MACs, other keys, other maps, wrong kinds, and replays."""
    rng = random.Random(1234)
    key = read_key_file(session.key_file).mac
    stranger = Codec(new_key(), session.map_id)
    other_map = Codec(key, "map-someone-else")
    insider = Codec(key, session.map_id)
    messages: list[list[bytes]] = []
    while len(messages) < count:
        task = rng.randrange(0, 8)
        choice = rng.randrange(6)
        if choice == 0:  # garbage of any shape
            messages.append([rng.randbytes(rng.randrange(0, 300))
                             for _ in range(rng.randrange(1, 6))])
        elif choice == 1:  # a well-formed message whose MAC is wrong
            header, _, payload = (bytes(f) for f in insider.encode(Kind.RESULT, task, 0, b"x"))
            messages.append([header, rng.randbytes(32), payload])
        elif choice == 2:  # signed with another key: results, heartbeats, fetches
            kind = rng.choice([Kind.RESULT, Kind.HEARTBEAT, Kind.FETCH])
            messages.append([bytes(f) for f in stranger.encode(kind, task, 0, b"\x80\x05N.")])
        elif choice == 3:  # the right key, but another map's id
            messages.append([bytes(f) for f in other_map.encode(Kind.RESULT, task, 0, b"")])
        elif choice == 4:  # authentic, but a kind only the monitor sends
            messages.append([bytes(f) for f in insider.encode(Kind.TASK, task, 0, b"")])
        else:  # an authentic message for a task that does not exist, sent twice
            frames = [bytes(f) for f in insider.encode(Kind.HEARTBEAT, 10_000 + task, 0, b"{}")]
            messages.extend([frames, frames])
    return messages


def test_thousands_of_forged_and_garbage_messages_do_not_disturb_real_jobs() -> None:
    session = _open_session({})
    try:
        run = Run(8)
        session.submit(Batch(JobSpec(monitored.sleep_then_square), [(x,) for x in range(8)],
                             None, run))
        hostile = _hostile_messages(session, 5000)
        context = zmq.Context()
        sockets = [context.socket(zmq.DEALER) for _ in range(4)]
        # With the map's client keys, as a runner of the map gone rogue: a stranger
        # without them never passes the CURVE handshake (tests/transports/
        # test_zmq_curve.py), so the codec is what stands against these.
        curve = read_key_file(session.key_file).curve
        for sock in sockets:
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_serverkey = curve.server_public
            sock.curve_publickey = curve.client_public
            sock.curve_secretkey = curve.client_secret
            sock.connect(session.address)
        for n, frames in enumerate(hostile):
            sockets[n % len(sockets)].send_multipart([b"corr", *frames])
        assert run.wait(timeout=120)
        for sock in sockets:
            sock.close()
        context.term()
    finally:
        session.close()
    assert run.failures == {}
    assert run.values == [x * x for x in range(8)]
    # Every hostile message was refused, except the first copy of each authentic
    # message for an unknown task (answered STOP); the second copy is a replay.
    unknown_task_firsts = sum(1 for n in range(1, len(hostile)) if hostile[n] is hostile[n - 1])
    assert session.dropped >= len(hostile) - unknown_task_firsts


INTERRUPTED = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from tests.support import monitored
    with monitored.runner_executor({{"DEFAULT_TEMP_DIR": {temp!r}}}) as executor:
        list(executor.map(monitored.sleep_for, [60] * 4))
""")


def _runners_under(temp: Path) -> list[int]:
    """Processes whose command line names ``temp`` (the runners of that map)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        runner = b"gridmap_core.node.runner"
        if str(temp).encode() in cmdline and runner in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupting_the_submitting_process_leaves_no_runner_behind(
        tmp_path: Path, sig: signal.Signals) -> None:
    script = INTERRUPTED.format(repo=str(REPO), temp=str(tmp_path))
    submitter = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        # Two runners, each with its job's process (forked, under the same command line).
        assert _wait_for(lambda: len(_runners_under(tmp_path)) >= 2, 60), "runners never ran"
        submitter.send_signal(sig)
        _, err = submitter.communicate(timeout=60)
        assert submitter.returncode != 0
        if sig == signal.SIGINT:
            assert b"KeyboardInterrupt" in err
        assert _wait_for(lambda: not _runners_under(tmp_path), 30), _runners_under(tmp_path)
    finally:
        submitter.kill()
        for pid in _runners_under(tmp_path):
            os.kill(pid, signal.SIGKILL)


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    @hookimpl
    def gridmap_job_heartbeat(self, job: Job, heartbeat: dict[str, Any]) -> None:
        assert heartbeat["memory"] > 0 and heartbeat["host_name"]
        self.events.append(("heartbeat", job.name))

    @hookimpl
    def gridmap_job_resubmitted(self, job: Job) -> None:
        self.events.append(("resubmitted", job.name))

    @hookimpl
    def gridmap_job_died(self, job: Job) -> None:
        self.events.append(("died", job.name))

    @hookimpl
    def gridmap_job_finished(self, job: Job) -> None:
        self.events.append(("finished", job.name))


def test_observers_hear_heartbeats_resubmissions_and_deaths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monitored.blind_to_suspension(monkeypatch)
    observer = Observer()
    manager = get_plugin_manager()
    manager.register(observer, name="observer")
    try:
        jobs = [Job(monitored.stop_self, [0], name="frozen"),
                Job(monitored.sleep_for, [1.5], name="sleeper")]
        executor = GridMapExecutor(
            backend="local", max_processes=2,
            settings={**monitored.FAST, "MAX_TIME_BETWEEN_HEARTBEATS": 2, "NUM_RESUBMITS": 1},
            backend_options={"mode": "runner"},
        )
        with executor, pytest.raises(JobException):
            executor.run_jobs(jobs)
    finally:
        manager.unregister(name="observer")
    frozen = [event for event, name in observer.events if name == "frozen"]
    assert frozen == ["resubmitted", "died"]
    assert jobs[0].num_resubmits == 1 and jobs[0].cause_of_death.startswith("no heartbeat")
    sleeper = [event for event, name in observer.events if name == "sleeper"]
    assert sleeper[-1] == "finished" and sleeper.count("heartbeat") >= 1
    assert len(jobs[1].track_cpu) == sleeper.count("heartbeat")
