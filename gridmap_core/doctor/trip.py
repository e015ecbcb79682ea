"""The round trip of ``gridmap doctor``: one trivial job, and what its fate tells.

:func:`run_round_trip` submits :func:`probe_job` through :class:`GridMapExecutor` and
records what happened in a :class:`Trip`; the three ``check_*`` functions read it as
the checks "round trip", "nodes reach monitor" and "temp_dir shared". A job that died
is diagnosed from the kind of its death (a :class:`DeathKind`), and its cause of death
is shown in the runner's and the monitor's own words.

The job proves what a compute node sees: it reports the node's host name and
addresses, and each check names that node. A temp_dir the monitor refuses before
submitting (local to this host, while the jobs run on other hosts) fails "temp_dir
shared" with no job run at all.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridmap_core.doctor.verdicts import MONITOR, ROUND_TRIP, SHARED, Check, Plan, Verdict
from gridmap_core.face.executor import GridMapExecutor
from gridmap_core.map.shared_dir import TempDirNotShared
from gridmap_core.model.config import ConfigError, Settings
from gridmap_core.model.death import UNHEARD, DeathKind
from gridmap_core.model.job import Job, JobState
from gridmap_core.plugins.types import BackendSpec
from gridmap_core.transports import TransportError
from gridmap_core.transports.advice import TransportAdvice, advice_for
from gridmap_core.wire.exits import NOT_SHARED

__all__ = ["Trip", "check_monitor", "check_round_trip", "check_shared", "exchange_directory",
           "node_addresses", "probe_job", "run_round_trip"]

# Where a scheduler puts a job's id: Grid Engine, Slurm (an array's, then the
# element's own), PBS, LSF. The cluster backends drop these from the environment they
# copy into jobs, so a job that sees one was started by the scheduler.
SCHEDULER_VARIABLES = ("JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID")
TO_NODE, FROM_NODE = "to-node", "from-node"
_SHOWN_ADDRESSES = 3  # of a node's addresses, the ones named
# Time to cancel the job and release the backend after the timeout, before the round
# trip is abandoned to its thread.
_GRACE = 30.0


def node_addresses() -> list[str]:
    """This host's IPv4 addresses, neither loopback nor link-local, in order."""
    import ipaddress

    import psutil

    try:
        interfaces = psutil.net_if_addrs()
    except Exception:  # an address is a courtesy: never fail the probe for it
        return []
    found = {address.address for addresses in interfaces.values() for address in addresses
             if address.family == socket.AF_INET}
    return sorted((a for a in found if not (ipaddress.ip_address(a).is_loopback
                                            or ipaddress.ip_address(a).is_link_local)),
                  key=ipaddress.ip_address)


def probe_job(token: str, exchange: str | None) -> dict[str, Any]:
    """The round trip's job: returns ``token``, its host and addresses and its
    scheduler's job id variables; with ``exchange`` (a directory in temp_dir) it reads
    the file the submitting host wrote there and writes one back."""
    host = socket.gethostname()
    report: dict[str, Any] = {
        "token": token,
        "host": host,
        "addresses": node_addresses(),
        "pid": os.getpid(),
        "environment": {name: os.environ[name] for name in SCHEDULER_VARIABLES
                        if name in os.environ},
    }
    if exchange is not None:
        try:
            report["seen"] = Path(exchange, TO_NODE).read_text(encoding="utf-8")
            Path(exchange, FROM_NODE).write_text(f"{token} {host}", encoding="utf-8")
        except OSError as error:
            report["exchange_error"] = f"{error.filename}: {error.strerror or error}"
    return report


@dataclass
class Trip:
    """What happened to the round trip's job. At most one of ``report`` (its value),
    ``submit_error``, ``raised``, ``cause`` and ``timed_out`` says how it ended."""

    token: str
    timeout: float = 0.0
    seconds: float = 0.0
    report: dict[str, Any] | None = None
    submit_error: BaseException | None = None  # the map did not start; no job ran
    raised: str = ""  # the job raised: the last line of its traceback
    cause: str = ""  # the job died: its cause of death
    death_kind: DeathKind | None = None  # and what kind of death that was
    timed_out: bool = False
    started: bool = False  # the job began to run (its runner fetched its task)
    job_id: str = ""
    host: str = ""  # the node the job ran on, as it or the scheduler said ("": unknown)
    address: str | None = None  # what runners dial; None when the backend has no monitor
    log_dir: str = ""  # where the job's logs were kept (only after a failure)
    exchange: str | None = None
    back: str | None = None  # what the job wrote in ``exchange``, read from here
    back_error: str = ""
    queue_note: str = ""  # why the scheduler kept the job waiting, if it said


class _QueueNotes:
    """A notifier of the round trip's executor: hears why the scheduler keeps the job
    waiting (a hold, a queue in error state), for a job that never starts."""

    def __init__(self, trip: Trip) -> None:
        self.trip = trip

    def gridmap_job_waiting(self, job: Job, note: str) -> None:
        if note:  # an empty note only says the scheduler stopped giving one
            self.trip.queue_note = note


def trip_settings(settings: Settings, timeout: float) -> dict[str, Any]:
    """Settings for the one job: no resubmission and no mail, and a runner that gives
    up on a monitor it cannot reach well within ``timeout``, so that failure is seen
    and diagnosed instead of timing out."""
    give_up = min(float(settings["MAX_TIME_BETWEEN_HEARTBEATS"]), max(5.0, timeout / 3))
    return {
        "NUM_RESUBMITS": 0,
        "NOTIFIERS": "",
        "MAX_TIME_BETWEEN_HEARTBEATS": give_up,
        "HEARTBEAT_FREQUENCY": min(float(settings["HEARTBEAT_FREQUENCY"]), give_up / 3),
        "CHECK_FREQUENCY": min(float(settings["CHECK_FREQUENCY"]), 2.0),
    }


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _travel(trip: Trip, plan: Plan, spec: BackendSpec, timeout: float) -> None:
    started = time.monotonic()
    executor = GridMapExecutor(plan.backend, require_cluster=spec.is_cluster,
                               temp_dir=plan.temp_dir,
                               settings=trip_settings(plan.settings, timeout))
    job = Job(probe_job, [trip.token, trip.exchange], name="gridmap_doctor", mem_free=None)
    executor.runtime.notifiers.add("gridmap doctor", _QueueNotes(trip))
    session = None
    try:
        future = executor.submit_job(job)
        # A backend without the monitor has no address (nor log directory).
        session = executor.session
        trip.address = getattr(session, "address", None)
        try:
            trip.report = future.result(max(0.0, started + timeout - time.monotonic()))
        except Exception as error:
            # Whatever the job raised comes out of result() too, a TimeoutError included.
            if not future.done():
                trip.timed_out = True
            elif job.cause_of_death:
                trip.cause = job.cause_of_death
                trip.death_kind = job.death_kind
            else:
                trip.raised = _last_line(job.traceback) or f"{type(error).__name__}: {error}"
        trip.seconds = time.monotonic() - started
        trip.started = job.state is not JobState.SUBMITTED
        trip.job_id = str(job.id or "")
        trip.host = str((trip.report or {}).get("host") or job.host_name or "")
    finally:
        # Nothing the doctor submitted may outlive it.
        executor.shutdown(wait=True, cancel_futures=True)
        executor.runtime.close_notifiers()
    log_dir = str(getattr(session, "log_dir", ""))
    if log_dir and os.path.isdir(log_dir):  # kept: the job failed
        trip.log_dir = log_dir


def exchange_directory(temp_dir: str) -> str:
    """A fresh directory in ``temp_dir`` for the files the job and this host exchange,
    by an absolute path: as a map does, ``~`` is this user's home, and a relative
    temp_dir is this process's, not the job's working directory."""
    root = os.path.abspath(os.path.expanduser(temp_dir))
    return tempfile.mkdtemp(prefix="gridmap-doctor-", dir=root)


def run_round_trip(plan: Plan, spec: BackendSpec, timeout: float) -> Trip:
    """Submit :func:`probe_job` on the plan's backend and wait at most ``timeout``
    seconds for its result (then cancel it). Never raises."""
    trip = Trip(secrets.token_hex(8), timeout)
    try:
        if spec.is_cluster:
            trip.exchange = exchange_directory(plan.temp_dir)
            Path(trip.exchange, TO_NODE).write_text(trip.token, encoding="utf-8")
    except OSError as error:
        trip.submit_error = error
        return trip

    def travel() -> None:
        try:
            _travel(trip, plan, spec, timeout)
        except Exception as error:
            trip.submit_error = error

    # A submission that hangs (a scheduler that never answers) must not hang the doctor.
    thread = threading.Thread(target=travel, name="gridmap-doctor", daemon=True)
    thread.start()
    thread.join(timeout + _GRACE)
    if thread.is_alive():
        trip.timed_out = True
    if trip.exchange is not None:
        try:
            trip.back = Path(trip.exchange, FROM_NODE).read_text(encoding="utf-8")
        except OSError as error:
            trip.back_error = f"{error.filename}: {error.strerror or error}"
        shutil.rmtree(trip.exchange, ignore_errors=True)
    return trip


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _number(text: str) -> str:
    match = re.match(r"\d+", text)
    return match.group() if match else ""


def scheduler_evidence(job_id: str, environment: dict[str, str]) -> str:
    """The variable of the job's environment that names the scheduler job the backend
    submitted (``JOB_ID=123`` for job ``123``), or "" when none does."""
    for name in SCHEDULER_VARIABLES:
        value = environment.get(name, "")
        if value and (not job_id or _number(value) == _number(job_id)):
            return f"{name}={value}"
    return ""


def _same_host(host: str, addresses: list[str] | None = None) -> bool:
    """Whether the job's host is this one: the same name and, where the job said, an
    address in common (hosts of one name, such as containers, have their own)."""
    if host.split(".")[0].lower() != socket.gethostname().split(".")[0].lower():
        return False
    return not addresses or bool(set(addresses) & set(node_addresses()))


def _node(trip: Trip) -> str:
    """The node the job ran on, with its addresses where it said: "host n1
    (10.0.0.7)"; "" when unknown."""
    if not trip.host:
        return ""
    addresses = [str(a) for a in (trip.report or {}).get("addresses") or ()]
    if not addresses:
        return f"host {trip.host}"
    shown = ", ".join(addresses[:_SHOWN_ADDRESSES])
    more = f" and {len(addresses) - _SHOWN_ADDRESSES} more" if len(addresses) > \
        _SHOWN_ADDRESSES else ""
    return f"host {trip.host} ({shown}{more})"


def _timed_out(trip: Trip, spec: BackendSpec) -> Check:
    within = f"no result within {trip.timeout:g} s"
    if trip.started:
        return Check(ROUND_TRIP, Verdict.FAIL, f"{within}: the job started but did not finish",
                     "run again with a longer --timeout; if it still fails, the nodes may be "
                     "overloaded")
    if trip.queue_note:
        return Check(ROUND_TRIP, Verdict.FAIL,
                     f"{within}: the job did not start: {trip.queue_note}",
                     "deal with what the scheduler says above (the doctor's job was "
                     "cancelled), then run again")
    waiting = ("see why jobs wait in the scheduler's queue (qstat, squeue); run again with "
               "a longer --timeout when the cluster is busy" if spec.is_cluster else
               "this machine may be overloaded: run again with a longer --timeout")
    return Check(ROUND_TRIP, Verdict.FAIL, f"{within}: the job did not start", waiting)


def check_round_trip(trip: Trip, plan: Plan, spec: BackendSpec) -> Check:
    """Check 4: the job ran, under the scheduler for a cluster backend, and its value
    came back."""
    error = trip.submit_error
    if isinstance(error, TempDirNotShared):
        return Check(ROUND_TRIP, Verdict.FAIL, "nothing was submitted: temp_dir is local to "
                     f"this host, and {spec.name} runs jobs on other hosts",
                     "see 'temp_dir shared' below")
    if error is not None:
        if isinstance(error, ConfigError):
            todo = ("correct the value, key or file named above; `gridmap config` shows "
                    "every setting and where it came from")
        elif isinstance(error, TransportError):
            todo = "see 'nodes reach monitor' below"
        else:
            todo = (f"check that {spec.name} accepts a job from this host when you submit one "
                    "by hand, then run gridmap doctor again")
        what = ("the monitor could not start its transport" if isinstance(error, TransportError)
                else f"{type(error).__name__}: {error}")
        return Check(ROUND_TRIP, Verdict.FAIL, f"the job could not be submitted: {what}", todo,
                     config_error=isinstance(error, ConfigError))
    if trip.timed_out:
        return _timed_out(trip, spec)
    kept = f"; its logs are in {trip.log_dir}" if trip.log_dir else ""
    who = f"the job on {_node(trip)}" if trip.host else "the job"
    if trip.raised:
        return Check(ROUND_TRIP, Verdict.FAIL, f"{who} raised {trip.raised}",
                     "the nodes need the same Python environment as this host (gridmap "
                     f"installed) and this working directory, {os.getcwd()}{kept}")
    if _unheard(trip):
        return Check(ROUND_TRIP, Verdict.FAIL, f"{who} died: {_short(trip.cause)}",
                     f"see 'nodes reach monitor' below{kept}")
    if _not_shared(trip, plan):
        return Check(ROUND_TRIP, Verdict.FAIL, f"{who} died: {_short(trip.cause)}",
                     f"see 'temp_dir shared' below{kept}")
    if trip.cause:
        return Check(ROUND_TRIP, Verdict.FAIL, f"{who} died: {trip.cause}",
                     f"read the cause above{kept}")
    report = trip.report or {}
    if report.get("token") != trip.token:
        return Check(ROUND_TRIP, Verdict.FAIL, f"the job returned {report!r:.200}, not the "
                     "value it was given", "report this as a bug of backend " + spec.name)
    if not spec.is_cluster:
        return Check(ROUND_TRIP, Verdict.PASS, f"value back in {_duration(trip.seconds)} from "
                     f"host {trip.host or '?'} (this machine)")
    took = f"value back in {_duration(trip.seconds)} from {_node(trip) or 'host ?'}"
    evidence = scheduler_evidence(trip.job_id, dict(report.get("environment") or {}))
    if not evidence:
        return Check(ROUND_TRIP, Verdict.FAIL,
                     f"{took}, but not as {spec.name} job {trip.job_id or '?'}: its environment "
                     f"has none of {', '.join(SCHEDULER_VARIABLES)} naming it",
                     f"the job ran outside the scheduler: check backend {spec.name}'s "
                     "configuration (`gridmap config`)")
    return Check(ROUND_TRIP, Verdict.PASS, f"{took}, as job {trip.job_id} ({evidence})")


def _short(cause: str) -> str:
    """A cause of death without the end of the job's log and without the advice the
    runner or the monitor add: the doctor's own is more precise."""
    return cause.partition("; its log ends:")[0].partition(": check that")[0]


def _skip(name: str, trip: Trip) -> Check:
    if trip.submit_error is not None:
        because = "the job could not be submitted"
    elif trip.timed_out:
        because = "the job did not finish within the timeout"
    elif trip.raised:
        because = "the job raised before it could tell"
    elif _unheard(trip):
        because = "the job never reached the monitor"
    else:
        because = "the job died first (see round trip)"
    return Check(name, Verdict.SKIP, f"skipped: because {because}")


def _unheard(trip: Trip) -> bool:
    """Whether the job died because its runner and the monitor never (or no longer)
    heard each other."""
    return bool(trip.cause) and trip.death_kind in UNHEARD


def _not_shared(trip: Trip, plan: Plan) -> bool:
    """Whether the job died because its node did not see temp_dir: a runner that could
    not see the map's directory, or a scheduler that could not open the job's logs
    there."""
    return bool(trip.cause) and (NOT_SHARED in trip.cause or plan.temp_dir in trip.cause)


def _ran_here(trip: Trip, spec: BackendSpec) -> str:
    report = trip.report or {}
    host = str(report.get("host", ""))
    addresses = report.get("addresses")
    if spec.is_cluster and host and _same_host(host, addresses):
        return "; it ran on this host, so other nodes were not tried"
    return ""


def _advice(plan: Plan) -> TransportAdvice:
    """What the chosen transport says of itself (the settings check made sure it is
    installed)."""
    return advice_for(plan.transport)


def _unreachable(trip: Trip, plan: Plan) -> Check:
    what, todo = _advice(plan).unreachable(plan.transport, trip.address, _short(trip.cause),
                                           plan.settings, plan.temp_dir)
    if trip.host:
        what += f" (the job ran on {_node(trip)})"
    return Check(MONITOR, Verdict.FAIL, what, todo)


def check_monitor(trip: Trip, plan: Plan, spec: BackendSpec) -> Check:
    """Check 5: the job's runner reached the monitor through the chosen transport."""
    advice = _advice(plan)
    if isinstance(trip.submit_error, TransportError):
        todo = advice.cannot_serve(plan.transport, plan.settings, plan.temp_dir)
        return Check(MONITOR, Verdict.FAIL, f"the monitor cannot serve: {trip.submit_error}",
                     todo)
    if _unheard(trip) or (trip.cause and advice.lost_by_transport(trip.cause, plan.temp_dir)):
        return _unreachable(trip, plan)
    if trip.report is None and not trip.raised:
        return _skip(MONITOR, trip)
    if trip.address is None:
        return Check(MONITOR, Verdict.PASS,
                     f"not needed: backend {spec.name} does not run jobs through the monitor")
    how = advice.route(plan.transport, plan.settings)
    node = f" from {_node(trip)}" if trip.host else ""
    return Check(MONITOR, Verdict.PASS, f"the job reached the monitor at {trip.address} "
                 f"({how}){node}{_ran_here(trip, spec)}")


def check_shared(trip: Trip, plan: Plan, spec: BackendSpec) -> Check:
    """Check 6: a job on a node sees temp_dir as this host does."""
    if not spec.is_cluster:
        return Check(SHARED, Verdict.PASS,
                     f"not needed: backend {spec.name} runs jobs on this machine")
    error = trip.submit_error
    if isinstance(error, TempDirNotShared):
        return Check(SHARED, Verdict.FAIL, f"{error.what}; nothing was submitted",
                     error.todo.replace("(or pass temp_dir=)", "(or pass --temp-dir)"))
    todo = (f"set DEFAULT_TEMP_DIR (or --temp-dir) to a directory every node mounts at the "
            f"same path (a network file system, such as your home directory), not one "
            f"local to each host as {plan.temp_dir} seems to be")
    if _not_shared(trip, plan):
        on = f" on {_node(trip)}" if trip.host else ""
        return Check(SHARED, Verdict.FAIL, f"the job could not use temp_dir{on}: "
                     f"{trip.cause}", todo)
    report = trip.report
    if report is None:
        return _skip(SHARED, trip)
    host = _node(trip) or "host ?"
    if "exchange_error" in report:
        return Check(SHARED, Verdict.FAIL, f"the job on {host} cannot use a file written "
                     f"here: {report['exchange_error']}", todo)
    if report.get("seen") != trip.token:
        return Check(SHARED, Verdict.FAIL, f"the job on {host} read another file than the "
                     f"one written here, at {trip.exchange}", todo)
    if trip.back is None or not trip.back.startswith(trip.token):
        return Check(SHARED, Verdict.FAIL, f"this host does not see the file the job on "
                     f"{host} wrote: {trip.back_error or 'its content differs'}", todo)
    return Check(SHARED, Verdict.PASS, f"a job on {host} read a file written here and "
                 f"wrote one back, in {plan.temp_dir}{_ran_here(trip, spec)}")
