"""The ``zmq`` transport: runners connect to a ZeroMQ ROUTER socket of the monitor.

On the wire every request is ``[correlation id, *frames]`` from a DEALER, and every
reply ``[the same id, *frames]``. The id lets a client throw away a reply that arrives
after it gave up on its request; it is not authenticated (the codec authenticates
the frames), and a wrong one can only make a reply be ignored.

Large frames are sent with ``copy=False`` and received as views of ZeroMQ's own
buffers, so a 100 MB result is neither joined with its header nor copied in Python.
The ROUTER's ``MAXMSGSIZE`` makes ZeroMQ itself drop (and disconnect) a peer that
sends a frame above ``max_bytes``, before the frame is ever buffered whole.

Everything is encrypted with ZeroMQ's CURVE, with the map's keys (option ``curve``, a
:class:`~gridmap_core.wire.keys.CurveKeys` from the map's key file). The ROUTER is a
CURVE server, and a ZAP handler of its own admits only peers that prove they hold the
map's client key pair, during the handshake: a peer without it never gets a frame
to the monitor, so it can make the endpoint neither decode nor buffer anything.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import math
import random
import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import Any, NoReturn

import psutil
import zmq
from zmq.auth.thread import ThreadAuthenticator

from gridmap_core.transports import (
    CURVE_OPTION,
    Frames,
    TransportError,
    TransportTimeout,
    check_options,
    max_bytes_option,
)
from gridmap_core.wire.keys import CurveKeys
from gridmap_core.wire.protocol import DEFAULT_MAX_BYTES, MAX_HEADER_BYTES

__all__ = ["OPTIONS", "ZmqClient", "ZmqEndpoint", "ZmqTransport", "default_host"]

logger = logging.getLogger(__name__)

#: Options of ``serve``; ``connect`` uses only ``max_bytes`` and ``curve``. ``curve``
#: (the map's CURVE keys) is given by the monitor and the runner, never by settings.
OPTIONS = ("interface", "port_range", "address", "max_bytes", CURVE_OPTION)
# A correlation id is 8 bytes; a longer first frame is no request of ours.
_MAX_CORRELATION = 64
# Binding a random port of a range: give up after this many ports in use.
_MAX_BIND_TRIES = 2000
_CORRELATION = struct.Struct("!Q")
# How long close() waits for ZeroMQ to release the port.
_RELEASE_WAIT = 1.0
# ZeroMQ checks MAXMSGSIZE against a frame as it travels, and CURVE sends each frame
# in a MESSAGE command: its name, a nonce, the box's MAC and a flags byte, 33 bytes
# (libzmq 4.3) around the data. Added exactly, a frame one byte over max_bytes is
# still refused by ZeroMQ before it is buffered.
_CURVE_OVERHEAD = 33


def default_host() -> str:
    """The address compute nodes should dial to reach this host.

    The IP of the host's fully qualified name, if it resolves to a non-loopback
    address: that is the name the cluster's own tools use for this host. Otherwise
    (many machines map their name to 127.0.0.1 in /etc/hosts) the first non-loopback,
    non-link-local IPv4 address of an interface, in the order the system lists them;
    otherwise 127.0.0.1, which works only when the jobs run on this host. Set the
    ``address`` option where this guess is wrong (several networks, NAT).
    """
    try:
        infos = socket.getaddrinfo(socket.getfqdn(), None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        infos = []
    for info in infos:
        host = str(info[4][0])
        if not ipaddress.ip_address(host).is_loopback:
            return host
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family != socket.AF_INET:
                continue
            ip = ipaddress.ip_address(address.address)
            if not (ip.is_loopback or ip.is_link_local):
                return str(ip)
    return "127.0.0.1"


def _host_of_interface(interface: str) -> str:
    if interface in ("*", "0.0.0.0", ""):
        return default_host()
    try:
        ipaddress.ip_address(interface)
        return interface
    except ValueError:
        pass
    for address in psutil.net_if_addrs().get(interface, ()):
        if address.family == socket.AF_INET:
            return str(address.address)
    return interface  # a host name: ZeroMQ resolved it to bind, nodes can resolve it too


def _port_range(value: Any) -> tuple[int, int] | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        bounds: tuple[Any, ...] = (value, value)
    elif isinstance(value, str):
        bounds = tuple(part.strip() for part in value.split("-"))
        bounds = bounds * 2 if len(bounds) == 1 else bounds
    elif isinstance(value, (list, tuple)):
        bounds = tuple(value)
    else:
        bounds = ()
    try:
        low, high = (int(bound) for bound in bounds)
    except (TypeError, ValueError):
        low = high = -1
    if not 1 <= low <= high <= 65535:
        raise TransportError(
            f"zmq option port_range={value!r} is not a port range: use e.g. '49152-65535'"
        )
    return low, high


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _curve_keys(options: Mapping[str, Any], plaintext: bool) -> CurveKeys | None:
    """The map's CURVE keys from ``options``; None only for the private ``plaintext``
    hook that measures what encryption costs."""
    if plaintext:
        return None
    keys = options.get(CURVE_OPTION)
    if not isinstance(keys, CurveKeys):
        raise TransportError(
            "the zmq transport encrypts with the map's CURVE keys, and was given "
            f"{'none' if keys is None else type(keys).__name__}: pass option "
            f"{CURVE_OPTION!r}, the CurveKeys of the map's key file (read_key_file(path)"
            ".curve; gridmap_core.transports.with_curve_keys adds them)")
    return keys


def _frame_limit(max_bytes: int, encrypted: bool) -> int:
    """ZeroMQ's MAXMSGSIZE for payloads of at most ``max_bytes``."""
    return max(max_bytes, MAX_HEADER_BYTES) + (_CURVE_OVERHEAD if encrypted else 0)


class _OnlyClient:
    """The ZAP handler's judge: admits the map's client public key, nothing else."""

    def __init__(self, client_public: bytes) -> None:
        self.client_public = client_public
        self.refused = 0

    def callback(self, domain: str, key: bytes) -> bool:
        if key == self.client_public:
            return True
        self.refused += 1
        return False


class ZmqEndpoint:
    """The monitor's ROUTER socket, a CURVE server that admits only the map's runners.
    One thread: receive and reply from the same loop.

    ``_plaintext`` is a private hook for benchmarks that measure what CURVE costs: the
    socket then neither encrypts nor authenticates. Maps never use it.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, *,
                 _plaintext: bool = False) -> None:
        given = check_options("zmq", options, OPTIONS)
        keys = _curve_keys(given, _plaintext)
        self.max_bytes = max_bytes_option(given, DEFAULT_MAX_BYTES)
        interface = str(given.get("interface") or "*")
        ports = _port_range(given.get("port_range"))
        self.received = 0
        self.dropped = 0  # envelopes that could not be answered (no correlation id)
        self._bound = ""  # ZeroMQ's own name of the listening address
        # A context of its own: ZeroMQ asks the one ZAP handler of a socket's context
        # about every handshake, and each map's handler admits only that map's key.
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._judge: _OnlyClient | None = None
        try:
            if keys is not None:
                self._judge = _OnlyClient(keys.client_public)
                self._auth = ThreadAuthenticator(self._context, log=logger)
                # Started before the socket listens: no handshake goes unjudged.
                self._auth.start()
                self._auth.configure_curve_callback("*", self._judge)
            self._socket: zmq.Socket[bytes] = self._context.socket(zmq.ROUTER)
            # Replies are best effort: never hold up close() for a runner that left.
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.setsockopt(zmq.MAXMSGSIZE,
                                    _frame_limit(self.max_bytes, keys is not None))
            if keys is not None:
                self._socket.setsockopt(zmq.CURVE_SECRETKEY, keys.server_secret)
                self._socket.setsockopt(zmq.CURVE_PUBLICKEY, keys.server_public)
                self._socket.setsockopt(zmq.CURVE_SERVER, 1)
            port = self._bind(interface, ports)
        except BaseException:
            self._release()
            raise
        self.port = port
        override = given.get("address")
        if override and "://" in str(override):
            self.address = str(override)
        else:
            host = str(override) if override else _host_of_interface(interface)
            self.address = f"tcp://{_host_for_url(host)}:{port}"

    def _bind(self, interface: str, ports: tuple[int, int] | None) -> int:
        host = _host_for_url(interface) if interface != "*" else "*"
        if ports is None:
            candidates: list[int | str] = ["*"]  # any free port, chosen by the system
            ports_text = "(any)"
        else:
            ports_text = f"{ports[0]}-{ports[1]}"
            numbers = list(range(ports[0], ports[1] + 1))
            random.shuffle(numbers)  # two monitors starting together rarely collide
            candidates = list(numbers[:_MAX_BIND_TRIES])
        for port in candidates:
            try:
                self._socket.bind(f"tcp://{host}:{port}")
            except zmq.ZMQError as error:
                if error.errno == zmq.EADDRINUSE:
                    continue
                raise TransportError(
                    f"zmq transport cannot listen on interface {interface!r} port {port}: "
                    f"{error}"
                ) from error
            self._bound = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
            return int(self._bound.rsplit(":", 1)[1])
        raise TransportError(f"zmq transport: no free port in port_range {ports_text}")

    @property
    def encrypted(self) -> bool:
        """Whether the socket is a CURVE server (always, but for the private hook)."""
        return bool(self._socket.getsockopt(zmq.CURVE_SERVER))

    @property
    def refused(self) -> int:
        """Handshakes refused because the peer's key is not the map's client key."""
        return self._judge.refused if self._judge is not None else 0

    def _release(self) -> None:
        """Close the socket, stop the ZAP handler and end the context."""
        socket_ = getattr(self, "_socket", None)
        if socket_ is not None and not socket_.closed:
            socket_.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._context.closed:
            self._context.destroy(linger=0)

    def receive(self, timeout: float) -> tuple[tuple[bytes, bytes], list[memoryview]] | None:
        """The next request, or None after ``timeout`` seconds; see :class:`Endpoint`."""
        if self._socket.closed:
            raise TransportError("zmq endpoint is closed")
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                # Try first, poll only when idle: under load this saves a system call.
                parts = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._socket.poll(math.ceil(remaining * 1000)):
                    return None
                continue
            # A ROUTER always prepends the peer's identity; a DEALER of ours sends a
            # correlation id then the frames. Anything else cannot be answered.
            if len(parts) < 3 or len(parts[1]) > _MAX_CORRELATION:
                self.dropped += 1
                continue
            self.received += 1
            return (parts[0].bytes, parts[1].bytes), [part.buffer for part in parts[2:]]

    def reply(self, token: tuple[bytes, bytes], frames: Frames) -> None:
        """Send ``frames`` to the client the request came from (dropped if it has gone)."""
        identity, correlation = token
        # A ROUTER silently drops messages for peers that are gone, which is what we want.
        self._socket.send_multipart([identity, correlation, *frames], copy=False)

    def close(self) -> None:
        """Stop listening, and return once the port is free again. Safe to call twice."""
        if self._socket.closed:
            return
        self._release()
        # ZeroMQ closes the listening socket later, in its I/O thread; wait for that, so
        # that a monitor restarted in this process can listen on the same port at once.
        host, _, port = self._bound.removeprefix("tcp://").rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        deadline = time.monotonic() + _RELEASE_WAIT
        while time.monotonic() < deadline:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, int(port)))
                    return
                except OSError:
                    time.sleep(0.002)

    def __enter__(self) -> ZmqEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ZmqClient:
    """A runner's DEALER socket, a CURVE client with the map's client key pair. After
    a timeout it is closed and a fresh one made on the next request, so neither a lost
    monitor nor a late reply can wedge it; a restarted monitor listening on the same
    address is reached by that fresh socket (with the same keys, as a monitor that
    takes the map over serves with the same server key pair).

    ``_plaintext`` is the private benchmark hook of :class:`ZmqEndpoint`.
    """

    def __init__(self, address: str, options: Mapping[str, Any] | None = None, *,
                 _plaintext: bool = False) -> None:
        given = check_options("zmq", options, OPTIONS)
        if not address.startswith(("tcp://", "ipc://")):
            raise TransportError(
                f"zmq transport cannot connect to {address!r}: expected tcp://HOST:PORT"
            )
        self._keys = _curve_keys(given, _plaintext)
        self.address = address
        self.max_bytes = max_bytes_option(given, DEFAULT_MAX_BYTES)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        # Connect now: the TCP and ZMTP handshakes overlap the runner's own start-up.
        self._socket: zmq.Socket[bytes] | None = self._open()

    def _open(self) -> zmq.Socket[bytes]:
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        # Queue nothing while disconnected: a request either reaches a live monitor or
        # times out, rather than piling up and arriving long after it was given up.
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, _frame_limit(self.max_bytes, self._keys is not None))
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if self._keys is not None:
            # The monitor's public key: the runner talks to nobody else.
            sock.setsockopt(zmq.CURVE_SERVERKEY, self._keys.server_public)
            sock.setsockopt(zmq.CURVE_PUBLICKEY, self._keys.client_public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, self._keys.client_secret)
        try:
            sock.connect(self.address)
        except zmq.ZMQError as error:
            sock.close(linger=0)
            raise TransportError(f"zmq transport cannot connect to {self.address!r}: {error}"
                                 ) from error
        return sock

    def _discard(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def request(self, frames: Frames, timeout: float) -> list[memoryview]:
        """Send ``frames``, return the reply's frames; see :class:`Client`."""
        with self._lock:
            if self._closed:
                raise TransportError(f"zmq client for {self.address} is closed")
            deadline = time.monotonic() + max(timeout, 0.0)
            sock = self._socket if self._socket is not None else self._open()
            self._socket = sock
            correlation = _CORRELATION.pack(next(self._ids))
            try:
                sent = False
                while not sent:
                    if not sock.poll(self._ms_left(deadline), zmq.POLLOUT):
                        self._give_up(timeout)
                    try:
                        sock.send_multipart([correlation, *frames], zmq.NOBLOCK, copy=False)
                        sent = True
                    except zmq.Again:
                        continue
                while True:
                    if not sock.poll(self._ms_left(deadline), zmq.POLLIN):
                        self._give_up(timeout)
                    parts = sock.recv_multipart(copy=False)
                    if parts[0].bytes == correlation:
                        return [part.buffer for part in parts[1:]]
                    # a reply to an earlier request of this socket: its caller has gone
            except zmq.ZMQError as error:
                self._discard()
                raise TransportError(f"zmq transport to {self.address}: {error}") from error

    @staticmethod
    def _ms_left(deadline: float) -> int:
        return max(0, math.ceil((deadline - time.monotonic()) * 1000))

    def _give_up(self, timeout: float) -> NoReturn:
        self._discard()
        raise TransportTimeout(f"no reply from {self.address} within {timeout:g} s")

    def close(self) -> None:
        """Close the socket. Safe to call twice."""
        with self._lock:
            self._closed = True
            self._discard()

    def __enter__(self) -> ZmqClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ZmqTransport:
    """Creates :class:`ZmqEndpoint` and :class:`ZmqClient` objects.

    Options: ``interface`` to listen on (default ``"*"``, every interface; an IP or
    an interface name such as ``"eth0"``), ``port_range`` (``"49152-65535"``; default:
    any free port), ``address`` (what runners dial, a host or a full ``tcp://`` URL;
    default :func:`default_host` and the bound port), ``max_bytes`` (largest payload,
    default 1 GiB), and, on both sides, ``curve``: the map's
    :class:`~gridmap_core.wire.keys.CurveKeys`, which the monitor and the runner add
    because the transport says ``takes_curve_keys``.
    """

    name = "zmq"
    takes_curve_keys = True

    def serve(self, options: Mapping[str, Any] | None = None) -> ZmqEndpoint:
        """Listen for runners."""
        return ZmqEndpoint(options)

    def connect(self, address: str, options: Mapping[str, Any] | None = None) -> ZmqClient:
        """Connect to the endpoint at ``address`` (``tcp://HOST:PORT``)."""
        return ZmqClient(address, options)
