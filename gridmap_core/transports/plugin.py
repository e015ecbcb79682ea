"""Registers the built-in transports through the ``gridmap`` entry-point group.

Imported whenever gridmap reads its plugin registry, so it imports neither pyzmq nor
the transports themselves: each factory is a dotted path, loaded when used.
"""

from __future__ import annotations

from gridmap_core.plugins.manager import hookimpl
from gridmap_core.plugins.types import TransportSpec


@hookimpl
def gridmap_transports() -> list[TransportSpec]:
    """The built-in transports: ``zmq`` (the default) and ``filesystem``."""
    return [
        TransportSpec(
            name="zmq",
            factory="gridmap_core.transports.zmq:ZmqTransport",
            description="ZeroMQ over TCP: runners connect back to the submitting host (default)",
        ),
        TransportSpec(
            name="filesystem",
            factory="gridmap_core.transports.filesystem:FilesystemTransport",
            description="files in a directory shared with the nodes; no inbound port needed",
            needs_shared_filesystem=True,
        ),
    ]
