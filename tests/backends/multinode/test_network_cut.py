"""A node cut off from the network while it runs jobs, for longer than
MAX_TIME_BETWEEN_HEARTBEATS, then plugged back in, on the multi-node test clusters.

The monitor counts the cut node's jobs dead (no heartbeat) and launches them again on
the other nodes; each job's result reaches the user once, from the copy that replaced
the lost one. What the old copies do depends on the length of the cut:

* it heals while an old runner still holds a result it could not deliver (the job
  ended during the cut; the runner retries for ``--give-up`` seconds from then): the
  monitor answers that result STOP, ignores it and logs it, unless the scheduler kills
  the orphaned copy first on the node's return (both race);
* it outlasts the old runners: a runner that hears nothing from the monitor for
  ``--give-up`` seconds (MAX_TIME_BETWEEN_HEARTBEATS) stops its job then, before it is
  done, so that copy's side effects stop there.

Every execution of a job leaves a file in the shared directory, named after the job,
its host and its process: the test counts executions per job from them. The map runs in
a Python of its own (one process holds one DRMAA session for one Grid Engine cell), with
its monitor's log on its stderr; the test cuts and reconnects the node meanwhile, and
restores it in any case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import PROJECT_ROOT
from tests.support.multinode import (  # noqa: F401  (fixtures)
    MultinodeCluster,
    multinode_sge,
    multinode_slurm,
    multinode_tmp,
)

pytestmark = pytest.mark.timeout(240)

JOBS = 6
WAIT = 150.0  # the whole map, with room for a loaded machine

MAP = '''
import json, logging, sys
from gridmap_core import GridMapExecutor, Job, hookimpl
from gridmap_core.plugins.manager import get_plugin_manager

backend, queue, temp_dir, effects, seconds, settings = sys.argv[1:7]
logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                    format="%(asctime)s %(name)s %(levelname)s %(message)s")


def effect(x, folder, seconds):
    """A job with a side effect per execution: a file when it starts, one when it ends."""
    import os, socket, time
    from pathlib import Path
    mark = Path(folder) / f"{x}.{socket.gethostname()}.{os.getpid()}"
    Path(f"{mark}.start").touch()
    time.sleep(seconds)
    Path(f"{mark}.end").touch()
    return x * x, socket.gethostname()


class Deliveries:
    """How many times each job's result was delivered."""

    def __init__(self):
        self.count = {}

    @hookimpl
    def gridmap_job_finished(self, job):
        self.count[job.name] = self.count.get(job.name, 0) + 1


deliveries = Deliveries()
get_plugin_manager().register(deliveries, name="deliveries")
jobs = [Job(effect, [x, effects, float(seconds)], name=f"cut{x}", queue=queue, cleanup=False)
        for x in range(int(sys.argv[7]))]
with GridMapExecutor(backend, require_cluster=True, temp_dir=temp_dir, queue=queue,
                     settings=json.loads(settings)) as executor:
    executor.run_jobs(jobs)
print(json.dumps({"jobs": [{"name": job.name, "ret": job.ret, "host": job.host_name,
                            "resubmits": job.num_resubmits} for job in jobs],
                  "deliveries": deliveries.count}))
'''


@dataclass(frozen=True)
class Case:
    kind: str  # the cluster
    seconds: float  # how long each job runs
    limit: float  # MAX_TIME_BETWEEN_HEARTBEATS, the runners' --give-up too
    outlast: bool  # heal only once the old runners have given up


# Heals while an old runner holds its result: the jobs (8 s) end during the cut, and
# their runners retry the result for --give-up seconds after that, so the node comes back
# while they still do: as soon as a replacement has started elsewhere.
# Outlasts the old runners: the jobs (30 s) run past --give-up (20 s) after the cut, so
# their runners stop them, unfinished; the node comes back after that. The limit is above
# the ~16 s Slurm takes to count the node not responding, so that replacements go to the
# other nodes. Grid Engine counts a silent node unknown only after 20-35 s.
CASES = {
    "slurm-heals-while-the-old-runner-holds-its-result": Case("slurm", 8, 12, False),
    "slurm-outlasts-the-old-runners": Case("slurm", 30, 20, True),
    "sge-heals-while-the-old-runner-holds-its-result": Case("sge", 15, 40, False),
}


def _executions(effects: Path) -> dict[int, dict[str, list[str]]]:
    """Per job: per execution (host.pid), the marks it left ("start", "end")."""
    found: dict[int, dict[str, list[str]]] = {}
    for path in effects.iterdir():
        x, host, pid, mark = path.name.split(".")
        found.setdefault(int(x), {}).setdefault(f"{host}.{pid}", []).append(mark)
    return found


def _hosts(runs: dict[str, list[str]]) -> list[str]:
    return [execution.split(".")[0] for execution in runs]


def _wait(condition: Callable[[], bool], what: str, process: subprocess.Popen[str],
          detail: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the map ended (status {process.returncode}) before {what}: "
                        f"{detail()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {detail()}"
        time.sleep(0.2)


def _old_logs(temp_dir: Path, jobs: set[int], host: str) -> dict[int, str]:
    """The stderr logs of the first attempts of ``jobs`` on ``host`` (the runners cut
    off), found by what the runner says first: the task, the attempt and the host."""
    logs = {}
    for path in temp_dir.glob("gridmap-*/logs/*.err"):
        text = path.read_text(errors="replace")
        for x in jobs:
            if f"task {x} attempt 0 on {host}:" in text:
                logs[x] = text
    return logs


@pytest.mark.parametrize("name", list(CASES))
def test_a_node_cut_off_then_back_gives_each_result_once(
        name: str, request: pytest.FixtureRequest) -> None:
    case = CASES[name]
    cluster: MultinodeCluster = request.getfixturevalue(f"multinode_{case.kind}")
    shared: Path = request.getfixturevalue("multinode_tmp")
    temp_dir, effects = shared / "temp", shared / "effects"
    temp_dir.mkdir()
    effects.mkdir()
    settings = {"HEARTBEAT_FREQUENCY": 1, "CHECK_FREQUENCY": 1, "NUM_RESUBMITS": 2,
                "MAX_TIME_BETWEEN_HEARTBEATS": case.limit, "REUSE_RUNNERS": False}
    env = {**os.environ, **cluster.env}
    out, err = shared / "map.out", shared / "map.err"
    cut = ""
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", MAP, case.kind, cluster.queue, str(temp_dir), str(effects),
             str(case.seconds), json.dumps(settings), str(JOBS)],
            stdout=stdout, stderr=stderr, text=True, env=env, cwd=PROJECT_ROOT)
        try:
            # Cut the node that runs the most jobs, once they all run (each has written
            # its start mark, after it fetched its task) and sent a heartbeat or two.
            _wait(lambda: len(_executions(effects)) == JOBS, "every job started", process)
            time.sleep(1.5)
            first = {x: _hosts(runs)[0] for x, runs in _executions(effects).items()}
            hosts = sorted(set(first.values()), key=list(first.values()).count)
            cut = hosts[-1]
            cluster.cut(cut)
            cut_at = time.monotonic()
            lost = {x for x, host in first.items() if host == cut}

            def replaced() -> bool:
                runs = _executions(effects)
                return all(len(runs[x]) >= 2 for x in lost)

            _wait(replaced, f"the jobs of {cut} starting again elsewhere", process)
            replaced_after = time.monotonic() - cut_at
            if case.outlast:
                def given_up() -> bool:
                    logs = _old_logs(temp_dir, lost, cut)
                    return len(logs) == len(lost) and all(
                        "lost the monitor" in log for log in logs.values())

                _wait(given_up, f"the runners on {cut} giving up", process,
                      lambda: f"{_old_logs(temp_dir, lost, cut)}; {_executions(effects)}; "
                              f"{err.read_text(errors='replace')[-3000:]}")
            cluster.reconnect(cut)
            healed_after = time.monotonic() - cut_at
            process.wait(WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            if cut:
                cluster.restore(cut)  # link up, and the node back in service
    report = err.read_text(errors="replace")
    assert process.returncode == 0, report[-4000:]
    answer = json.loads(out.read_text().strip().splitlines()[-1])
    runs = _executions(effects)
    old_logs = _old_logs(temp_dir, lost, cut)
    # What happened, for the record (pytest -s, or a failure's report).
    print(f"{name}: cut {cut} (jobs {sorted(lost)}); replacements started "
          f"{replaced_after:.1f} s after the cut, healed after {healed_after:.1f} s")
    for x in sorted(runs):
        print(f"  job {x}: {runs[x]}")
    for x, log in sorted(old_logs.items()):
        print(f"  old runner of job {x}: {log.strip().splitlines()[-2:]}")
    for line in report.splitlines():
        if "died:" in line or "late result" in line or "a heartbeat of" in line:
            print(f"  monitor: {line}")

    # Every result right, from the copy that was kept, and delivered once.
    assert answer["deliveries"] == {f"cut{x}": 1 for x in range(JOBS)}
    for x, job in enumerate(answer["jobs"]):
        assert job["ret"] == [x * x, job["host"]], job
        assert job["resubmits"] == (1 if x in lost else 0), job
        if x in lost:
            assert job["host"] != cut, job  # the replacement ran elsewhere
    # The jobs of the other nodes ran once; those of the cut node twice: their old copy
    # (side effects included) and their replacement, elsewhere.
    for x in range(JOBS):
        if x not in lost:
            assert len(runs[x]) == 1, runs[x]
            continue
        assert len(runs[x]) == 2 and cut in _hosts(runs[x]), runs[x]
        replacement = [marks for execution, marks in runs[x].items()
                       if not execution.startswith(f"{cut}.")]
        assert len(replacement) == 1 and sorted(replacement[0]) == ["end", "start"], runs[x]
        # Counted dead: no heartbeat, or the scheduler's word that its node failed.
        assert re.search(rf"cut{x} \(job [^)]*\) died: ", report), report[-4000:]
    old_marks = {x: runs[x][next(e for e in runs[x] if e.startswith(f"{cut}."))]
                 for x in lost}
    if case.outlast:
        # The old runners gave up during the cut and stopped their jobs, unfinished.
        assert all(marks == ["start"] for marks in old_marks.values()), old_marks
        assert all("lost the monitor" in log for log in old_logs.values()), old_logs
    else:
        # The old copies finished during the cut: their side effects happened twice.
        assert all(sorted(marks) == ["end", "start"] for marks in old_marks.values()), old_marks
        # An old runner that reached the monitor again was told to stop, its result
        # ignored, and the monitor logged it with the job, the attempt and the host.
        for x, log in old_logs.items():
            if "the monitor ignored the result" in log:
                assert re.search(rf"ignored the late result of cut{x} \(task \d+\) attempt 0 "
                                 rf"from {cut}", report), report[-4000:]
