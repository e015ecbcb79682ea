"""Transports: how runners on compute nodes reach the monitor, the submitting process.

A transport moves opaque messages (lists of frames, see :mod:`gridmap_core.wire.protocol`)
and knows nothing of their meaning or authentication. Every exchange is a request from
a runner and one reply from the monitor:

* monitor side, an :class:`Endpoint`: ``receive`` the next request, ``reply`` to it;
* runner side, a :class:`Client`: ``request`` sends and waits for the reply.

Built in: ``zmq`` (the default; runners connect to a TCP port of the submitting host)
and ``filesystem`` (files in a directory shared with the nodes, for clusters whose
nodes cannot connect back). Both register through the ``gridmap_transports`` hook
like any third-party transport, and each builds its own ``serve`` options from the
settings it declares (``TransportSpec.serve_options``). :func:`transport_spec` finds a
registered transport by name; :func:`load_transport` imports and creates one, in the
monitor and, without the plugin manager when given the factory, in the runner.

A transport that encrypts with the map's CURVE keys says so with the class attribute
``takes_curve_keys = True``; the monitor and the runner then add the keys, a
:class:`~gridmap_core.wire.keys.CurveKeys` read from the map's key file, to the options
of ``serve`` and ``connect`` under :data:`CURVE_OPTION` (:func:`with_curve_keys`). Other
transports never see that option. The zmq transport takes them; the filesystem
transport does not (its files are private to the user, 0700 and 0600).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gridmap_core.errors import GridMapError
from gridmap_core.model.core_settings import DEFAULT_TRANSPORT

if TYPE_CHECKING:
    from gridmap_core.plugins.types import TransportSpec
    from gridmap_core.wire.keys import CurveKeys

__all__ = [
    "CURVE_OPTION",
    "DEFAULT_TRANSPORT",
    "Client",
    "Endpoint",
    "Frames",
    "ReplyToken",
    "Transport",
    "TransportError",
    "TransportTimeout",
    "check_options",
    "load_transport",
    "max_bytes_option",
    "transport_spec",
    "with_curve_keys",
]

#: The option under which a transport with ``takes_curve_keys`` gets the map's CURVE keys.
CURVE_OPTION = "curve"


# Frames a caller hands to a transport; it sends them without joining or copying them.
Frames = Sequence[bytes | bytearray | memoryview]
# What an endpoint needs to route a reply; opaque to the monitor.
ReplyToken = Any


class TransportError(GridMapError):
    """A transport that cannot work: unusable options, a closed endpoint, a lost directory."""


class TransportTimeout(TransportError, TimeoutError):
    """No reply within the timeout. The client is usable again; the caller decides on
    retries (the request may or may not have reached the monitor)."""


@runtime_checkable
class Endpoint(Protocol):
    """The monitor's side. Used from one thread (the monitor's loop)."""

    #: What a runner passes to :meth:`Transport.connect` to reach this endpoint.
    address: str

    def receive(self, timeout: float) -> tuple[ReplyToken, list[memoryview]] | None:
        """The next request as ``(reply_token, frames)``, or None after ``timeout``
        seconds without one. Frames are views of the received data, not copies.
        Requests the transport itself cannot read are dropped, never raised."""
        ...

    def reply(self, token: ReplyToken, frames: Frames) -> None:
        """Answer the request ``token`` came with. Best effort: a runner that has gone
        (timed out, died) never gets it, and that is not an error."""
        ...

    def close(self) -> None:
        """Stop serving and release the port or directory. Safe to call twice."""
        ...


@runtime_checkable
class Client(Protocol):
    """A runner's side. Thread-safe: concurrent requests (a heartbeat thread and the
    main thread) are sent one after the other."""

    def request(self, frames: Frames, timeout: float) -> list[memoryview]:
        """Send ``frames`` and return the reply's frames; raise
        :class:`TransportTimeout` if none came within ``timeout`` seconds."""
        ...

    def close(self) -> None:
        """Release the connection. Safe to call twice."""
        ...


@runtime_checkable
class Transport(Protocol):
    """A kind of transport, created by the factory of its ``TransportSpec``.

    A transport may set the class attribute ``takes_curve_keys = True``: ``serve``
    and ``connect`` then get the map's :class:`~gridmap_core.wire.keys.CurveKeys` in
    the option :data:`CURVE_OPTION`, and must encrypt with them and admit only peers
    that hold the map's client key pair. Without it they never get that option.
    """

    def serve(self, options: Mapping[str, Any]) -> Endpoint:
        """Open a monitor-side endpoint; ``options`` are the transport's own settings."""
        ...

    def connect(self, address: str, options: Mapping[str, Any]) -> Client:
        """Open a runner-side client to the endpoint at ``address``."""
        ...


def transport_spec(name: str, where: str = "argument transport") -> TransportSpec:
    """The contribution of the transport registered as ``name``; ``where`` says who
    asked, for the error if nobody registered it."""
    # Imported here: the plugin manager imports every plugin, and plugins import us.
    from gridmap_core.plugins.manager import UnknownPluginError, get_plugin_manager

    specs = get_plugin_manager().transports()
    if name not in specs:
        available = ", ".join(specs) or "none"
        raise UnknownPluginError(
            f"no transport called {name!r} (asked for by {where}). Installed transports: "
            f"{available}. Choose one of them, or install the package that provides "
            f"{name!r} (plugin may not be installed)."
        )
    return specs[name]


def load_transport(name: str = DEFAULT_TRANSPORT, where: str = "argument transport",
                   factory: str | Callable[[], Any] | None = None) -> Transport:
    """The transport ``name``, imported now (its heavy imports wait until here), by the
    monitor and the runner alike.

    ``factory`` is its ``TransportSpec.factory`` when the caller knows it: a runner is
    handed the dotted path on its command line, and imports it without reading every
    plugin's entry point (the plugin manager is not even imported). Without it the
    transport is looked up among the registered ones; ``where`` says who asked.
    """
    from gridmap_core.plugins.loading import load_factory  # importlib only: cheap on a node

    if factory is None:
        factory = transport_spec(name, where).factory
    transport = load_factory("transport", name, factory)()
    if not isinstance(transport, Transport):
        raise TypeError(
            f"transport {name!r}: {factory!r} made a {type(transport).__name__}, "
            "which has no serve() and connect()"
        )
    return transport


def with_curve_keys(transport: object, options: Mapping[str, Any], keys: CurveKeys
                    ) -> dict[str, Any]:
    """``options``, with the map's CURVE ``keys`` under :data:`CURVE_OPTION` if
    ``transport`` takes them (its ``takes_curve_keys``); as they were otherwise."""
    given = dict(options)
    if getattr(transport, "takes_curve_keys", False):
        given[CURVE_OPTION] = keys
    return given


def check_options(transport: str, options: Mapping[str, Any] | None,
                  known: Sequence[str]) -> dict[str, Any]:
    """``options`` as a dict, or a :class:`TransportError` naming an unknown key."""
    given = dict(options or {})
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise TransportError(
            f"transport {transport!r} has no option {unknown[0]!r}; "
            f"its options are: {', '.join(known)}"
        )
    return given


def max_bytes_option(options: Mapping[str, Any], default: int) -> int:
    """The ``max_bytes`` option: bytes, or a size such as ``"512M"``."""
    from gridmap_core.model.resources import parse_memory

    value = options.get("max_bytes")
    if value is None:
        return default
    try:
        parsed = parse_memory(value, "max_bytes")
    except ValueError as error:
        raise TransportError(str(error)) from None
    return default if parsed is None else parsed
