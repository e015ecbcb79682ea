"""The message codec, the replay guard and key files (gridmap_core/wire/protocol.py)."""

from __future__ import annotations

import json
import os
import pickle
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from gridmap_core.wire import protocol
from gridmap_core.wire.keys import _format
from gridmap_core.wire.protocol import (
    DEFAULT_MAX_BYTES,
    FROM_MONITOR,
    FROM_RUNNER,
    MAX_HEADER_BYTES,
    Codec,
    CurveKeys,
    Forged,
    Header,
    KeyFileError,
    Kind,
    Malformed,
    MapKeys,
    Oversized,
    ProtocolError,
    ReplayGuard,
    WrongMap,
    is_reply_to,
    new_key,
    new_keys,
    read_key_file,
    write_key_file,
)

KEY = bytes(range(32))
MAP = "map-1"


class Trap:
    """Unpickling this creates a file: proof, if the file appears, that something
    unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def codec(key: bytes = KEY, map_id: str = MAP, **kwargs: Any) -> Codec:
    return Codec(key, map_id, **kwargs)


# -- codec -----------------------------------------------------------------------------


def test_round_trip_keeps_every_field_and_the_payload() -> None:
    runner, monitor = codec(), codec()
    payload = os.urandom(1000)
    frames = runner.encode(Kind.HEARTBEAT, task_id=7, attempt=2, payload=payload)
    assert len(frames) == 3
    message = monitor.decode(frames)
    header = message.header
    assert (header.kind, header.map_id, header.task_id, header.attempt) == (
        Kind.HEARTBEAT, MAP, 7, 2)
    assert abs(header.sent - time.time()) < 5
    assert bytes(message.payload) == payload
    # The payload is handed back as a view of the received frame, not a copy.
    assert message.payload.obj is payload


def test_header_is_compact_json() -> None:
    [header, _, _] = codec().encode(Kind.FETCH, 1, 0)
    assert isinstance(header, bytes)
    assert b" " not in header
    fields = json.loads(header)
    assert fields["kind"] == "fetch" and fields["map"] == MAP and fields["task"] == 1


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, zmq.Frame],
                         ids=["bytes", "bytearray", "memoryview", "zmq.Frame"])
def test_decode_accepts_any_buffer(wrap: Any) -> None:
    frames = codec().encode(Kind.RESULT, 3, 0, b"value")
    message = codec().decode([wrap(bytes(frame)) for frame in frames])
    assert bytes(message.payload) == b"value"


def test_a_bytearray_payload_is_not_copied_on_encode() -> None:
    payload = bytearray(b"x" * 1000)
    frames = codec().encode(Kind.RESULT, 3, 0, payload)
    assert isinstance(frames[2], memoryview) and frames[2].obj is payload


def test_sequence_numbers_increase_and_survive_a_new_codec() -> None:
    first = codec()
    seqs = [first.header(Kind.HEARTBEAT, 1, 0).seq for _ in range(3)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    # A restarted sender (new Codec, same task and attempt) still counts upwards.
    assert codec().header(Kind.HEARTBEAT, 1, 0).seq > seqs[-1]


@pytest.mark.parametrize("frame", [0, 1, 2], ids=["header", "mac", "payload"])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_bit_is_forged(frame: int, where: str) -> None:
    frames = [bytearray(f) for f in codec().encode(Kind.RESULT, 3, 0, b"payload bytes")]
    index = {"first": 0, "middle": len(frames[frame]) // 2, "last": len(frames[frame]) - 1}
    frames[frame][index[where]] ^= 0x10
    with pytest.raises(Forged):
        codec().decode(frames)


def test_another_maps_key_is_forged() -> None:
    frames = codec(key=new_key()).encode(Kind.HEARTBEAT, 3, 0, b"x")
    with pytest.raises(Forged):
        codec().decode(frames)


def test_another_map_id_with_the_right_key_is_wrong_map() -> None:
    frames = codec(map_id="map-2").encode(Kind.HEARTBEAT, 3, 0, b"x")
    with pytest.raises(WrongMap, match="map-2"):
        codec().decode(frames)


def test_moving_bytes_between_header_and_payload_is_forged() -> None:
    header, mac, payload = (bytes(f) for f in codec().encode(Kind.RESULT, 3, 0, b"payload"))
    with pytest.raises(Forged):
        codec().decode([header[:-1], mac, header[-1:] + payload])


def signed(header: bytes, payload: bytes = b"") -> list[bytes]:
    """Frames with a correct MAC around an arbitrary header."""
    return [header, protocol._mac(KEY, header, payload), payload]


@pytest.mark.parametrize(
    "frames",
    [
        [],
        [b"{}"],
        [b"{}", b"x" * 32],
        [b"{}", b"x" * 32, b"", b""],
        [b"{}", b"x" * 31, b""],
        [b"{}", b"x" * 33, b""],
        [b"{}", 42, b""],
        [None, None, None],
        signed(b"not json"),
        signed(b"\xff\xfe"),
        signed(b"[1, 2, 3]"),
        signed(b'{"v":1}'),
        signed(b'{"v":2,"kind":"ack","map":"map-1","task":1,"attempt":0,"seq":1,"sent":0}'),
        signed(b'{"v":1,"kind":"nope","map":"map-1","task":1,"attempt":0,"seq":1,"sent":0}'),
        signed(b'{"v":1,"kind":"ack","map":"map-1","task":-1,"attempt":0,"seq":1,"sent":0}'),
        signed(b'{"v":1,"kind":"ack","map":"map-1","task":true,"attempt":0,"seq":1,"sent":0}'),
        signed(b'{"v":1,"kind":"ack","map":"map-1","task":1,"attempt":0,"seq":1,"sent":"x"}'),
        signed(b'{"v":1,"kind":"ack","map":1,"task":1,"attempt":0,"seq":1,"sent":0}'),
    ],
)
def test_truncated_or_garbage_frames_are_malformed(frames: list[Any]) -> None:
    with pytest.raises(Malformed):
        codec().decode(frames)


def test_an_authentic_well_formed_header_is_accepted() -> None:
    # The counterpart of the garbage cases above: the same construction, valid fields.
    header = b'{"v":1,"kind":"ack","map":"map-1","task":1,"attempt":0,"seq":1,"sent":0}'
    assert codec().decode(signed(header)).header.kind is Kind.ACK


def test_oversized_is_judged_from_lengths_without_hashing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    small = codec(max_bytes=100)
    ok = small.decode(codec().encode(Kind.RESULT, 1, 0, b"x" * 100))
    assert len(ok.payload) == 100

    def no_hashing(*args: object) -> bytes:
        raise AssertionError("an oversized message was hashed")

    monkeypatch.setattr(protocol, "_mac", no_hashing)
    with pytest.raises(Oversized, match="payload"):
        small.decode([b"{}", b"m" * 32, b"x" * 101])
    with pytest.raises(Oversized, match="header"):
        small.decode([b"{" * (MAX_HEADER_BYTES + 1), b"m" * 32, b""])


def test_encode_refuses_what_the_receiver_would_refuse() -> None:
    with pytest.raises(Oversized):
        codec(max_bytes=10).encode(Kind.RESULT, 1, 0, b"x" * 11)
    with pytest.raises(Oversized, match="header"):
        codec(map_id="m" * MAX_HEADER_BYTES).encode(Kind.FETCH, 1, 0)
    assert codec().max_bytes == DEFAULT_MAX_BYTES == 1 << 30


def test_decode_can_refuse_messages_meant_for_the_other_side() -> None:
    monitor = codec()
    task = monitor.encode(Kind.TASK, 1, 0, b"function and arguments")
    assert monitor.decode(task).header.kind is Kind.TASK  # authentic
    with pytest.raises(Malformed, match="task message was not expected"):
        monitor.decode(task, expect=FROM_RUNNER)  # reflected back to the monitor
    assert monitor.decode(task, expect=FROM_MONITOR).header.kind is Kind.TASK
    heartbeat = codec().encode(Kind.HEARTBEAT, 1, 0)
    assert monitor.decode(heartbeat, expect=FROM_RUNNER).header.kind is Kind.HEARTBEAT
    assert set(Kind) == FROM_RUNNER | FROM_MONITOR and not FROM_RUNNER & FROM_MONITOR


def test_protocol_errors_share_one_base() -> None:
    for error in (Malformed, Forged, WrongMap, Oversized):
        assert issubclass(error, ProtocolError)


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Codec(b"short", MAP)
    assert len(new_key()) == 32 and new_key() != new_key()


def test_a_forged_pickle_is_never_unpickled(tmp_path: Path) -> None:
    trap = tmp_path / "unpickled"
    payload = pickle.dumps(Trap(trap))
    forged = codec(key=new_key()).encode(Kind.RESULT, 1, 0, payload)
    with pytest.raises(Forged):
        codec().decode(forged)
    tampered = [bytearray(frame) for frame in codec().encode(Kind.RESULT, 1, 0, payload)]
    tampered[2][-2] ^= 1
    with pytest.raises(Forged):
        codec().decode(tampered)
    assert not trap.exists()
    # The trap works: unpickling the payload would have created the file.
    pickle.loads(payload)
    assert trap.exists()


def test_is_reply_to() -> None:
    runner, monitor = codec(), codec()
    request = runner.header(Kind.HEARTBEAT, 4, 1)
    reply = monitor.decode(monitor.reply(request, Kind.ACK)).header
    assert is_reply_to(reply, request)
    assert not is_reply_to(monitor.header(Kind.ACK, 5, 1), request)  # other task
    assert not is_reply_to(monitor.header(Kind.ACK, 4, 0), request)  # other attempt
    assert not is_reply_to(runner.header(Kind.RESULT, 4, 1), request)  # same direction


# -- replay guard ----------------------------------------------------------------------


def header(seq: int, kind: Kind = Kind.HEARTBEAT, task: int = 1, attempt: int = 0) -> Header:
    return Header(kind, MAP, task, attempt, seq, 0.0)


def test_replay_guard_rejects_replayed_and_older_accepts_next() -> None:
    guard = ReplayGuard()
    assert guard.accept(header(10))
    assert not guard.accept(header(10))  # replayed
    assert not guard.accept(header(9))  # older
    assert guard.accept(header(11))  # the next
    assert not guard.accept(header(10))


def test_replay_guard_keys_on_task_attempt_and_direction() -> None:
    guard = ReplayGuard()
    assert guard.accept(header(10))
    assert guard.accept(header(5, task=2))
    assert guard.accept(header(5, attempt=1))
    assert guard.accept(header(5, kind=Kind.ACK))  # monitor -> runner is its own sequence
    assert not guard.accept(header(5, kind=Kind.RESULT))  # runner -> monitor, like heartbeats


def test_replay_guard_forgets_finished_tasks() -> None:
    guard = ReplayGuard()
    for task in range(100):
        guard.accept(header(1, task=task))
        guard.accept(header(1, task=task, attempt=1))
    assert len(guard) == 100
    guard.forget(3, attempt=0)
    assert len(guard) == 100 and guard.accept(header(1, task=3)) is True
    assert guard.accept(header(1, task=3, attempt=1)) is False  # attempt 1 still remembered
    for task in range(100):
        guard.forget(task)
    assert len(guard) == 0


# -- key files -------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_key_file_is_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    keys = new_keys()
    path = tmp_path / "key"
    old = os.umask(umask)
    try:
        write_key_file(path, keys)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == keys
    assert keys.mac.hex() in path.read_text()


def test_key_file_holds_the_mac_key_and_the_curve_keys(tmp_path: Path) -> None:
    keys = new_keys()
    path = write_key_file(tmp_path / "key", keys)
    text = path.read_bytes()
    curve = keys.curve
    for value in (curve.server_public, curve.server_secret, curve.client_public,
                  curve.client_secret):
        assert len(value) == 40 and value in text
    assert len({curve.server_public, curve.client_public}) == 2  # two key pairs
    read = read_key_file(path)
    assert read.mac == keys.mac and read.curve == curve
    # The pairs are genuine: each public key is its secret key's.
    assert zmq.curve_public(curve.server_secret) == curve.server_public
    assert zmq.curve_public(curve.client_secret) == curve.client_public
    # Each map has its own keys.
    other = new_keys()
    assert other.mac != keys.mac and other.curve.server_secret != curve.server_secret
    # Secrets stay out of reprs, and so out of logs.
    for secret in (curve.server_secret, curve.client_secret):
        assert secret.decode() not in repr(keys) and secret.decode() not in repr(curve)
    assert keys.mac.hex() not in repr(keys)


def test_key_file_is_created_0600_and_exclusive_from_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        calls.append((flags, mode))
        return real_open(path, flags, mode, **kwargs)

    keys = new_keys()
    monkeypatch.setattr(os, "open", spy)
    write_key_file(tmp_path / "key", keys)
    [(flags, mode)] = calls
    assert mode == 0o600
    assert flags & os.O_CREAT and flags & os.O_EXCL and flags & os.O_WRONLY


def test_key_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "key"
    first = new_keys()
    write_key_file(path, first)
    with pytest.raises(KeyFileError, match="exists"):
        write_key_file(path, new_keys())
    assert read_key_file(path) == first
    # nor through a symlink someone prepared
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("theirs")
    (tmp_path / "link").symlink_to(elsewhere)
    with pytest.raises(KeyFileError):
        write_key_file(tmp_path / "link", new_keys())
    assert elsewhere.read_text() == "theirs"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path / "key", new_keys())
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match=f"{mode:04o}"):
        read_key_file(path)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a file to someone else")
def test_key_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = write_key_file(tmp_path / "key", new_keys())
    os.chown(path, 65534, -1)
    with pytest.raises(KeyFileError, match="owned by uid 65534"):
        read_key_file(path)


def _good_lines() -> list[bytes]:
    return bytes(_format(new_keys())).splitlines()


def _malformed_contents() -> list[tuple[bytes, str]]:
    lines = _good_lines()

    def joined(changed: list[bytes]) -> bytes:
        return b"\n".join(changed) + b"\n"

    return [
        (b"", "first line"),
        (b"zz" * 32, "first line"),
        (b"a" * 2000, "over 1024 bytes"),
        (joined([b"gridmap map keys 9", *lines[1:]]), "first line"),
        (joined(lines[:-1]), "5 lines, where it has 6"),  # cut short
        (joined([*lines, lines[-1]]), "7 lines"),
        (joined([lines[0], lines[2], lines[1], *lines[3:]]), "line 2 is not the 'mac' line"),
        (joined([lines[0], b"mac " + b"ab" * 31, *lines[2:]]), "mac is not a key of 64 hex"),
        (joined([*lines[:3], lines[3][:-1], *lines[4:]]),
         "curve-server-secret is not a key of 40 characters of Z85"),
        (joined([*lines[:5], lines[5][:-1] + b" ", ]), "curve-client-secret is not a key"),
        (joined([*lines[:4], lines[4].replace(b" ", b"\t", 1), *lines[5:]]),
         "line 5 is not the 'curve-client-public' line"),
    ]


@pytest.mark.parametrize(("content", "what"), _malformed_contents())
def test_malformed_key_file_is_refused_saying_what_is_wrong(tmp_path: Path, content: bytes,
                                                            what: str) -> None:
    path = tmp_path / "key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyFileError, match="malformed") as refused:
        read_key_file(path)
    assert what in str(refused.value)
    assert "cancel the map and run it again" in str(refused.value)


def test_a_key_file_of_the_format_before_curve_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, new_key().hex().encode() + b"\n")
    os.close(fd)
    with pytest.raises(KeyFileError, match=r"holds only a MAC key.*before maps were encrypted"):
        read_key_file(path)


def test_keys_are_checked_when_made() -> None:
    curve = new_keys().curve
    with pytest.raises(ValueError, match="Z85"):
        CurveKeys(curve.server_public, b"short", curve.client_public, curve.client_secret)
    with pytest.raises(ValueError, match="32 bytes"):
        MapKeys(b"short", curve)
    with pytest.raises(TypeError, match="MapKeys"):
        write_key_file("unused", new_key())  # type: ignore[arg-type]


def test_missing_key_file_and_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open"):
        read_key_file(tmp_path / "missing")
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        read_key_file(directory)
