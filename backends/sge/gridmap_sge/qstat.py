"""Reading Grid Engine's job and queue states from ``qstat -xml``, in one call per poll;
and, for the rare job that needs it, ``qstat -j``'s error reason and ``qacct``'s
failure code.

DRMAA can only ask about one job at a time; ``qstat -xml -u USER`` answers for all of
a user's jobs at once, and with ``-f`` also says which queue instances can run jobs,
which is how a long wait in the queue gets explained.
"""

from __future__ import annotations

import getpass
import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gridmap_core.backend.scheduler import same_host
from gridmap_core.errors import GridMapError

__all__ = [
    "QstatError",
    "Snapshot",
    "accounting_failure",
    "error_reason",
    "expand_tasks",
    "failed_hosts",
    "node_failure",
    "parse_qstat",
    "queue_note",
    "run_qstat",
]

_TIMEOUT = 60.0
# Queue instance states that keep it from starting jobs, and what they mean.
_QUEUE_STATES = {
    "u": "its execution daemon does not answer",
    "E": "it is in error state (see `qstat -explain E`)",
    "d": "it is disabled",
    "D": "it is disabled by its calendar",
    "s": "it is suspended",
    "S": "it is suspended by a subordinate queue",
    "C": "it is suspended by its calendar",
    "a": "a load threshold is exceeded",
    "A": "a suspend threshold is exceeded",
    "c": "its configuration is ambiguous",
    "o": "it was removed from the configuration",
}
# Queue instance states of a node that failed, or whose daemon is gone: a job that dies
# there died of its node.
_FAILED_NODE_STATES = "uE"


class QstatError(GridMapError, RuntimeError):
    """qstat failed or printed something unreadable."""


@dataclass
class Snapshot:
    """One qstat answer: state letters by (job number, task), the queue instance each
    running job is in, and queue instance states."""

    jobs: dict[tuple[str, int | None], str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # only with ``full``
    places: dict[tuple[str, int | None], str] = field(default_factory=dict)  # "all.q@node1"

    def state(self, job_id: str) -> str | None:
        """The state of ``job_id`` ("123" or "123.4"), or None when qstat does not list it."""
        return self.jobs.get(_key(job_id))

    def place(self, job_id: str) -> str:
        """The queue instance ``job_id`` runs in; "" when it runs in none (it waits), or
        qstat does not list it."""
        return self.places.get(_key(job_id), "")


def _key(job_id: str) -> tuple[str, int | None]:
    number, _, task = job_id.partition(".")
    return number, int(task) if task else None


def expand_tasks(text: str) -> list[int]:
    """Task ids from qstat's ``tasks`` field: ``"7"``, ``"17-30:1"``, ``"1,3,5-9:2"``."""
    tasks: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        start, stop = int(first), int(last or first)
        tasks.extend(range(start, stop + 1, int(step or 1)))
    return tasks


def parse_qstat(text: str) -> Snapshot:
    """Parse ``qstat -xml`` (with or without ``-f``)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise QstatError(f"qstat printed XML it could not parse: {error}") from None
    snapshot = Snapshot()
    # With -f, a running job is listed inside its queue instance, without <queue_name>.
    inside: dict[int, str] = {}
    for queue in root.iter("Queue-List"):
        name = queue.findtext("name", "")
        snapshot.queues[name] = queue.findtext("state", "")
        for job in queue.iter("job_list"):
            inside[id(job)] = name
    for job in root.iter("job_list"):
        number = job.findtext("JB_job_number", "")
        state = job.findtext("state", "")
        place = job.findtext("queue_name") or inside.get(id(job), "")
        tasks = job.findtext("tasks")
        keys = [(number, task) for task in expand_tasks(tasks)] if tasks else [(number, None)]
        for key in keys:
            snapshot.jobs[key] = state
            if place:
                snapshot.places[key] = place
    return snapshot


def run_qstat(*, full: bool = False, user: str | None = None) -> Snapshot:
    """Ask Grid Engine about every job of ``user`` (default: this user)."""
    command = ["qstat", "-xml", "-u", user or getpass.getuser()]
    if full:
        command.insert(1, "-f")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise QstatError(f"{' '.join(command)} failed: {error}") from None
    if done.returncode != 0:
        raise QstatError(f"{' '.join(command)} exited {done.returncode}: "
                         f"{done.stderr.strip()[:300]}")
    return parse_qstat(done.stdout)


def error_reason(job_number: str) -> str:
    """Why Grid Engine put a job into error state (``qstat -j``'s "error reason")."""
    try:
        done = subprocess.run(["qstat", "-j", job_number], capture_output=True, text=True,
                              timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in done.stdout.splitlines():
        if line.startswith("error reason"):
            return line.split(":", 1)[-1].strip()
    return ""


def _host(instance: str) -> str:
    """The host of a queue instance ("all.q@node1" -> "node1")."""
    return instance.partition("@")[2]


def queue_note(queues: Mapping[str, str], wanted: Iterable[str] = (),
               hosts: Iterable[str] = (), avoid: Iterable[str] = ()) -> str:
    """Why no queue instance can start jobs; "" when one can. ``wanted`` limits the
    check to these queues (names, or ``queue@host`` instances), ``hosts`` to the
    instances on these hosts (a white_list), and those on ``avoid`` are left out."""
    wanted = [w for w in wanted if w]
    hosts, avoid = [h for h in hosts if h], [h for h in avoid if h]
    relevant = {
        name: state for name, state in queues.items()
        if (not wanted or any(name == w or name.split("@")[0] == w for w in wanted))
        and (not hosts or any(same_host(_host(name), host) for host in hosts))
        and not any(same_host(_host(name), host) for host in avoid)
    }
    if not relevant:
        if wanted:
            return f"no queue instance of {', '.join(wanted)} exists"
        if hosts:
            return f"no queue instance on {', '.join(hosts)} exists"
        return ""
    reasons = []
    for name, state in sorted(relevant.items()):
        blocking = [_QUEUE_STATES[s] for s in state if s in _QUEUE_STATES]
        if not blocking:
            return ""
        reasons.append(f"{name} is in state {state} ({'; '.join(blocking)})")
    return "no queue instance can run them: " + ", ".join(reasons)


def node_failure(queues: Mapping[str, str], place: str) -> str | None:
    """What failed about the node of queue instance ``place`` ("all.q@node1"), from the
    states of ``queues`` (a full qstat's): its daemon does not answer (``u``), or it is in
    error state (``E``); None when neither, or the instance is not listed."""
    state = queues.get(place, "")
    failed = [_QUEUE_STATES[s] for s in state if s in _FAILED_NODE_STATES]
    if not failed:
        return None
    return f"{place} is in state {state} ({'; '.join(failed)})"


def failed_hosts(queues: Mapping[str, str]) -> dict[str, str]:
    """The hosts whose queue instances (of a full qstat's ``queues``) say their node
    failed (:func:`node_failure`), each with Grid Engine's words: "Grid Engine says
    all.q@node1 is in state au (its execution daemon does not answer)"."""
    found: dict[str, list[str]] = {}
    for name in sorted(queues):
        failure = node_failure(queues, name)
        if failure and _host(name):
            found.setdefault(_host(name), []).append(failure)
    return {host: "Grid Engine says " + "; ".join(failures)
            for host, failures in found.items()}


def accounting_failure(job_id: str) -> tuple[int, str] | None:
    """The ``failed`` field of a job's accounting record (``qacct``): its code and
    text, such as ``(26, "opening input/output file")``; None when there is none yet."""
    number, _, task = job_id.partition(".")
    command = ["qacct", "-j", number, *(["-t", task] if task else [])]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in reversed(done.stdout.splitlines()):  # the latest record comes last
        if line.startswith("failed"):
            code, _, text = line.split(None, 1)[-1].partition(":")
            try:
                return int(code), text.strip()
            except ValueError:
                return None
    return None
