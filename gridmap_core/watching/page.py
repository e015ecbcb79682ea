"""The status page of an executor: asked for by STATUS_PAGE (or ``status_page=True``),
started as its first map starts, its address printed then, stopped with the executor."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from gridmap_core.model.config import ConfigError
from gridmap_core.watching.board import Board
from gridmap_core.watching.server import StatusServer, parse_address

__all__ = ["StatusPage"]


class StatusPage:
    """A :class:`Board` fed by the executor's events, served once a map starts."""

    def __init__(self, address: str, heartbeat: float = 10.0) -> None:
        self.address = address
        self.heartbeat = heartbeat
        self.board = Board()
        self.server: StatusServer | None = None
        self.startup = 0.0  # seconds the server took to start: what the page costs a map
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> StatusPage | None:
        """The page STATUS_PAGE asks for, or None; a bad address is a ConfigError now,
        before anything is submitted."""
        if not settings["STATUS_PAGE"]:
            return None
        address = str(settings["STATUS_PAGE_ADDRESS"])
        try:
            parse_address(address)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        return cls(address, float(settings["HEARTBEAT_FREQUENCY"]))

    def start(self, name: str) -> None:
        """Serve the page (once) and print its address, token included."""
        with self._lock:
            if self.server is not None:
                return
            self.board.name = name
            began = time.perf_counter()
            try:
                self.server = StatusServer(self.board, self.address, heartbeat=self.heartbeat)
            except OSError as error:
                raise ConfigError(str(error)) from None
            self.startup = time.perf_counter() - began
        print(f"gridmap: status page of {name}: {self.server.url}", file=sys.stderr, flush=True)

    @property
    def url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def close(self) -> None:
        with self._lock:
            server, self.server = self.server, None
        if server is not None:
            server.close()
