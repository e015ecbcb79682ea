"""The zmq and filesystem transports, each carrying codec messages between a monitor-side
endpoint (served by a thread here) and runner-side clients."""

from __future__ import annotations

import collections
import hashlib
import os
import pickle
import random
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import zmq

from gridmap_core import GridMapExecutor, TransportSpec, hookimpl, load_settings
from gridmap_core.plugins.manager import UnknownPluginError, get_plugin_manager
from gridmap_core.transports import (
    Client,
    Endpoint,
    Transport,
    TransportError,
    TransportTimeout,
    load_transport,
    with_curve_keys,
)
from gridmap_core.transports import zmq as zmq_transport
from gridmap_core.transports.filesystem import FilesystemEndpoint
from gridmap_core.wire import protocol
from gridmap_core.wire.protocol import (
    FROM_RUNNER,
    Codec,
    Header,
    Kind,
    Message,
    ProtocolError,
    ReplayGuard,
    is_reply_to,
    new_curve_keys,
    new_key,
    new_keys,
)
from tests import PROJECT_ROOT
from tests.support.jobs import double

pytestmark = pytest.mark.timeout(60)

ROOT = PROJECT_ROOT
MAP = "map-t"
NAMES = ["zmq", "filesystem"]
# The CURVE keys of this module's maps: the monitor and the runner give them to a
# transport that takes them (zmq), as they give a map's.
CURVE = new_curve_keys()


def keyed(transport: Transport, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """``options`` for ``serve`` or ``connect``, with CURVE if ``transport`` takes it."""
    return with_curve_keys(transport, options or {}, CURVE)


def curve_socket(context: zmq.Context[zmq.Socket[bytes]], kind: int) -> zmq.Socket[bytes]:
    """A raw socket holding the map's client keys: a runner of the map, gone rogue."""
    sock = context.socket(kind)
    sock.curve_serverkey = CURVE.server_public
    sock.curve_publickey = CURVE.client_public
    sock.curve_secretkey = CURVE.client_secret
    return sock


class Server:
    """A stand-in monitor: decode, check replays, answer ACK with the payload echoed.

    ``handle`` may replace the echo (it gets the message, returns the reply payload).
    Counts what it accepted and, by error class, what the codec rejected.
    """

    def __init__(self, endpoint: Endpoint, codec: Codec,
                 handle: Callable[[Message], bytes | memoryview] | None = None) -> None:
        self.endpoint = endpoint
        self.codec = codec
        self.guard = ReplayGuard()
        self.handle = handle or (lambda message: message.payload)
        self.accepted = 0
        self.replays = 0
        self.rejected: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def seen(self) -> int:
        return self.accepted + self.replays + sum(self.rejected.values())

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                request = self.endpoint.receive(0.02)
                if request is None:
                    continue
                token, frames = request
                try:
                    message = self.codec.decode(frames, expect=FROM_RUNNER)
                except ProtocolError as error:
                    self.rejected[type(error).__name__] += 1
                    continue
                if not self.guard.accept(message.header):
                    self.replays += 1
                    continue
                self.accepted += 1
                reply = self.codec.reply(message.header, Kind.ACK, self.handle(message))
                self.endpoint.reply(token, reply)
        except BaseException as error:  # surfaced by stop()
            self.error = error

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.fixture
def key() -> bytes:
    return new_key()


def serve_options(name: str, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    if name == "zmq":
        return {"interface": "127.0.0.1", "curve": CURVE, **extra}
    return {"directory": str(tmp_path / "shared"), "poll_interval": 0.01, **extra}


@pytest.fixture(params=NAMES)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Transport, Endpoint]]:
    """Each transport in turn, found by name through the plugin registry, and its endpoint."""
    name: str = request.param
    transport = load_transport(name)
    endpoint = transport.serve(serve_options(name, tmp_path))
    try:
        yield transport, endpoint
    finally:
        endpoint.close()


def ask(client: Client, codec: Codec, task: int, payload: bytes, timeout: float = 10.0
        ) -> Message:
    """One request/reply exchange, checked to be the reply to this very request."""
    frames = codec.encode(Kind.HEARTBEAT, task, 0, payload)
    request = Header.from_json(frames[0])
    reply = codec.decode(client.request(frames, timeout))
    assert is_reply_to(reply.header, request)
    assert reply.header.kind is Kind.ACK
    return reply


# -- both transports -------------------------------------------------------------------


def test_registered_transports_follow_the_protocols(setup: tuple[Transport, Endpoint]
                                                    ) -> None:
    transport, endpoint = setup
    assert isinstance(transport, Transport) and isinstance(endpoint, Endpoint)
    client = transport.connect(endpoint.address, keyed(transport))
    assert isinstance(client, Client)
    client.close()
    client.close()  # twice is fine
    with pytest.raises(TransportError, match="closed"):
        client.request([b"x"], 1)


def test_request_reply_round_trip(setup: tuple[Transport, Endpoint], key: bytes) -> None:
    transport, endpoint = setup
    scheme = "file:///" if isinstance(endpoint, FilesystemEndpoint) else "tcp://"
    assert endpoint.address.startswith(scheme)
    with Server(endpoint, Codec(key, MAP)) as server:
        client = transport.connect(endpoint.address, keyed(transport))
        codec = Codec(key, MAP)
        for payload in (b"", b"heartbeat", os.urandom(100_000)):
            assert bytes(ask(client, codec, 1, payload).payload) == payload
        client.close()
    assert server.accepted == 3 and not server.rejected


def test_100_mb_both_ways(setup: tuple[Transport, Endpoint], key: bytes) -> None:
    transport, endpoint = setup
    outgoing = os.urandom(100 * 2**20)
    digests: list[bytes] = []

    def answer(message: Message) -> bytes:
        digests.append(hashlib.sha256(message.payload).digest())
        return outgoing[::-1]  # something else, of the same size, the other way

    with Server(endpoint, Codec(key, MAP), answer):
        client = transport.connect(endpoint.address, keyed(transport))
        reply = ask(client, Codec(key, MAP), 1, outgoing, timeout=30)
        client.close()
    assert digests == [hashlib.sha256(outgoing).digest()]
    assert len(reply.payload) == len(outgoing)
    assert hashlib.sha256(reply.payload).digest() == hashlib.sha256(outgoing[::-1]).digest()


def test_many_concurrent_clients(setup: tuple[Transport, Endpoint], key: bytes) -> None:
    transport, endpoint = setup
    threads, requests = 16, 20
    failures: list[BaseException] = []
    answered = collections.Counter[int]()

    def runner(task: int) -> None:
        try:
            client = transport.connect(endpoint.address, keyed(transport))
            codec = Codec(key, MAP)
            for number in range(requests):
                payload = f"task {task} request {number}".encode() * (1 + task)
                assert bytes(ask(client, codec, task, payload).payload) == payload
                answered[task] += 1
            client.close()
        except BaseException as error:
            failures.append(error)

    with Server(endpoint, Codec(key, MAP)) as server:
        workers = [threading.Thread(target=runner, args=(task,)) for task in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(40)
    assert not failures, failures[0]
    assert answered == {task: requests for task in range(threads)}
    assert server.accepted == threads * requests and server.replays == 0


def test_timeout_then_the_client_works_again(setup: tuple[Transport, Endpoint],
                                             key: bytes) -> None:
    transport, endpoint = setup
    client = transport.connect(endpoint.address, keyed(transport))
    codec = Codec(key, MAP)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        client.request(codec.encode(Kind.HEARTBEAT, 1, 0, b"lost"), 0.3)
    assert 0.25 <= time.monotonic() - started < 3
    assert issubclass(TransportTimeout, TimeoutError)
    if isinstance(endpoint, FilesystemEndpoint):
        # the runner withdrew the request nobody had taken
        assert not [p for p in (endpoint.directory / "requests").iterdir()]
    with Server(endpoint, Codec(key, MAP)):
        # the answer is to this request, not to the one that timed out
        assert bytes(ask(client, codec, 1, b"second").payload) == b"second"
        assert bytes(ask(client, codec, 1, b"third").payload) == b"third"
    client.close()


def test_a_forged_pickle_never_reaches_unpickling(setup: tuple[Transport, Endpoint],
                                                  key: bytes, tmp_path: Path) -> None:
    transport, endpoint = setup
    forged_trap, genuine_trap = tmp_path / "forged", tmp_path / "genuine"

    def unpickle(message: Message) -> bytes:
        pickle.loads(message.payload)  # what a monitor does with an authentic payload
        return b""

    with Server(endpoint, Codec(key, MAP), unpickle) as server:
        client = transport.connect(endpoint.address, keyed(transport))
        from tests.wire.test_protocol import Trap

        forged = Codec(new_key(), MAP).encode(Kind.RESULT, 1, 0, pickle.dumps(Trap(forged_trap)))
        with pytest.raises(TransportTimeout):  # dropped: no reply
            client.request(forged, 0.5)
        # The same payload, signed with the map's key, is unpickled: the trap works.
        ask(client, Codec(key, MAP), 2, pickle.dumps(Trap(genuine_trap)))
        client.close()
    assert server.rejected == {"Forged": 1}
    assert genuine_trap.exists()
    assert not forged_trap.exists()


def test_unknown_options_are_refused(tmp_path: Path) -> None:
    for name in NAMES:
        with pytest.raises(TransportError, match=f"{name!r} has no option 'colour'"):
            load_transport(name).serve({"colour": "red"})


def test_load_transport_names_the_installed_ones() -> None:
    with pytest.raises(UnknownPluginError, match="filesystem, zmq"):
        load_transport("pigeon")


def test_transports_register_through_the_entry_point_without_importing_zmq() -> None:
    code = (
        "import sys\n"
        "from gridmap_core import get_plugin_manager\n"
        "manager = get_plugin_manager()\n"
        "specs = manager.transports()\n"
        "assert sorted(specs) == ['filesystem', 'zmq'], specs\n"
        "assert specs['filesystem'].needs_shared_filesystem\n"
        "assert manager.distribution_of('zmq', 'transport')[0] == 'gridmap'\n"
        "assert 'zmq' not in sys.modules, 'pyzmq imported before use'\n"
        "from gridmap_core.transports import load_transport\n"
        "load_transport('zmq')\n"
        "assert 'zmq' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr


class SharedDirTransport:
    """A third party's transport the core has never heard of: the filesystem
    transport's code under another name, with serve options of its own."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, str]] = []

    @hookimpl
    def gridmap_transports(self) -> list[TransportSpec]:
        return [TransportSpec("shared_dir",
                              "gridmap_core.transports.filesystem:FilesystemTransport",
                              "files in a directory of the session", serve_options=self.options)]

    def options(self, directory: Path, settings: Any, peers: Sequence[str]) -> dict[str, Any]:
        self.calls.append((directory, settings["TRANSPORT"]))
        return {"directory": str(directory / "exchange"), "poll_interval": 0.01}


def test_the_monitor_serves_a_transport_with_the_options_it_builds(in_tmp: Path) -> None:
    manager = get_plugin_manager()
    plugin = SharedDirTransport()
    manager.register(plugin, name="shared-dir")
    try:
        with GridMapExecutor("local", temp_dir=str(in_tmp), settings={"TRANSPORT": "shared_dir"},
                             backend_options={"mode": "runner"}) as executor:
            assert list(executor.map(double, [1, 2])) == [2, 4]
            address = getattr(executor.session, "address", "")
    finally:
        manager.unregister(name="shared-dir")
    [(directory, name)] = plugin.calls
    assert name == "shared_dir"
    assert directory.parent == in_tmp  # the session's own directory
    assert address.startswith((directory / "exchange").as_uri() + "/map-"), address


def test_each_built_in_transport_builds_its_serve_options_from_the_settings(
        tmp_path: Path) -> None:
    specs = get_plugin_manager().transports()
    settings = load_settings({"MONITOR_INTERFACE": "127.0.0.1", "MONITOR_PORTS": "50000-50100",
                              "MONITOR_ADDRESS": "node0"}, environ={}, cwd=tmp_path)
    assert specs["zmq"].options_for(tmp_path, settings) == {
        "interface": "127.0.0.1", "port_range": "50000-50100", "address": "node0"}
    assert specs["zmq"].options_for(tmp_path, load_settings(environ={}, cwd=tmp_path)) == {
        "interface": "*"}
    assert specs["filesystem"].options_for(tmp_path, settings) == {"directory": str(tmp_path)}


def test_runners_are_told_this_hosts_address_on_the_route_to_the_nodes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without MONITOR_ADDRESS, the zmq transport advertises the address the scheduler's
    nodes reach this host by; MONITOR_ADDRESS still wins, and nodes that are this host
    (a loopback name) leave the guess as it was."""
    from gridmap_core.transports import routes

    routes_to = {"10.9.1.1": "10.9.0.1", "10.9.1.2": "10.9.0.1", "172.16.0.5": "172.16.0.1"}
    monkeypatch.setattr(routes, "source_address_to", routes_to.get)
    monkeypatch.setattr(routes, "local_addresses", lambda: {"127.0.0.1", "10.9.0.1",
                                                            "172.16.0.1", "192.0.2.2"})
    zmq = get_plugin_manager().transports()["zmq"]
    default = load_settings(environ={}, cwd=tmp_path)
    nodes = ("10.9.1.1", "10.9.1.2", "172.16.0.5")
    assert zmq.options_for(tmp_path, default, nodes) == {"interface": "*",
                                                         "address": "10.9.0.1"}
    chosen = load_settings({"MONITOR_ADDRESS": "head"}, environ={}, cwd=tmp_path)
    assert zmq.options_for(tmp_path, chosen, nodes)["address"] == "head"
    assert "address" not in zmq.options_for(tmp_path, default, ("127.0.0.1",))
    assert "address" not in zmq.options_for(tmp_path, default, ("no-such-host.invalid",))
    # A node that is this host votes for the address it has here.
    assert routes.address_for_peers(["192.0.2.2", "10.9.1.1"]) == "192.0.2.2"


def test_the_route_to_an_address_is_read_without_sending_anything() -> None:
    from gridmap_core.transports.routes import local_addresses, source_address_to

    assert source_address_to("127.0.0.1") == "127.0.0.1"
    assert "127.0.0.1" in local_addresses()


def test_the_runner_loads_its_transport_without_the_plugin_manager(tmp_path: Path) -> None:
    """Given the factory's dotted path, as the monitor gives it, a runner on a node
    imports its transport through load_transport without pluggy or any entry point."""
    key_file = protocol.write_key_file(tmp_path / "key", new_keys())
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import sys\n"
        "from gridmap_core.node.runner import main\n"
        f"status = main(['--transport', 'zmq', '--transport-factory', "
        f"'gridmap_core.transports.zmq:ZmqTransport', '--address', 'tcp://127.0.0.1:{port}', "
        f"'--map', 'm', '--key-file', {str(key_file)!r}, '--task', '0', "
        "'--heartbeat', '0.2', '--give-up', '0.5'])\n"
        "assert 'zmq' in sys.modules\n"
        "print(status, 'pluggy' in sys.modules, 'importlib.metadata' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "False", "False"], done.stdout + done.stderr


# -- zmq -------------------------------------------------------------------------------


def zmq_serve(**options: Any) -> zmq_transport.ZmqEndpoint:
    return zmq_transport.ZmqTransport().serve({"interface": "127.0.0.1", "curve": CURVE,
                                               **options})


def test_zmq_garbage_does_not_break_the_endpoint(key: bytes) -> None:
    with zmq_serve() as endpoint, Server(endpoint, Codec(key, MAP)) as server:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        raw = curve_socket(context, zmq.DEALER)
        raw.connect(endpoint.address)
        raw.send(b"one frame, no correlation id")  # transport drops it
        raw.send_multipart([b"x" * 100, b"a", b"b", b"c"])  # first frame no correlation id
        raw.send_multipart([b"12345678", b"junk"])  # codec: Malformed
        raw.send_multipart([b"12345678", *[b"f"] * 50])  # codec: Malformed
        raw.send_multipart([b"12345678", b"{}", b"m" * 32, b"payload"])  # codec: Forged
        req = curve_socket(context, zmq.REQ)  # a REQ's empty delimiter frame looks like an id
        req.connect(endpoint.address)
        req.send(b"hello")  # codec: Malformed
        with socket.create_connection(("127.0.0.1", endpoint.port)) as plain:  # not even ZMTP
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n" + random.Random(1).randbytes(5000))
        deadline = time.monotonic() + 5
        while server.seen() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        client = zmq_transport.ZmqClient(endpoint.address, {"curve": CURVE})
        for number in range(5):
            payload = f"still serving {number}".encode()
            assert bytes(ask(client, Codec(key, MAP), 1, payload).payload) == payload
        client.close()
        raw.close(linger=0)
        req.close(linger=0)
    # libzmq reads the plain bytes as a ZMTP 1.0 peer's frames: how many messages that
    # makes depends on the bytes, but none may be accepted.
    assert endpoint.dropped >= 2
    assert server.rejected["Malformed"] >= 3 and server.rejected["Forged"] >= 1
    assert server.accepted == 5


def test_zmq_oversized_frames_are_dropped_by_zmq(key: bytes) -> None:
    limit = 2**20
    with zmq_serve(max_bytes=limit) as endpoint, Server(endpoint, Codec(key, MAP, max_bytes=limit)
                                                      ) as server:
        client = zmq_transport.ZmqClient(endpoint.address, {"curve": CURVE})
        big = Codec(key, MAP).encode(Kind.RESULT, 1, 0, b"x" * (limit + 1))
        with pytest.raises(TransportTimeout):
            client.request(big, 1.0)
        assert server.seen() == 0  # never handed to the codec: ZeroMQ refused it
        assert bytes(ask(client, Codec(key, MAP), 1, b"x" * limit).payload) == b"x" * limit
        client.close()
    assert server.accepted == 1


def test_zmq_survives_a_monitor_restart(key: bytes) -> None:
    first = zmq_serve()
    port = first.port
    client = zmq_transport.ZmqClient(first.address, {"curve": CURVE})
    codec = Codec(key, MAP)
    with Server(first, Codec(key, MAP)):
        assert bytes(ask(client, codec, 1, b"before").payload) == b"before"
    first.close()
    with pytest.raises(TransportTimeout):
        client.request(codec.encode(Kind.HEARTBEAT, 1, 0, b"nobody"), 0.3)
    second = zmq_serve(port_range=f"{port}-{port}")
    assert second.address == first.address
    with second, Server(second, Codec(key, MAP)):
        assert bytes(ask(client, codec, 1, b"after").payload) == b"after"
    client.close()


def test_zmq_port_range_and_address_options() -> None:
    # above Linux's ephemeral ports (32768-60999), so no outgoing connection holds them
    with zmq_serve(port_range="64100-64120") as endpoint:
        assert 64100 <= endpoint.port <= 64120
        assert endpoint.address == f"tcp://127.0.0.1:{endpoint.port}"
        with pytest.raises(TransportError, match="no free port"):
            zmq_serve(port_range=endpoint.port)
        with zmq_serve(port_range=(64100, 64120)) as other:
            assert other.port != endpoint.port  # the taken port was skipped
            assert 64100 <= other.port <= 64120
    for _ in range(5):  # close() returns once the port is free again
        with zmq_serve(port_range=endpoint.port) as again:
            assert again.port == endpoint.port
    with zmq_serve(address="head-node.example.org") as endpoint:
        assert endpoint.address == f"tcp://head-node.example.org:{endpoint.port}"
    with zmq_serve(address="tcp://gateway:7000") as endpoint:
        assert endpoint.address == "tcp://gateway:7000"
    for bad in ("1-2-3", "0-10", "10-5", "sixty", 70000):
        with pytest.raises(TransportError, match="port_range"):
            zmq_serve(port_range=bad)
    with pytest.raises(TransportError, match="expected tcp://"):
        zmq_transport.ZmqClient("http://example.org")


class FakeAddress:
    def __init__(self, family: int, address: str) -> None:
        self.family, self.address = family, address


def test_zmq_default_host(monkeypatch: pytest.MonkeyPatch) -> None:
    interfaces = {
        "lo": [FakeAddress(socket.AF_INET, "127.0.0.1")],
        "dummy": [FakeAddress(socket.AF_INET, "169.254.3.4"), FakeAddress(socket.AF_INET6, "::1")],
        "eth0": [FakeAddress(socket.AF_INET, "10.1.2.3")],
    }
    monkeypatch.setattr("psutil.net_if_addrs", lambda: interfaces)
    resolved = {"head.cluster": "192.0.2.7", "vm": "127.0.0.1"}

    def getaddrinfo(host: str, *args: Any) -> list[Any]:
        if host not in resolved:
            raise socket.gaierror("unknown")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (resolved[host], 0))]

    monkeypatch.setattr("socket.getaddrinfo", getaddrinfo)
    # 1. the FQDN, when it resolves to a non-loopback address
    monkeypatch.setattr("socket.getfqdn", lambda: "head.cluster")
    assert zmq_transport.default_host() == "192.0.2.7"
    # 2. else the first non-loopback, non-link-local IPv4 of an interface
    monkeypatch.setattr("socket.getfqdn", lambda: "vm")
    assert zmq_transport.default_host() == "10.1.2.3"
    monkeypatch.setattr("socket.getfqdn", lambda: "unresolvable")
    assert zmq_transport.default_host() == "10.1.2.3"
    # 3. else loopback
    del interfaces["eth0"]
    assert zmq_transport.default_host() == "127.0.0.1"


def test_zmq_default_address_is_reachable_here() -> None:
    with zmq_transport.ZmqTransport().serve({"curve": CURVE}) as endpoint:
        host = endpoint.address.split("//")[1].rsplit(":", 1)[0]
        assert host == zmq_transport.default_host()
        with socket.create_connection((host, endpoint.port), timeout=5):
            pass


def bad_messages(key: bytes, rng: random.Random, count: int
                 ) -> list[tuple[list[bytes], str]]:
    """``count`` messages the codec must refuse, each with the error it must raise."""
    good = Codec(key, MAP)
    made: list[tuple[list[bytes], str]] = []
    for number in range(count):
        kind = number % 7
        if kind == 0:  # random frames
            frames = [rng.randbytes(rng.choice([0, 1, 16, 32, 100]))
                      for _ in range(rng.randint(0, 5))]
            if not frames:  # just a correlation id: the transport drops it
                expected = "dropped"
            elif len(frames) == 3 and len(frames[1]) == 32:
                expected = "Forged"
            else:
                expected = "Malformed"
        elif kind == 1:  # an authentic message with one bit flipped anywhere
            flipped = [bytearray(f) for f in good.encode(Kind.HEARTBEAT, 50_000 + number, 0,
                                                         rng.randbytes(rng.randint(1, 200)))]
            which = rng.randrange(3)
            flipped[which][rng.randrange(len(flipped[which]))] ^= 1 << rng.randrange(8)
            frames = [bytes(f) for f in flipped]
            expected = "Forged"
        elif kind == 2:  # signed with another key
            frames = [bytes(f) for f in Codec(new_key(), MAP).encode(Kind.RESULT, number, 0, b"r")]
            expected = "Forged"
        elif kind == 3:  # the right key, another map
            frames = [bytes(f) for f in Codec(key, "other-map").encode(Kind.RESULT, number, 0)]
            expected = "WrongMap"
        elif kind == 4:  # a header too large to be one
            frames = [b"{" * (protocol.MAX_HEADER_BYTES + rng.randint(1, 1000)), b"m" * 32, b""]
            expected = "Oversized"
        elif kind == 5:  # a truncated MAC
            header, mac, payload = good.encode(Kind.HEARTBEAT, number, 0, b"p")
            frames = [bytes(header), bytes(mac)[: rng.randint(0, 31)], bytes(payload)]
            expected = "Malformed"
        else:  # authentic, but not a header
            header = rng.randbytes(40)
            frames = [header, protocol._mac(key, header, b""), b""]
            expected = "Malformed"
        made.append((frames, expected))
    return made


def test_fuzz_zmq_endpoint(key: bytes) -> None:
    """Thousands of random, forged and replayed messages while real runners work."""
    rng = random.Random(20261124)
    bad = bad_messages(key, rng, 3500)
    fuzz_codec = Codec(key, MAP)
    replay_pairs = []
    for number in range(300):
        older = fuzz_codec.encode(Kind.HEARTBEAT, 90_000 + number, 0, b"hb")
        newer = fuzz_codec.encode(Kind.HEARTBEAT, 90_000 + number, 0, b"hb")
        replay_pairs.append((older, newer))
    real_threads, real_requests = 4, 60
    failures: list[BaseException] = []

    with zmq_serve(max_bytes=2**20) as endpoint, Server(endpoint, Codec(key, MAP, max_bytes=2**20)
                                                       ) as server:
        # Created here and closed only once everything has arrived: closing a socket
        # with messages still queued may drop them, linger or not.
        raw = curve_socket(zmq.Context.instance(), zmq.DEALER)
        raw.connect(endpoint.address)

        def fuzz() -> None:
            try:
                for number, (frames, _) in enumerate(bad):
                    raw.send_multipart([number.to_bytes(8, "big"), *frames])
                    if number % 10 == 0 and number // 10 < len(replay_pairs):
                        older, newer = replay_pairs[number // 10]
                        raw.send_multipart([b"r" * 8, *newer])  # accepted
                        raw.send_multipart([b"r" * 8, *newer])  # replayed
                        raw.send_multipart([b"r" * 8, *older])  # older
                    if number % 50 == 0:
                        raw.send(b"no envelope")  # dropped by the transport itself
            except BaseException as error:
                failures.append(error)

        def real(task: int) -> None:
            try:
                client = zmq_transport.ZmqClient(endpoint.address, {"curve": CURVE})
                codec = Codec(key, MAP)
                for number in range(real_requests):
                    payload = rng.randbytes(64) + f"{task}/{number}".encode()
                    assert bytes(ask(client, codec, task, payload).payload) == payload
                client.close()
            except BaseException as error:
                failures.append(error)

        workers = [threading.Thread(target=fuzz)]
        workers += [threading.Thread(target=real, args=(task,)) for task in range(real_threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(45)
        verdicts = collections.Counter(verdict for _, verdict in bad)
        no_envelope = verdicts.pop("dropped") + len(range(0, len(bad), 50))
        expected_seen = (sum(verdicts.values()) + 3 * len(replay_pairs)
                         + real_threads * real_requests)
        deadline = time.monotonic() + 15
        while server.seen() < expected_seen and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # nothing more arrives
        raw.close(linger=0)

    assert not failures, failures[0]
    assert server.rejected == verdicts
    assert sum(verdicts.values()) > 3000
    assert server.replays == 2 * len(replay_pairs)
    assert server.accepted == real_threads * real_requests + len(replay_pairs)
    assert endpoint.dropped == no_envelope


# -- filesystem ------------------------------------------------------------------------


def fs_serve(tmp_path: Path, **options: Any) -> FilesystemEndpoint:
    endpoint = load_transport("filesystem").serve(serve_options("filesystem", tmp_path, **options))
    assert isinstance(endpoint, FilesystemEndpoint)
    return endpoint


def test_filesystem_directories_are_private(tmp_path: Path) -> None:
    old = os.umask(0o000)  # even a careless umask gives 0700
    try:
        endpoint = fs_serve(tmp_path)
    finally:
        os.umask(old)
    with endpoint:
        assert endpoint.address == endpoint.directory.as_uri()
        for path in (endpoint.directory, endpoint.directory / "requests",
                     endpoint.directory / "replies"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
        assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o700
    assert not endpoint.directory.exists()  # close removed the map's directory
    with pytest.raises(TransportError, match="not a map directory"):
        load_transport("filesystem").connect(endpoint.address, {})
    with pytest.raises(TransportError, match="file:///"):
        load_transport("filesystem").connect("tcp://somewhere:1", {})


def test_filesystem_junk_files_do_not_break_the_endpoint(tmp_path: Path, key: bytes) -> None:
    with fs_serve(tmp_path) as endpoint, Server(endpoint, Codec(key, MAP)) as server:
        requests = endpoint.directory / "requests"
        (requests / "junk.1.msg").write_bytes(b"not a message file at all")
        (requests / "short.1.msg").write_bytes(b"GM")
        (requests / "lies.1.msg").write_bytes(b"GMF1\x00\x00\x00\x01" + (10**9).to_bytes(8, "big"))
        (requests / "other name.txt").write_bytes(b"x")
        (requests / "adir.1.msg").mkdir()
        (requests / "link.1.msg").symlink_to(tmp_path)
        # well framed, but garbage frames: the codec refuses it
        (requests / "framed.1.msg").write_bytes(
            b"GMF1\x00\x00\x00\x01" + (4).to_bytes(8, "big") + b"junk")
        client = load_transport("filesystem").connect(endpoint.address, {})
        for number in range(5):
            payload = f"still serving {number}".encode()
            assert bytes(ask(client, Codec(key, MAP), 1, payload).payload) == payload
        client.close()
        deadline = time.monotonic() + 5
        while list(requests.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(requests.iterdir()) == []  # junk is deleted
    assert endpoint.dropped == 6
    assert server.rejected == {"Malformed": 1} and server.accepted == 5


def test_filesystem_oversized_files_are_not_read(tmp_path: Path, key: bytes,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from gridmap_core.transports import filesystem_files

    buffers: list[int] = []

    def counting_bytearray(size: int) -> bytearray:
        buffers.append(size)
        return bytearray(size)

    # read_message allocates one buffer per file it reads: count them
    monkeypatch.setattr(filesystem_files, "bytearray", counting_bytearray, raising=False)
    with fs_serve(tmp_path, max_bytes=1000) as endpoint:
        client = load_transport("filesystem").connect(endpoint.address, {})
        big = Codec(key, MAP).encode(Kind.RESULT, 1, 0, b"x" * 100_000)
        monitor = threading.Thread(target=endpoint.receive, args=(0.6,))
        monitor.start()
        with pytest.raises(TransportTimeout):
            client.request(big, 0.5)
        monitor.join()
        assert endpoint.dropped == 1 and endpoint.received == 0
        assert buffers == []  # refused from its size, never read
        with Server(endpoint, Codec(key, MAP, max_bytes=1000)):
            assert bytes(ask(client, Codec(key, MAP), 1, b"small").payload) == b"small"
        assert len(buffers) == 2  # the small request, and its reply
        client.close()


def test_filesystem_cleans_up_stale_files(tmp_path: Path, key: bytes) -> None:
    with fs_serve(tmp_path, stale_after=1.0) as endpoint:
        client = load_transport("filesystem").connect(endpoint.address, {"stale_after": 60})
        codec = Codec(key, MAP)
        requests, replies = endpoint.directory / "requests", endpoint.directory / "replies"
        # A runner gives up; the monitor answers late: the runner deletes that reply.
        frames = codec.encode(Kind.HEARTBEAT, 1, 0, b"late")
        client_thread_error: list[BaseException] = []

        def give_up() -> None:
            try:
                client.request(frames, 0.05)
            except TransportTimeout:
                pass
            except BaseException as error:
                client_thread_error.append(error)

        # take the request before the runner withdraws it
        writer = threading.Thread(target=give_up)
        writer.start()
        taken = None
        while taken is None:
            taken = endpoint.receive(1)
        writer.join()
        assert not client_thread_error
        endpoint.reply(taken[0], codec.reply(codec.decode(taken[1]).header, Kind.ACK))
        assert len(list(replies.iterdir())) == 1
        with Server(endpoint, Codec(key, MAP)):
            ask(client, codec, 1, b"next")
        assert list(replies.iterdir()) == []
        # Half-written files of a dead runner, and replies nobody fetched, are swept.
        (requests / ".dead.1.msg.tmp").write_bytes(b"half")
        (replies / "gone.1.msg").write_bytes(b"unfetched")
        old = time.time() - 10
        for path in (requests / ".dead.1.msg.tmp", replies / "gone.1.msg"):
            os.utime(path, (old, old))
        (requests / ".fresh.1.msg.tmp").write_bytes(b"being written")
        endpoint.receive(0.6)  # sweeps every stale_after / 4
        assert [p.name for p in requests.iterdir()] == [".fresh.1.msg.tmp"]
        assert list(replies.iterdir()) == []
        client.close()


def test_filesystem_client_after_the_map_ended(tmp_path: Path, key: bytes) -> None:
    endpoint = fs_serve(tmp_path)
    client = load_transport("filesystem").connect(endpoint.address, {})
    endpoint.close()
    with pytest.raises(TransportError, match="has gone"):
        client.request(Codec(key, MAP).encode(Kind.FETCH, 1, 0), 1)


def test_filesystem_option_values_are_checked(tmp_path: Path) -> None:
    for options in ({"poll_interval": 0}, {"poll_interval": "soon"}, {"fsync": "maybe"},
                    {"stale_after": -1}, {"max_bytes": "lots"}):
        with pytest.raises(TransportError):
            fs_serve(tmp_path, **options)
    with fs_serve(tmp_path, fsync="true", max_bytes="1M") as endpoint:
        assert endpoint.fsync is True and endpoint.max_bytes == 2**20


# -- the benchmark ---------------------------------------------------------------------


def test_transport_benchmark_runs() -> None:
    result = subprocess.run([sys.executable, "bench/bench_transport.py", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "messages/s" in result.stdout and "MB/s" in result.stdout
