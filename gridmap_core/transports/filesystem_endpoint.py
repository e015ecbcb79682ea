"""The filesystem transport's monitor side: a map's directory, polled for requests."""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gridmap_core.transports import Frames, TransportError, check_options, max_bytes_option
from gridmap_core.transports.filesystem_files import (
    MESSAGE_NAME,
    SLACK,
    _BadFile,
    private_directory,
    read_message,
    write_message,
)
from gridmap_core.transports.filesystem_options import (
    DEFAULT_DIRECTORY,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_STALE_AFTER,
    FASTEST_POLL,
    OPTIONS,
    bool_option,
    float_option,
)
from gridmap_core.wire.protocol import DEFAULT_MAX_BYTES

__all__ = ["FilesystemEndpoint"]


class FilesystemEndpoint:
    """The monitor's side: a fresh 0700 directory, polled for requests. One thread."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        given = check_options("filesystem", options, OPTIONS)
        self.max_bytes = max_bytes_option(given, DEFAULT_MAX_BYTES)
        self.poll_interval = float_option(given, "poll_interval", DEFAULT_POLL_INTERVAL)
        self.stale_after = float_option(given, "stale_after", DEFAULT_STALE_AFTER)
        self.fsync = bool_option(given, "fsync")
        base = Path(given.get("directory") or DEFAULT_DIRECTORY).expanduser().absolute()
        try:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdtemp makes the directory 0700 and a name nobody could have prepared
            self.directory = private_directory(Path(tempfile.mkdtemp(prefix="map-", dir=base)))
            self._requests = private_directory(self.directory / "requests")
            self._replies = private_directory(self.directory / "replies")
        except OSError as error:
            raise TransportError(
                f"filesystem transport cannot create its directory in {base}: {error}"
            ) from error
        self.address = self.directory.as_uri()
        self.received = 0
        self.dropped = 0
        self._pending: collections.deque[str] = collections.deque()
        self._interval = FASTEST_POLL
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
            if MESSAGE_NAME.match(name):
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
        limit = self.max_bytes + SLACK
        while True:
            if not self._pending:
                self._scan()
            while self._pending:
                name = self._pending.popleft()
                path = self._requests / name
                try:
                    frames = read_message(path, limit)
                except FileNotFoundError:
                    continue  # withdrawn by its runner after a timeout
                except (_BadFile, OSError):
                    self._drop(path)
                    continue
                path.unlink(missing_ok=True)
                self.received += 1
                self._interval = FASTEST_POLL
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
        if not isinstance(token, str) or not MESSAGE_NAME.match(token):
            raise TransportError(f"filesystem endpoint: {token!r} is not a request of ours")
        try:
            write_message(self._replies, token, frames, self.fsync)
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
