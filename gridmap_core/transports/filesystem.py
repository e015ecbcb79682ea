"""The ``filesystem`` transport: messages are files in a directory shared with the nodes.

For clusters whose compute nodes cannot open a connection to the submitting host. The
monitor makes one directory per map (mode 0700) under the ``directory`` option::

    DIRECTORY/map-XXXXXXXX/
        requests/   CLIENT.N.msg   written by runners, read and deleted by the monitor
        replies/    CLIENT.N.msg   written by the monitor, read and deleted by runners

Every file is written under a temporary name starting with ``.`` and then renamed,
so a reader sees a whole message or none (rename is atomic on NFS too). A file holds
``b"GMF1"``, the number of frames, each frame's length, then the frames: written
with one ``writev`` and read into one buffer, so frames are neither joined nor copied
in Python.

Both sides poll: quickly (1 ms) while messages flow, backing off to
``poll_interval`` when idle. On NFS a new file can take up to the client's attribute
cache time (``acdirmin``/``acdirmax``, ``lookupcache``) to appear on another host,
which delays, but does not break, an exchange.
"""

from __future__ import annotations

import collections
import io
import os
import re
import secrets
import shutil
import socket
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from gridmap_core.transports import (
    Frames,
    TransportError,
    TransportTimeout,
    check_options,
    max_bytes_option,
)
from gridmap_core.wire.protocol import DEFAULT_MAX_BYTES, MAX_HEADER_BYTES

__all__ = ["OPTIONS", "FilesystemClient", "FilesystemEndpoint", "FilesystemTransport"]

#: Options of a ``[transports.filesystem]`` section.
OPTIONS = ("directory", "poll_interval", "fsync", "stale_after", "max_bytes")
DEFAULT_DIRECTORY = Path.home() / ".gridmap" / "transport"
DEFAULT_POLL_INTERVAL = 0.02
DEFAULT_STALE_AFTER = 600.0
_FASTEST_POLL = 0.001
_MAGIC = b"GMF1"
_PREFIX = struct.Struct("!4sI")
_MAX_FRAMES = 16
# Room beyond the payload for the header, the MAC and the file's own prefix.
_SLACK = MAX_HEADER_BYTES + 4096
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}\.[0-9]{1,20}\.msg$")
# Names of abandoned requests a client remembers, to delete their late replies.
_MAX_ABANDONED = 1000
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _BadFile(Exception):
    """A message file that is not one: dropped (deleted) by whoever finds it."""


def _write_all(fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    views = [view for view in views if len(view)]
    while views:
        # writev: one system call for a small message, no joined copy for a large one
        written = os.writev(fd, views[:512])
        while written:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0


def _write_message(directory: Path, name: str, frames: Frames, fsync: bool) -> None:
    """Write ``frames`` to ``directory/name`` atomically: a temporary name, then rename."""
    lengths = [memoryview(frame).nbytes for frame in frames]
    if len(lengths) > _MAX_FRAMES:
        raise TransportError(f"{len(lengths)} frames, at most {_MAX_FRAMES}")
    prefix = _PREFIX.pack(_MAGIC, len(lengths)) + struct.pack(f"!{len(lengths)}Q", *lengths)
    temporary = directory / f".{name}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
    try:
        _write_all(fd, [prefix, *frames])
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(temporary, directory / name)


def _read_message(path: Path, limit: int) -> list[memoryview]:
    """The frames of a message file, as views of one buffer. Raises FileNotFoundError
    if there is no such file, and :class:`_BadFile` if it is not a message of ours."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _BadFile("not a regular file")
        size = info.st_size
        # Judged from the size alone: an oversized file is never read.
        if size > limit:
            raise _BadFile(f"{size} bytes, more than the limit of {limit}")
        buffer = bytearray(size)
        view = memoryview(buffer)
        with io.FileIO(fd, closefd=False) as reader:
            done = 0
            while done < size:
                count = reader.readinto(view[done:])
                if not count:
                    raise _BadFile("shorter than its size")
                done += count
    finally:
        os.close(fd)
    if size < _PREFIX.size:
        raise _BadFile("too short")
    magic, count = _PREFIX.unpack_from(view)
    lengths_end = _PREFIX.size + 8 * count
    if magic != _MAGIC or count > _MAX_FRAMES or lengths_end > size:
        raise _BadFile("not a gridmap message file")
    lengths = struct.unpack_from(f"!{count}Q", view, _PREFIX.size)
    if lengths_end + sum(lengths) != size:
        raise _BadFile("frame lengths do not add up to the file's size")
    frames = []
    start = lengths_end
    for length in lengths:
        frames.append(view[start:start + length])
        start += length
    return frames


def _private_directory(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    # mkdir's mode passes through the umask; set it exactly.
    os.chmod(path, 0o700)
    return path


def _float_option(options: Mapping[str, Any], name: str, default: float) -> float:
    value = options.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0:
        raise TransportError(f"filesystem option {name}={value!r} must be a positive number")
    return number


def _bool_option(options: Mapping[str, Any], name: str) -> bool:
    value = options.get(name, False)
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                      "no", "off", ""):
        return value.lower() in ("1", "true", "yes", "on")
    if not isinstance(value, bool):
        raise TransportError(f"filesystem option {name}={value!r} must be true or false")
    return value


class FilesystemEndpoint:
    """The monitor's side: a fresh 0700 directory, polled for requests. One thread."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        given = check_options("filesystem", options, OPTIONS)
        self.max_bytes = max_bytes_option(given, DEFAULT_MAX_BYTES)
        self.poll_interval = _float_option(given, "poll_interval", DEFAULT_POLL_INTERVAL)
        self.stale_after = _float_option(given, "stale_after", DEFAULT_STALE_AFTER)
        self.fsync = _bool_option(given, "fsync")
        base = Path(given.get("directory") or DEFAULT_DIRECTORY).expanduser().absolute()
        try:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdtemp makes the directory 0700 and a name nobody could have prepared
            self.directory = _private_directory(Path(tempfile.mkdtemp(prefix="map-", dir=base)))
            self._requests = _private_directory(self.directory / "requests")
            self._replies = _private_directory(self.directory / "replies")
        except OSError as error:
            raise TransportError(
                f"filesystem transport cannot create its directory in {base}: {error}"
            ) from error
        self.address = self.directory.as_uri()
        self.received = 0
        self.dropped = 0
        self._pending: collections.deque[str] = collections.deque()
        self._interval = _FASTEST_POLL
        self._next_sweep = time.monotonic() + self.stale_after / 4
        self._closed = False

    def _scan(self) -> None:
        try:
            with os.scandir(self._requests) as entries:
                names = sorted(entry.name for entry in entries)
        except FileNotFoundError:
            raise TransportError(f"filesystem transport: {self._requests} has gone") from None
        for name in names:
            if name.startswith("."):
                continue  # a request still being written
            if _NAME.match(name):
                self._pending.append(name)
            else:
                self._drop(self._requests / name)

    def _drop(self, path: Path) -> None:
        self.dropped += 1
        try:
            path.unlink()
        except IsADirectoryError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass

    def _sweep(self) -> None:
        """Delete replies nobody fetched and half-written requests of dead runners."""
        cutoff = time.time() - self.stale_after
        for directory, only_temporary in ((self._replies, False), (self._requests, True)):
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        if only_temporary and not entry.name.startswith("."):
                            continue
                        try:
                            if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                                os.unlink(entry.path)
                        except OSError:
                            pass
            except FileNotFoundError:
                pass

    def receive(self, timeout: float) -> tuple[str, list[memoryview]] | None:
        """The next request, or None after ``timeout`` seconds; see :class:`Endpoint`."""
        if self._closed:
            raise TransportError("filesystem endpoint is closed")
        deadline = time.monotonic() + max(timeout, 0.0)
        limit = self.max_bytes + _SLACK
        while True:
            if not self._pending:
                self._scan()
            while self._pending:
                name = self._pending.popleft()
                path = self._requests / name
                try:
                    frames = _read_message(path, limit)
                except FileNotFoundError:
                    continue  # withdrawn by its runner after a timeout
                except (_BadFile, OSError):
                    self._drop(path)
                    continue
                path.unlink(missing_ok=True)
                self.received += 1
                self._interval = _FASTEST_POLL
                return name, frames
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + self.stale_after / 4
                self._sweep()
            remaining = deadline - now
            if remaining <= 0:
                return None
            time.sleep(min(self._interval, remaining))
            self._interval = min(self._interval * 2, self.poll_interval)

    def reply(self, token: str, frames: Frames) -> None:
        """Write the reply file the runner that sent request ``token`` is waiting for."""
        if not isinstance(token, str) or not _NAME.match(token):
            raise TransportError(f"filesystem endpoint: {token!r} is not a request of ours")
        try:
            _write_message(self._replies, token, frames, self.fsync)
        except FileExistsError:
            pass  # a reply to this request is being written already: the first one stands
        except FileNotFoundError:
            raise TransportError(f"filesystem transport: {self._replies} has gone") from None

    def close(self) -> None:
        """Delete the map's directory and everything left in it. Safe to call twice."""
        self._closed = True
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> FilesystemEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _directory_of(address: str) -> Path:
    parsed = urlparse(address)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost") or not parsed.path:
        raise TransportError(
            f"filesystem transport cannot use {address!r}: expected file:///path/to/directory"
        )
    return Path(unquote(parsed.path))


class FilesystemClient:
    """A runner's side: writes request files, polls for the reply file. Thread-safe."""

    def __init__(self, address: str, options: Mapping[str, Any] | None = None) -> None:
        given = check_options("filesystem", options, OPTIONS)
        self.address = address
        self.directory = _directory_of(address)
        self.max_bytes = max_bytes_option(given, DEFAULT_MAX_BYTES)
        self.poll_interval = _float_option(given, "poll_interval", DEFAULT_POLL_INTERVAL)
        self.stale_after = _float_option(given, "stale_after", DEFAULT_STALE_AFTER)
        self.fsync = _bool_option(given, "fsync")
        self._requests = self.directory / "requests"
        self._replies = self.directory / "replies"
        if not (self._requests.is_dir() and self._replies.is_dir()):
            raise TransportError(
                f"filesystem transport: {self.directory} is not a map directory (is it on a "
                "filesystem shared with this host, and is the map still running?)"
            )
        host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40]
        self.client_id = f"{host}-{os.getpid()}-{secrets.token_hex(4)}"
        self._count = 0
        self._lock = threading.Lock()
        self._closed = False
        # name -> when given up; their replies may still come and must not linger
        self._abandoned: dict[str, float] = {}

    def _forget_abandoned(self) -> None:
        now = time.monotonic()
        for name, since in list(self._abandoned.items()):
            try:
                (self._replies / name).unlink()
            except FileNotFoundError:
                # no reply yet; the monitor's sweep deletes one that comes very late
                if now - since < self.stale_after:
                    continue
            except OSError:
                pass
            del self._abandoned[name]

    def request(self, frames: Frames, timeout: float) -> list[memoryview]:
        """Send ``frames``, return the reply's frames; see :class:`Client`."""
        with self._lock:
            if self._closed:
                raise TransportError(f"filesystem client for {self.address} is closed")
            deadline = time.monotonic() + max(timeout, 0.0)
            if self._abandoned:
                self._forget_abandoned()
            self._count += 1
            name = f"{self.client_id}.{self._count}.msg"
            try:
                _write_message(self._requests, name, frames, self.fsync)
            except FileNotFoundError:
                raise TransportError(
                    f"filesystem transport: {self._requests} has gone (the map has ended)"
                ) from None
            reply = self._replies / name
            limit = self.max_bytes + _SLACK
            interval = _FASTEST_POLL
            while True:
                try:
                    answer = _read_message(reply, limit)
                except FileNotFoundError:
                    pass
                except (_BadFile, OSError):
                    reply.unlink(missing_ok=True)  # not a reply the monitor wrote
                else:
                    reply.unlink(missing_ok=True)
                    return answer
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Withdraw the request if the monitor has not taken it yet.
                    (self._requests / name).unlink(missing_ok=True)
                    self._abandoned[name] = time.monotonic()
                    while len(self._abandoned) > _MAX_ABANDONED:
                        del self._abandoned[next(iter(self._abandoned))]
                    raise TransportTimeout(f"no reply in {self.directory} within {timeout:g} s")
                time.sleep(min(interval, remaining))
                interval = min(interval * 2, self.poll_interval)

    def close(self) -> None:
        """Stop; later requests raise. Safe to call twice."""
        with self._lock:
            self._closed = True
            self._forget_abandoned()

    def __enter__(self) -> FilesystemClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FilesystemTransport:
    """Creates :class:`FilesystemEndpoint` and :class:`FilesystemClient` objects.

    Options: ``directory`` (where map directories are made; it must be on a
    filesystem the compute nodes share; default ``~/.gridmap/transport``),
    ``poll_interval`` (longest wait between looks for a file when idle, default
    0.02 s), ``fsync`` (flush each file to disk before renaming it, default false),
    ``stale_after`` (seconds after which unfetched replies and half-written requests
    are deleted, default 600), ``max_bytes`` (largest payload, default 1 GiB).
    """

    name = "filesystem"

    def serve(self, options: Mapping[str, Any] | None = None) -> FilesystemEndpoint:
        """Make the map's directory and serve requests from it."""
        return FilesystemEndpoint(options)

    def connect(self, address: str, options: Mapping[str, Any] | None = None
                ) -> FilesystemClient:
        """Use the map directory at ``address`` (``file:///path``)."""
        return FilesystemClient(address, options)
