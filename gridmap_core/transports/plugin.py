"""Registers the built-in transports through the ``gridmap`` entry-point group.

Imported whenever gridmap reads its plugin registry, so it imports neither pyzmq nor
the transports themselves: each factory is a dotted path, loaded when used. What each
transport's ``serve`` takes for a map is built here, from the map's settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gridmap_core.model.setting import Setting, optional, text
from gridmap_core.plugins.manager import hookimpl
from gridmap_core.plugins.types import TransportSpec

#: The zmq transport's settings: where the monitor listens, and what runners dial.
ZMQ_SETTINGS = (
    Setting("MONITOR_ADDRESS", optional(text), None,
            "host or tcp://host:port that jobs dial to reach the submitting process "
            "(zmq); unset picks this host's cluster-facing address",
            env="GRIDMAP_MONITOR_ADDRESS"),
    Setting("MONITOR_INTERFACE", text, "*", "interface or IP the monitor listens on (zmq)",
            env="GRIDMAP_MONITOR_INTERFACE"),
    Setting("MONITOR_PORTS", optional(text), None,
            "port range the monitor listens on, e.g. 49152-65535 (zmq); unset: any free port",
            env="GRIDMAP_MONITOR_PORTS"),
)


def zmq_serve_options(directory: Path, settings: Any, peers: Sequence[str] = ()
                      ) -> dict[str, Any]:
    """The zmq endpoint's options from its MONITOR_* settings (the session's directory
    plays no part: runners connect over TCP).

    The address runners dial is MONITOR_ADDRESS when set; else this host's address on
    the route to the nodes that run them (``peers``), when they are other hosts; else
    the endpoint's own guess (:func:`gridmap_core.transports.zmq.default_host`).
    """
    options: dict[str, Any] = {"interface": settings["MONITOR_INTERFACE"]}
    if settings["MONITOR_PORTS"]:
        options["port_range"] = settings["MONITOR_PORTS"]
    if settings["MONITOR_ADDRESS"]:
        options["address"] = settings["MONITOR_ADDRESS"]
    elif peers:
        from gridmap_core.transports.routes import address_for_peers

        address = address_for_peers(peers)
        if address is not None:
            options["address"] = address
    return options


def filesystem_serve_options(directory: Path, settings: Any, peers: Sequence[str] = ()
                             ) -> dict[str, Any]:
    """The message files go in the session's own directory, which the nodes share."""
    return {"directory": str(directory)}


@hookimpl
def gridmap_transports() -> list[TransportSpec]:
    """The built-in transports: ``zmq`` (the default) and ``filesystem``."""
    return [
        TransportSpec(
            name="zmq",
            factory="gridmap_core.transports.zmq:ZmqTransport",
            description="ZeroMQ over TCP: runners connect back to the submitting host (default)",
            serve_options=zmq_serve_options,
            advice="gridmap_core.transports.advice:ZMQ",
            settings=ZMQ_SETTINGS,
        ),
        TransportSpec(
            name="filesystem",
            factory="gridmap_core.transports.filesystem:FilesystemTransport",
            description="files in a directory shared with the nodes; no inbound port needed",
            needs_shared_filesystem=True,
            serve_options=filesystem_serve_options,
            advice="gridmap_core.transports.advice:FILESYSTEM",
        ),
    ]
