"""The zmq transport encrypts with CURVE and admits only the map's runners.

A peer without the map's client key pair never gets past the handshake: the endpoint
never receives, decodes or buffers its bytes. Traffic is read off the wire through a
relaying TCP proxy, which sees exactly what a packet capture would.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zmq
from gridmap_local.backend import LocalBackend

from gridmap_core.backend import Batch, JobSpec, SessionOptions
from gridmap_core.map.monitor import MonitoredSession
from gridmap_core.map.runs import Run
from gridmap_core.model.config import load_settings
from gridmap_core.transports import (
    CURVE_OPTION,
    TransportError,
    TransportTimeout,
    load_transport,
    with_curve_keys,
)
from gridmap_core.transports.zmq import ZmqClient, ZmqEndpoint, ZmqTransport
from gridmap_core.wire.protocol import (
    FROM_MONITOR,
    Codec,
    CurveKeys,
    Kind,
    new_curve_keys,
    new_key,
    read_key_file,
)
from tests.support import monitored

pytestmark = pytest.mark.timeout(120)

MAP = "map-curve"
# Long enough for a handshake on a loaded machine; a refused peer waits it out in full.
REFUSED_WAIT = 1.5


def serve(keys: CurveKeys, **options: Any) -> ZmqEndpoint:
    return ZmqTransport().serve({"interface": "127.0.0.1", CURVE_OPTION: keys, **options})


class Echo:
    """A monitor loop in a thread: ACKs every authentic request with its payload, and
    counts what it was handed (``seen``) and what it decoded (``decoded``)."""

    def __init__(self, endpoint: ZmqEndpoint, key: bytes) -> None:
        self.endpoint = endpoint
        self.codec = Codec(key, MAP)
        self.seen = 0
        self.decoded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            request = self.endpoint.receive(0.02)
            if request is None:
                continue
            self.seen += 1
            token, frames = request
            message = self.codec.decode(frames)
            self.decoded += 1
            self.endpoint.reply(token, self.codec.reply(message.header, Kind.ACK,
                                                        message.payload))

    def __enter__(self) -> Echo:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)


def ask(client: ZmqClient, key: bytes, payload: bytes, timeout: float = 20.0) -> bytes:
    codec = Codec(key, MAP)
    frames = client.request(codec.encode(Kind.HEARTBEAT, 1, 0, payload), timeout)
    return bytes(codec.decode(frames, expect=FROM_MONITOR).payload)


class Relay:
    """A TCP proxy that records every byte it carries, both ways: a packet capture
    without the privileges one needs. ``target`` (a port on 127.0.0.1) may be set
    after the relay starts, before anyone connects to it."""

    def __init__(self, target: int = 0) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._seen = bytearray()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def seen(self) -> bytes:
        with self._lock:
            return bytes(self._seen)

    def _accept(self) -> None:
        while True:
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                outer = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                inner.close()
                continue
            with self._lock:
                self._sockets += [inner, outer]
            for source, sink in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._lock:
                    self._seen += data
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    made = Relay()
    try:
        yield made
    finally:
        made.close()


# -- the socket ---------------------------------------------------------------------------


def test_the_endpoint_is_a_curve_server_and_the_client_a_curve_client() -> None:
    keys = new_curve_keys()
    with serve(keys) as endpoint:
        assert endpoint.encrypted
        server = endpoint._socket
        assert server.getsockopt(zmq.MECHANISM) == zmq.CURVE
        assert server.getsockopt(zmq.CURVE_SERVER) == 1
        # A context of its own, so that its ZAP handler judges only its handshakes.
        assert server.context is not zmq.Context.instance()
        with ZmqClient(endpoint.address, {CURVE_OPTION: keys}) as client:
            sock = client._socket
            assert sock is not None
            assert sock.getsockopt(zmq.MECHANISM) == zmq.CURVE
            assert sock.getsockopt(zmq.CURVE_SERVER) == 0


def test_without_the_maps_curve_keys_zmq_refuses_to_start() -> None:
    for options in ({}, {CURVE_OPTION: "not keys"}):
        with pytest.raises(TransportError, match=r"CURVE keys.*option 'curve'"):
            ZmqTransport().serve(options)
        with pytest.raises(TransportError, match=r"CURVE keys.*option 'curve'"):
            ZmqTransport().connect("tcp://127.0.0.1:1", options)


def test_only_a_transport_that_takes_curve_keys_is_given_them() -> None:
    keys = new_curve_keys()
    assert with_curve_keys(load_transport("zmq"), {"max_bytes": 5}, keys) == {
        "max_bytes": 5, CURVE_OPTION: keys}
    # The filesystem transport keeps its files private instead (0700 and 0600).
    assert with_curve_keys(load_transport("filesystem"), {"max_bytes": 5}, keys) == {
        "max_bytes": 5}


# -- peers without the map's client keys ------------------------------------------------


def _plain_dealer(address: str, curve: CurveKeys | None = None) -> zmq.Socket[bytes]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.curve_serverkey = curve.server_public
        sock.curve_publickey = curve.client_public
        sock.curve_secretkey = curve.client_secret
    sock.connect(address)
    return sock


def test_a_peer_without_the_client_keys_never_reaches_the_monitor() -> None:
    """A plain client, a client with a key pair of its own, and raw sockets of both
    kinds, all sending messages signed with the map's MAC key: none is answered, and
    the endpoint hands none of their bytes to the monitor."""
    keys, key = new_curve_keys(), new_key()
    stranger = new_curve_keys()
    wrong_pair = replace(keys, client_public=stranger.client_public,
                         client_secret=stranger.client_secret)
    with serve(keys) as endpoint, Echo(endpoint, key) as monitor:
        clients = [ZmqClient(endpoint.address, _plaintext=True),
                   ZmqClient(endpoint.address, {CURVE_OPTION: wrong_pair})]
        for client in clients:
            with client, pytest.raises(TransportTimeout):
                ask(client, key, b"let me in", timeout=REFUSED_WAIT)
        raws = [_plain_dealer(endpoint.address), _plain_dealer(endpoint.address, wrong_pair)]
        signed = Codec(key, MAP).encode(Kind.RESULT, 1, 0, b"x" * 10_000)
        for raw in raws:
            for _ in range(20):
                with contextlib.suppress(zmq.Again):
                    raw.send_multipart([b"corr0001", *signed], zmq.NOBLOCK)
        time.sleep(REFUSED_WAIT)
        for raw in raws:
            raw.close(linger=0)
        assert endpoint.received == 0 and endpoint.dropped == 0
        assert monitor.seen == 0 and monitor.decoded == 0
        assert endpoint.refused >= 2  # the ZAP handler said no to both wrong pairs
        # Meanwhile the map's own runners are served.
        with ZmqClient(endpoint.address, {CURVE_OPTION: keys}) as client:
            assert ask(client, key, b"a runner") == b"a runner"
        assert endpoint.received == 1 and monitor.decoded == 1


def test_a_runner_talks_to_no_monitor_but_the_maps() -> None:
    """A server with another key pair (an impostor listening where the monitor was)
    never completes the handshake with a runner of the map."""
    keys, key = new_curve_keys(), new_key()
    impostor = replace(new_curve_keys(), client_public=keys.client_public)
    with serve(impostor) as endpoint, Echo(endpoint, key) as monitor:
        with ZmqClient(endpoint.address, {CURVE_OPTION: keys}) as client, \
                pytest.raises(TransportTimeout):
            ask(client, key, b"for the monitor only", timeout=REFUSED_WAIT)
        assert endpoint.received == 0 and monitor.seen == 0


def test_a_new_monitor_is_reached_only_with_the_maps_server_keys() -> None:
    """What ``gridmap attach`` relies on: a monitor started later with the key file's
    server key pair is reached by the runners' clients as they are; one with fresh
    keys would not be."""
    keys, key = new_curve_keys(), new_key()
    first = serve(keys)
    port = first.port
    client = ZmqClient(first.address, {CURVE_OPTION: keys})
    with Echo(first, key):
        assert ask(client, key, b"before") == b"before"
    first.close()
    fresh_keys = replace(new_curve_keys(), client_public=keys.client_public)
    with serve(fresh_keys, port_range=port) as fresh, Echo(fresh, key), \
            pytest.raises(TransportTimeout):
        ask(client, key, b"to fresh keys", timeout=REFUSED_WAIT)
    with serve(keys, port_range=port) as again, Echo(again, key):
        assert ask(client, key, b"after") == b"after"
    client.close()


# -- what the wire carries ----------------------------------------------------------------


def test_what_travels_is_encrypted(relay: Relay) -> None:
    keys, key = new_curve_keys(), new_key()
    marker = f"payload-in-clear-{secrets.token_hex(8)}".encode()
    with serve(keys) as endpoint, Echo(endpoint, key):
        relay.target = endpoint.port
        with ZmqClient(f"tcp://127.0.0.1:{relay.port}", {CURVE_OPTION: keys}) as client:
            assert ask(client, key, marker) == marker
    captured = relay.seen
    assert len(captured) > 2 * len(marker)  # the request and its echo went through
    assert marker not in captured
    for secret in (keys.server_secret, keys.client_secret, key, key.hex().encode()):
        assert secret not in captured


def test_the_relay_would_see_plaintext(relay: Relay) -> None:
    """The check above means something: through the same relay, the private
    benchmark hook's unencrypted sockets show the payload."""
    key = new_key()
    marker = f"payload-in-clear-{secrets.token_hex(8)}".encode()
    with ZmqEndpoint({"interface": "127.0.0.1"}, _plaintext=True) as endpoint, \
            Echo(endpoint, key):
        assert not endpoint.encrypted
        relay.target = endpoint.port
        with ZmqClient(f"tcp://127.0.0.1:{relay.port}", _plaintext=True) as client:
            assert ask(client, key, marker) == marker
    assert relay.seen.count(marker) == 2


# -- a map --------------------------------------------------------------------------------


def _open_session(temp_dir: Path, settings: dict[str, Any] | None = None
                  ) -> MonitoredSession:
    options = SessionOptions(settings=load_settings({**monitored.FAST, **(settings or {})}),
                             max_processes=1, temp_dir=str(temp_dir),
                             options={"mode": "runner"})
    session = LocalBackend().open(options)
    assert isinstance(session, MonitoredSession)
    return session


def test_a_real_runners_task_and_result_cross_the_wire_encrypted(relay: Relay,
                                                                  in_tmp: Path) -> None:
    """A runner-mode map on the local backend, whose runners dial a relay in front of
    the monitor: the job's argument and its result appear nowhere in what the relay
    carried. The runner's handshake succeeds with the keys it read from the map's key
    file."""
    marker = f"job-argument-{secrets.token_hex(8)}"
    session = _open_session(in_tmp, {"MONITOR_ADDRESS": f"tcp://127.0.0.1:{relay.port}"})
    try:
        endpoint = session.endpoint
        assert isinstance(endpoint, ZmqEndpoint) and endpoint.encrypted
        relay.target = endpoint.port
        run = Run(1)
        session.submit(Batch(JobSpec(str.upper), [(marker,)], None, run))
        assert run.wait(timeout=90)
    finally:
        session.close()
    assert run.failures == {} and run.values == [marker.upper()]
    captured = relay.seen
    assert captured, "the runner did not go through the relay"
    assert marker.encode() not in captured and marker.upper().encode() not in captured
    assert endpoint.refused == 0


def test_a_map_drops_nothing_it_never_received_from_strangers(in_tmp: Path) -> None:
    """Strangers sending to a map's monitor are stopped by the handshake: the monitor
    counts nothing dropped, because nothing reached it."""
    session = _open_session(in_tmp)
    try:
        keys = read_key_file(session.key_file)
        stranger = new_curve_keys()
        raws = [_plain_dealer(session.address),
                _plain_dealer(session.address, replace(
                    keys.curve, client_public=stranger.client_public,
                    client_secret=stranger.client_secret))]
        signed = Codec(keys.mac, session.map_id).encode(Kind.FETCH, 10_000, 0)
        for raw in raws:
            with contextlib.suppress(zmq.Again):
                raw.send_multipart([b"corr0001", *signed], zmq.NOBLOCK)
        time.sleep(REFUSED_WAIT)
        for raw in raws:
            raw.close(linger=0)
        endpoint = session.endpoint
        assert isinstance(endpoint, ZmqEndpoint)
        assert endpoint.received == 0 and session.dropped == 0
        # A client with the key file's keys is answered (STOP: no such task).
        with ZmqClient(session.address, {CURVE_OPTION: keys.curve}) as client:
            codec = Codec(keys.mac, session.map_id)
            reply = codec.decode(client.request(codec.encode(Kind.FETCH, 10_000, 0), 20),
                                 expect=FROM_MONITOR)
        assert reply.header.kind is Kind.STOP
        assert endpoint.received == 1
    finally:
        session.close()
