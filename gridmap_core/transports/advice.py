"""What ``gridmap doctor`` says about a transport: how its job reached the monitor,
why it could not, and what to do about it.

A transport gives its own through ``TransportSpec.advice``; one that gives none gets
:class:`TransportAdvice`, which names the transport and its settings. The doctor
passes the map's settings, its ``temp_dir``, and causes of death already shortened
to the runner's or the monitor's own words.
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["FILESYSTEM", "ZMQ", "TransportAdvice", "advice_for"]


class TransportAdvice:
    """The doctor's words for any transport; a transport overrides what it knows better."""

    def route(self, name: str, settings: Any) -> str:
        """How runners reach the monitor, for the check that passed."""
        return name

    def cannot_serve(self, name: str, settings: Any, temp_dir: str) -> str:
        """What to do when the monitor could not start serving."""
        return f"check the settings of transport {name}"

    def unreachable(self, name: str, address: str | None, cause: str, settings: Any,
                    temp_dir: str) -> tuple[str, str]:
        """What went wrong and what to do, when no job reached the monitor."""
        return (f"no job reached the monitor at {address} (transport {name}): {cause}",
                f"check the settings of transport {name}")

    def lost_by_transport(self, cause: str, temp_dir: str) -> bool:
        """Whether a job's cause of death is this transport failing (beyond the
        causes that say the runner and the monitor never heard each other)."""
        return False


def _this_host_addresses() -> list[str]:
    import psutil

    return sorted({address.address for addresses in psutil.net_if_addrs().values()
                   for address in addresses if address.family == socket.AF_INET
                   and not address.address.startswith("127.")})


def _with_zmq_settings(settings: Any) -> Any:
    from gridmap_core.transports.plugin import ZMQ_SETTINGS

    return settings.including(ZMQ_SETTINGS)


class ZmqAdvice(TransportAdvice):
    """Runners dial MONITOR_ADDRESS (or this host's guessed address) over TCP."""

    @staticmethod
    def _dialled(settings: Any) -> str:
        settings = _with_zmq_settings(settings)
        if settings["MONITOR_ADDRESS"]:
            return f"set by {settings.sources['MONITOR_ADDRESS']}"
        return "automatic choice"

    def route(self, name: str, settings: Any) -> str:
        return f"{name}, address: {self._dialled(settings)}"

    def cannot_serve(self, name: str, settings: Any, temp_dir: str) -> str:
        return ("set GRIDMAP_MONITOR_INTERFACE to an IP or interface of this host (or * "
                "for all) and GRIDMAP_MONITOR_PORTS to a range with free ports, such as "
                "49152-65535")

    def unreachable(self, name: str, address: str | None, cause: str, settings: Any,
                    temp_dir: str) -> tuple[str, str]:
        from gridmap_core.transports.zmq import default_host  # imports ZeroMQ

        settings = _with_zmq_settings(settings)
        hosts = ", ".join(_this_host_addresses()) or "none found"
        set_it = ("unset GRIDMAP_MONITOR_ADDRESS for the automatic choice "
                  f"({default_host()}), or set it to" if settings["MONITOR_ADDRESS"]
                  else "set GRIDMAP_MONITOR_ADDRESS to")
        return (f"no job reached the monitor at {address} ({self._dialled(settings)}): "
                f"{cause}",
                f"{set_it} this host's address on the network the nodes use (this host "
                f"has {hosts}); if a firewall stops connections from the nodes, open a "
                "port range and set GRIDMAP_MONITOR_PORTS to it; or set "
                "GRIDMAP_TRANSPORT=filesystem, which needs no inbound port")


class FilesystemAdvice(TransportAdvice):
    """Runners and the monitor exchange files in the map's directory in temp_dir."""

    def cannot_serve(self, name: str, settings: Any, temp_dir: str) -> str:
        return f"make temp_dir ({temp_dir}) writable"

    def unreachable(self, name: str, address: str | None, cause: str, settings: Any,
                    temp_dir: str) -> tuple[str, str]:
        return (f"no job exchanged files with the monitor in {address}: {cause}",
                f"the nodes must see temp_dir ({temp_dir}) at the same path, and see new "
                "files in it (NFS: lookupcache, actimeo); or set GRIDMAP_TRANSPORT=zmq")

    def lost_by_transport(self, cause: str, temp_dir: str) -> bool:
        return temp_dir in cause


ZMQ = ZmqAdvice()
FILESYSTEM = FilesystemAdvice()


def advice_for(name: str) -> TransportAdvice:
    """What the transport registered as ``name`` says of itself (its
    ``TransportSpec.advice``, imported now); the general advice when it gives none."""
    from gridmap_core.plugins.loading import load_factory
    from gridmap_core.transports import transport_spec

    spec = transport_spec(name, "setting TRANSPORT")
    if spec.advice is None:
        return TransportAdvice()
    advice: TransportAdvice = load_factory("transport", name, spec.advice)  # type: ignore[assignment]
    return advice
