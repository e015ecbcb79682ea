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

The monitor's side is :class:`FilesystemEndpoint`
(:mod:`~gridmap_core.transports.filesystem_endpoint`), a runner's side
:class:`FilesystemClient` (:mod:`~gridmap_core.transports.filesystem_client`); the files
they exchange are made and read by :mod:`~gridmap_core.transports.filesystem_files`, and
both read their options with :mod:`~gridmap_core.transports.filesystem_options`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gridmap_core.transports.filesystem_client import FilesystemClient
from gridmap_core.transports.filesystem_endpoint import FilesystemEndpoint

# The defaults stay importable from here, where they were first defined.
from gridmap_core.transports.filesystem_options import DEFAULT_DIRECTORY as DEFAULT_DIRECTORY
from gridmap_core.transports.filesystem_options import (
    DEFAULT_POLL_INTERVAL as DEFAULT_POLL_INTERVAL,
)
from gridmap_core.transports.filesystem_options import (
    DEFAULT_STALE_AFTER as DEFAULT_STALE_AFTER,
)
from gridmap_core.transports.filesystem_options import OPTIONS

__all__ = ["OPTIONS", "FilesystemClient", "FilesystemEndpoint", "FilesystemTransport"]


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
