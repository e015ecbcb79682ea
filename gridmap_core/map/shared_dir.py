"""Whether a map's temp_dir can be seen by the hosts that run its jobs.

A monitored map keeps its session directory in temp_dir: the key the runners read,
the logs the scheduler opens on the node before the job starts, the filesystem
transport's messages. Every node must see that directory at the same path. Whether it
does cannot be proven from the submitting host, but some directories are known never
to be shared: each host has its own ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run``,
and a tmpfs lives in one host's memory. :func:`check_shared` refuses such a temp_dir
before anything is submitted, when the scheduler's nodes include hosts other than this
one (a one-host cluster runs its jobs here, where every directory is seen).

A local disk (ext4, xfs) is not refused: the submitting host may export it to the
nodes over NFS. The runner tells the other cases apart on the node (it exits with
``EXIT_NOT_SHARED`` when it cannot see the session directory).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

from gridmap_core.errors import GridMapError

__all__ = ["TempDirNotShared", "check_shared", "local_reason", "other_hosts"]

# Directories every host has its own of (macOS's /tmp is /private/tmp).
LOCAL_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run", "/var/lock",
               "/private/tmp", "/private/var/tmp")
# File systems that live in one host's memory, or describe its kernel: never exported.
LOCAL_TYPES = frozenset({"tmpfs", "ramfs", "devtmpfs", "hugetlbfs", "mqueue", "proc",
                         "sysfs", "devpts"})
_MOUNTINFO = "/proc/self/mountinfo"
_SHOWN_HOSTS = 3  # other hosts named in the error; the rest are counted


class TempDirNotShared(GridMapError):
    """temp_dir is local to this host, but the map's jobs run on other hosts: ``what``
    says so (the directory, why it is local, which hosts), ``todo`` what to do."""

    def __init__(self, temp_dir: str, reason: str, hosts: Sequence[str]) -> None:
        self.temp_dir = temp_dir
        self.reason = reason
        self.hosts = tuple(hosts)
        shown = ", ".join(self.hosts[:_SHOWN_HOSTS])
        if len(self.hosts) > _SHOWN_HOSTS:
            shown += f" and {len(self.hosts) - _SHOWN_HOSTS} more"
        self.what = (f"temp_dir {temp_dir} is local to this host ({reason}), but the jobs "
                     f"run on other hosts ({shown}): they could not open their logs or "
                     "read the map's key there")
        example = Path.home() / "gridmap-tmp"
        self.todo = ("set DEFAULT_TEMP_DIR (or pass temp_dir=) to a directory that every "
                     "node mounts at the same path, such as one in your home directory: "
                     f"mkdir -p {example} and export DEFAULT_TEMP_DIR={example}")
        super().__init__(f"{self.what}, so nothing was submitted. {self.todo[0].upper()}"
                         f"{self.todo[1:]}")

    def __reduce__(self) -> tuple[type[TempDirNotShared], tuple[str, str, tuple[str, ...]]]:
        return type(self), (self.temp_dir, self.reason, self.hosts)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def file_system_type(path: str, mountinfo: str = _MOUNTINFO) -> tuple[str, str] | None:
    """The type and mount point of the file system ``path`` (a real path) is on, read
    from ``mountinfo``; None where the system does not say (not Linux)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    found: tuple[str, str] | None = None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts, after = fields.split(), rest.split()
        if len(parts) < 5 or not after:
            continue
        point = _unescape(parts[4])
        # The longest mount point over the path wins; of equal ones, the last mounted.
        if _under(path, point) and (found is None or len(point) >= len(found[1])):
            found = (after[0], point)
    return found


def local_reason(temp_dir: str, mountinfo: str = _MOUNTINFO) -> str | None:
    """Why ``temp_dir`` is certainly local to this host, or None when it may be shared.

    Both the path as given and its real path count: nodes look the given path up
    through their own ``/tmp`` even when it is a link to a shared directory here,
    and a link in a home directory to ``/tmp`` leads them into their own ``/tmp``.
    """
    given = os.path.normpath(os.path.abspath(os.path.expanduser(temp_dir)))
    real = os.path.realpath(given)
    for path in dict.fromkeys((given, real)):
        for root in LOCAL_ROOTS:
            if _under(path, root):
                via = "" if path == given else f" (where {given} leads)"
                return f"it is in {root}{via}, and every host has a {root} of its own"
    found = file_system_type(real, mountinfo)
    if found is not None and found[0] in LOCAL_TYPES:
        kind, point = found
        return (f"it is on a {kind} file system (mounted at {point}), which lives in this "
                "host's memory")
    return None


def _short(name: str) -> str:
    return name.split(".")[0].lower()


def _this_host(peer: str, host: str, mine: set[str]) -> bool:
    if _short(peer) in (_short(host), "localhost"):
        return True
    try:
        infos = socket.getaddrinfo(peer, None, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return False  # a name this host cannot resolve is no name of its own
    addresses = {str(info[4][0]) for info in infos}
    return any(ipaddress.ip_address(a).is_loopback or a in mine for a in addresses)


def _local_addresses() -> set[str]:
    import psutil

    return {address.address for addresses in psutil.net_if_addrs().values()
            for address in addresses if address.family == socket.AF_INET}


def other_hosts(peers: Iterable[str], limit: int | None = None) -> list[str]:
    """The ``peers`` (the scheduler's nodes) that are not this host: not its name, and
    not a name that resolves to one of its addresses. Stops after ``limit`` found."""
    host = socket.gethostname()
    mine: set[str] | None = None
    others: list[str] = []
    for peer in peers:
        if _short(peer) in (_short(host), "localhost"):
            continue
        if mine is None:
            mine = _local_addresses()
        if not _this_host(peer, host, mine):
            others.append(peer)
            if limit is not None and len(others) >= limit:
                break
    return others


def check_shared(temp_dir: str, peers: Sequence[str]) -> None:
    """Raise :class:`TempDirNotShared` when ``temp_dir`` is certainly local to this
    host and some of ``peers`` (the hosts that run the jobs) are other hosts."""
    reason = local_reason(temp_dir)
    if reason is None or not peers:
        return
    others = other_hosts(peers)
    if others:
        raise TempDirNotShared(temp_dir, reason, others)
