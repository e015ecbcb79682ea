"""The filesystem transport's runner side: request files written, reply files awaited."""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Mapping
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
from gridmap_core.transports.filesystem_files import SLACK, _BadFile, read_message, write_message
from gridmap_core.transports.filesystem_options import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_STALE_AFTER,
    FASTEST_POLL,
    OPTIONS,
    bool_option,
    float_option,
)
from gridmap_core.wire.protocol import DEFAULT_MAX_BYTES

__all__ = ["FilesystemClient"]

# Names of abandoned requests a client remembers, to delete their late replies.
_MAX_ABANDONED = 1000


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
        self.poll_interval = float_option(given, "poll_interval", DEFAULT_POLL_INTERVAL)
        self.stale_after = float_option(given, "stale_after", DEFAULT_STALE_AFTER)
        self.fsync = bool_option(given, "fsync")
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
                write_message(self._requests, name, frames, self.fsync)
            except FileNotFoundError:
                raise TransportError(
                    f"filesystem transport: {self._requests} has gone (the map has ended)"
                ) from None
            reply = self._replies / name
            limit = self.max_bytes + SLACK
            interval = FASTEST_POLL
            while True:
                try:
                    answer = read_message(reply, limit)
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
