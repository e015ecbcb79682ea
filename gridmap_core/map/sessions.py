"""The session directories maps keep in temp_dir, and removing those left behind.

Each monitored session makes ``TEMP_DIR/gridmap-XXXXXXXXXXXX/`` (its key, its jobs'
logs) and records there which process submitted the map: its host, pid and start
time. A map that ends removes the directory, or marks it ended when it keeps its
logs. A submitter that was killed (SIGKILL, a crash, a node that went down) cannot,
so the next map, and ``gridmap clean``, remove the directories whose submitter ran on
this host and is gone. A directory is never removed while its submitter lives, nor
for a submitter on another host, whose life cannot be checked from here.

"This host" is not told by the host name alone: hosts that share temp_dir may have
the same name (cloned login nodes, containers named ``localhost``). The record also
holds the kernel's boot id and the process-id namespace, where the system has them;
a submitter is checked here only when all three are this process's own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = [
    "PREFIX",
    "Session",
    "abandoned",
    "mark_ended",
    "record_submitter",
    "remove_abandoned",
    "sessions_in",
]
logger = logging.getLogger(__name__)

PREFIX = "gridmap-"
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
    """A session directory found in a temp_dir, and what its record says."""

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


def _read(path: Path) -> Session:
    try:
        record = json.loads((path / SUBMITTER).read_text(encoding="utf-8"))
        started = record.get("started")
        return Session(path, str(record["host"]), int(record["pid"]),
                       float(started) if started is not None else None,
                       bool(record.get("ended")), boot=str(record.get("boot") or ""),
                       pids=str(record.get("pids") or ""))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return Session(path, recorded=False)


def sessions_in(root: str | Path) -> list[Session]:
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
            found.append(_read(Path(entry.path)))
    return found


def abandoned(session: Session) -> bool:
    """Whether the map of ``session`` is over without having cleaned up: its record
    says it runs, on this host, and its submitting process is gone."""
    if not session.recorded or session.ended or not session.here:
        return False
    if session.pid == os.getpid():
        return False
    started = _start_time(session.pid)
    if started is None:
        return not psutil.pid_exists(session.pid)  # gone, or not ours to look at
    # The pid lives, but another process may have taken it since.
    return session.started is not None and abs(started - session.started) > _SAME_START


def remove(sessions: Iterable[Session]) -> list[Path]:
    """Remove these session directories; the ones removed."""
    removed = []
    for session in sessions:
        shutil.rmtree(session.path, ignore_errors=True)
        if not session.path.exists():
            removed.append(session.path)
    return removed


def remove_abandoned(root: str | Path) -> list[Path]:
    """Remove the session directories in ``root`` whose map was abandoned."""
    return remove(session for session in sessions_in(root) if abandoned(session))


def clean(roots: Iterable[str | Path], *, logs: bool = False, dry_run: bool = False
          ) -> list[str]:
    """What ``gridmap clean`` does in these temp_dirs: remove the session directories
    of abandoned maps, and with ``logs`` those of ended maps kept for their logs.
    Returns the lines to print."""
    lines = []
    left = {"running": 0, "elsewhere": 0, "unrecorded": 0, "kept": 0}
    verb = "would remove" if dry_run else "removed"
    for root in dict.fromkeys(Path(r).expanduser() for r in roots):
        for session in sessions_in(root):
            if abandoned(session):
                why = f"its submitter, pid {session.pid} on {session.host}, is gone"
            elif logs and session.ended:
                why = "its map ended; these are the logs it kept"
            else:
                left["unrecorded" if not session.recorded else "kept" if session.ended
                     else "elsewhere" if not session.here
                     else "running"] += 1
                continue
            if dry_run or remove([session]):
                lines.append(f"{verb} {session.path} ({why})")
            else:
                lines.append(f"could not remove {session.path} ({why})")
    words = {"running": "of running maps", "elsewhere": "of maps submitted from other hosts",
             "kept": "of ended maps, kept for their logs (--logs removes them)",
             "unrecorded": "with no submitter recorded (an older gridmap's, or being made)"}
    kept = [f"{count} {words[kind]}" for kind, count in left.items() if count]
    lines.append(f"{sum(left.values())} session directories left"
                 + (f": {'; '.join(kept)}" if kept else ""))
    return lines
