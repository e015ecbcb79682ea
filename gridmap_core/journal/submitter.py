"""The record of the process that submitted a map, in its session directory, and
whether that process still lives.

Each monitored session records in ``submitter.json`` which process submits its map:
its host, pid and start time. Whether that process lives can be checked only on its
own machine, and "its own machine" is not told by the host name alone: hosts that
share temp_dir may have the same name (cloned login nodes, containers named
``localhost``). The record also holds the kernel's boot id and the process-id
namespace, where the system has them; a submitter is checked here only when all
three are this process's own.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "PREFIX",
    "SUBMITTER",
    "Session",
    "lives",
    "machine",
    "mark_ended",
    "read_session",
    "record_submitter",
    "session_directories",
]

PREFIX = "gridmap-"  # every session directory's name starts so
SUBMITTER = "submitter.json"
# Process start times are read from /proc in clock ticks: a recorded one and a fresh
# reading of the same process agree to well within this many seconds.
_SAME_START = 1.0


def _start_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _write(directory: Path, record: dict[str, object]) -> None:
    """Write the submitter record whole or not at all (a reader never sees half)."""
    temporary = directory / f".{SUBMITTER}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    os.replace(temporary, directory / SUBMITTER)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return ""


def _pid_space() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def machine() -> dict[str, str]:
    """What tells this process's machine and process ids apart from another's with
    the same host name: the kernel's boot id and the pid namespace ("" for either
    where the system does not say)."""
    return {"boot": _read_text("/proc/sys/kernel/random/boot_id"), "pids": _pid_space()}


def record_submitter(directory: Path) -> None:
    """Record that this process, on this host, submits the map of ``directory``."""
    pid = os.getpid()
    _write(directory, {"host": socket.gethostname(), **machine(), "pid": pid,
                       "started": _start_time(pid), "ended": False})


def mark_ended(directory: Path) -> None:
    """The map of ``directory`` ended and keeps its logs there: not abandoned."""
    path = directory / SUBMITTER
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    _write(directory, {**record, "ended": True})


@dataclass(frozen=True)
class Session:
    """A session directory, and what its submitter record says."""

    path: Path
    host: str = ""
    pid: int = 0
    started: float | None = None
    ended: bool = False
    recorded: bool = True  # False: no readable record (an older gridmap, or one
    # being made right now)
    boot: str = ""  # the submitter's kernel boot id and pid namespace ("": not
    pids: str = ""  # recorded, by an older gridmap or a system without them)

    @property
    def here(self) -> bool:
        """Whether its submitter ran on this machine, among these process ids."""
        if self.host != socket.gethostname():
            return False
        mine = machine()
        return all(not theirs or theirs == mine[name]
                   for name, theirs in (("boot", self.boot), ("pids", self.pids)))


def read_session(path: Path) -> Session:
    """The session directory ``path`` with its submitter record (``recorded`` False
    when it has none that can be read)."""
    try:
        record = json.loads((path / SUBMITTER).read_text(encoding="utf-8"))
        started = record.get("started")
        return Session(path, str(record["host"]), int(record["pid"]),
                       float(started) if started is not None else None,
                       bool(record.get("ended")), boot=str(record.get("boot") or ""),
                       pids=str(record.get("pids") or ""))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return Session(path, recorded=False)


def lives(session: Session) -> bool | None:
    """Whether the submitting process of ``session`` lives: None when that cannot be
    told from here (no record, or a process of another machine)."""
    if not session.recorded or not session.here:
        return None
    if session.pid == os.getpid():
        return True
    started = _start_time(session.pid)
    if started is None:
        return bool(psutil.pid_exists(session.pid))  # gone, or not ours to look at
    # The pid lives, but another process may have taken it since.
    return session.started is None or abs(started - session.started) <= _SAME_START


def session_directories(root: str | os.PathLike[str]) -> list[Path]:
    """This user's session directories in ``root`` (none if it cannot be listed)."""
    found = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        # Only real directories of this user: never through a link, never another's.
        if entry.is_dir(follow_symlinks=False) and info.st_uid == os.getuid():
            found.append(Path(entry.path))
    return found
