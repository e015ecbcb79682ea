"""How a runner ends, as whoever started it reads it: the runner's exit statuses and
:func:`describe_exit`, which turns an exit status (and the end of the runner's stderr)
into a cause of death.

The runner (:mod:`gridmap_core.node.runner`) exits with these statuses; the backends
that start runners read them back from their scheduler. Both import them from here, so
this module imports nothing of either, and only the standard library: the runner
imports it at each job's start.

Exit status: 0 when the result was delivered (also when the function raised);
:data:`EXIT_SETUP` for a bad command line or key file; :data:`EXIT_UNREACHABLE` when
the monitor could not be reached; :data:`EXIT_STOPPED` when the monitor said stop
(cancelled, or superseded by a resubmission); :data:`EXIT_LOST` when the monitor was
lost while the job ran or its result could not be delivered; :data:`EXIT_JOB_DIED`
when the job's process ended without a result (killed by a signal, or it exited);
:data:`EXIT_NOT_SHARED` when the node does not see the map's session directory in
temp_dir (temp_dir is not shared with the submitting host); :data:`EXIT_MAP_ENDED` when
the map was abandoned (no monitor came back within the grace), cancelled, or ended by
its monitor while the runner waited for one.
"""

from __future__ import annotations

import os
import re
import signal

__all__ = [
    "EXIT_JOB_DIED", "EXIT_LOST", "EXIT_MAP_ENDED", "EXIT_NOT_SHARED", "EXIT_SETUP",
    "EXIT_STOPPED", "EXIT_UNREACHABLE", "JOB_DIED", "NOT_SHARED", "describe_exit",
    "name_of_signal", "tail",
]

EXIT_SETUP = 2
EXIT_UNREACHABLE = 3
EXIT_STOPPED = 4
EXIT_LOST = 5
EXIT_JOB_DIED = 6
EXIT_NOT_SHARED = 7
EXIT_MAP_ENDED = 8
#: What a runner's exit with :data:`EXIT_NOT_SHARED` says, in every cause read from it.
NOT_SHARED = "temp_dir is not shared with this node"
#: How every cause of the job's process's death starts, as the runner logs it last
#: before it exits with :data:`EXIT_JOB_DIED`; :func:`describe_exit` looks for it.
JOB_DIED = "the job's process"
_EXIT_MEANINGS = {
    EXIT_SETUP: "the runner could not start",
    EXIT_UNREACHABLE: "the runner could not reach the monitor",
    EXIT_STOPPED: "stopped by the monitor",
    EXIT_LOST: "the runner lost the monitor",
    EXIT_JOB_DIED: f"{JOB_DIED} ended without a result",
    EXIT_NOT_SHARED: f"the runner cannot see the map's session directory: {NOT_SHARED}",
    EXIT_MAP_ENDED: "the map was abandoned, cancelled or ended while the runner waited "
                    "for its monitor",
}


def describe_exit(code: int | None, signal_name: str | None = None,
                  err_log: str | None = None) -> str:
    """A cause of death for a runner that ended without a result: killed by
    ``signal_name`` (or by signal ``-code``), or exited with status ``code``. For an
    exit, the end of its stderr log says why: the runner's own last line for the
    statuses it gives itself, else the last lines of what Python or the job wrote
    (a Python that could not start, a crash)."""
    if signal_name is None and code is not None and code < 0:
        signal_name = name_of_signal(-code)
    if signal_name:
        return f"killed by {signal_name}"
    if code is None:
        return "the runner ended without a result"
    lines = _log_lines(err_log)
    if code == EXIT_JOB_DIED:
        # The runner logged how its job's process ended, as its last word.
        told = [line[line.index(JOB_DIED):] for line in lines if JOB_DIED in line]
        if told:
            return f"{told[-1][:300]} (exit status {code})"
    cause = _EXIT_MEANINGS.get(code, "the runner ended without a result")
    cause += f" (exit status {code})"
    if lines and code in _EXIT_MEANINGS:
        cause += f"; its log ends: {lines[-1][:300]}"
    elif lines:
        cause += f"; its stderr ends: {_last_words(lines)}"
    return cause


def name_of_signal(number: int) -> str:
    """A signal's name (``SIGKILL``), or ``signal N`` for a number that has none: how
    every cause of death names the signal that killed a process."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def tail(path: str, max_bytes: int = 4096) -> str:
    """The last ``max_bytes`` of a text file (a job's log), or '' if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes and "\n" in text:
        text = text.split("\n", 1)[1]  # drop the partial first line
    return text


_RUNNER_PREFIX = re.compile(r"^gridmap runner \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
# Lines of a fatal Python error that say nothing about its cause.
_NOISE = re.compile(r"^(<no Python frame>|Python runtime state: .*|"
                    r"(Current thread|Thread) 0x[0-9a-f]+ \(most recent call first\):)$")
_PATH_SETTING = re.compile(r"^(PYTHONHOME|PYTHONPATH) = (?!\(not set\)).*")


def _log_lines(err_log: str | None) -> list[str]:
    """The non-blank lines at the end of a stderr log, without the runner's logging
    prefix (its level stays)."""
    if not err_log:
        return []
    return [_RUNNER_PREFIX.sub("", line.strip())
            for line in tail(err_log, 4096).splitlines() if line.strip()]


def _last_words(lines: list[str]) -> str:
    """What a log's last lines say, on one line: a fatal Python error from its first
    line on (with the PYTHONHOME or PYTHONPATH it reported), else the last three."""
    fatal = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error:")]
    if fatal:
        setting = [line for line in lines[:fatal[-1]] if _PATH_SETTING.match(line)]
        chosen = [line for line in lines[fatal[-1]:] if not _NOISE.match(line)] + setting
    else:
        chosen = [line for line in lines if not _NOISE.match(line)][-3:]
    text = " | ".join(chosen)
    return text if len(text) <= 600 else "…" + text[-599:]
