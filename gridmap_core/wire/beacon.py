"""The files in a map's session directory through which its runners find the monitor.

A map outlives the process that submitted it: a monitor started later (``gridmap
attach``) serves it from a new address. The runners cannot be told on their command
line, so the session directory, which every node sees, holds:

* ``monitor.json``: the transport and address of the monitor serving the map now,
  written whole by each monitor as it starts. The monitor also touches the file
  every second or so: a runner that has had no answer tells a monitor that is alive
  but out of reach (its file keeps changing) from one that is gone (it does not);
* ``launched``: the scheduler's ids of every job the map submitted, a line per
  launch, and the command that cancels them, so the runner that gives up on the map
  can cancel its jobs in one call;
* ``abandoned`` or ``cancelled``: marks that end the map. The first runner to give
  up writes ``abandoned``; ``gridmap cancel`` writes ``cancelled``. Runners waiting
  for a monitor read them and exit at once; a monitor reads ``cancelled`` and ends
  the map.

Nothing here is secret, and nothing is unpickled: the files are JSON and text,
written 0600 like the rest of the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ABANDONED",
    "CANCELLED",
    "ENDED",
    "LAUNCHED",
    "MONITOR_FILE",
    "MonitorRecord",
    "end_mark",
    "launched",
    "mark",
    "mark_reason",
    "read_monitor",
    "record_launched",
    "touch_monitor",
    "write_monitor",
]

MONITOR_FILE = "monitor.json"
LAUNCHED = "launched"
ABANDONED = "abandoned"
CANCELLED = "cancelled"
ENDED = "ended"  # written by the monitor as the map ends, however it ends
_CANCEL_LINE = "# cancel: "


@dataclass(frozen=True)
class MonitorRecord:
    """Where the monitor serving a map listens, and who runs it."""

    transport: str
    address: str
    host: str
    pid: int
    started: float  # time.time() when it started serving


def _write_whole(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a reader never sees half."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def write_monitor(directory: str | os.PathLike[str], record: MonitorRecord) -> None:
    """Say that the monitor of ``record`` now serves the map of ``directory``."""
    _write_whole(Path(directory) / MONITOR_FILE, json.dumps(record.__dict__))


def touch_monitor(directory: str | os.PathLike[str]) -> None:
    """Show that the monitor is alive: the file's modification time moves on."""
    # Gone once the map ends: nothing left to show.
    with contextlib.suppress(OSError):
        os.utime(Path(directory) / MONITOR_FILE)


def read_monitor(directory: str | os.PathLike[str]) -> tuple[MonitorRecord, int] | None:
    """The monitor record of ``directory`` and the file's modification time in
    nanoseconds (which changes while the monitor lives); None if there is none."""
    path = Path(directory) / MONITOR_FILE
    try:
        with open(path, encoding="utf-8") as handle:
            changed = os.fstat(handle.fileno()).st_mtime_ns
            raw = json.load(handle)
        record = MonitorRecord(str(raw["transport"]), str(raw["address"]), str(raw["host"]),
                               int(raw["pid"]), float(raw["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record, changed


def record_launched(directory: str | os.PathLike[str], job_ids: list[str],
                    cancel: list[str] | None = None) -> None:
    """Add scheduler job ids to the map's list; ``cancel`` (the command that cancels
    jobs, ids to be appended) is recorded the first time it is given."""
    path = Path(directory) / LAUNCHED
    lines = []
    if cancel and not path.exists():
        lines.append(_CANCEL_LINE + json.dumps(cancel))
    lines.extend(str(job_id) for job_id in job_ids if job_id)
    if not lines:
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))


def launched(directory: str | os.PathLike[str]) -> tuple[list[str], list[str] | None]:
    """The map's scheduler job ids, in launch order without repeats, and the command
    that cancels them (None when the scheduler named none)."""
    ids: dict[str, None] = {}
    cancel = None
    try:
        text = (Path(directory) / LAUNCHED).read_text(encoding="utf-8")
    except OSError:
        return [], None
    for line in text.splitlines():
        if line.startswith(_CANCEL_LINE):
            try:
                parsed = json.loads(line[len(_CANCEL_LINE):])
            except ValueError:
                continue
            if isinstance(parsed, list) and all(isinstance(part, str) for part in parsed):
                cancel = parsed
        elif line.strip():
            ids[line.strip()] = None
    return list(ids), cancel


def mark(directory: str | os.PathLike[str], name: str, why: str) -> bool:
    """Write the mark ``name`` (ABANDONED or CANCELLED) saying ``why``; True when
    this call made it, False when it was there already."""
    path = Path(directory) / name
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps({"why": why, "at": time.time()}))
    return True


def end_mark(directory: str | os.PathLike[str]) -> str | None:
    """CANCELLED, ABANDONED or ENDED when the map of ``directory`` was ended so
    (cancelled from outside, given up by its runners, or ended by its monitor), else
    None."""
    for name in (CANCELLED, ABANDONED, ENDED):
        if os.path.exists(os.path.join(directory, name)):
            return name
    return None


def mark_reason(directory: str | os.PathLike[str], name: str) -> str:
    """What the mark ``name`` says of why the map ended; '' when it says nothing
    readable (or is not there)."""
    try:
        raw = json.loads((Path(directory) / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    why = raw.get("why") if isinstance(raw, dict) else None
    return why if isinstance(why, str) else ""
