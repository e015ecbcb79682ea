"""Messages between a runner (on a compute node) and the monitor (the submitting process).

A message is three frames, ``[header, mac, payload]``, kept apart so that a 100 MB
payload is never concatenated or copied:

* ``header``: compact JSON (never pickle): kind, map id, task id, attempt, sequence
  number, time sent. At most :data:`MAX_HEADER_BYTES`.
* ``mac``: HMAC-SHA256, under the map's 32-byte key, of the header's length (8 bytes,
  big-endian), the header and the payload. The length prefix stops bytes moving from
  header to payload (or back) without changing the MAC.
* ``payload``: opaque bytes. The caller pickles; this module never unpickles, so
  nothing from the network is unpickled before :meth:`Codec.decode` has checked it.

:meth:`Codec.decode` checks, in this order, and raises a :class:`ProtocolError` at the
first failure: frame count and sizes (:class:`Malformed`, :class:`Oversized`, from
the lengths alone), the MAC (:class:`Forged`), the header's JSON (:class:`Malformed`),
the map id (:class:`WrongMap`) and, if the caller says which kinds it expects, the
kind (:class:`Malformed`). Replays of authentic messages are the :class:`ReplayGuard`'s
job.

The kinds, the header and the errors are in :mod:`gridmap_core.wire.header`, the key
and its file in :mod:`gridmap_core.wire.keys`, the replay guard in
:mod:`gridmap_core.wire.replay`; this module re-exports them all, so that
``gridmap_core.wire.protocol`` names the whole protocol.
"""

from __future__ import annotations

import hmac
import itertools
import struct
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from gridmap_core.wire.header import (
    FROM_MONITOR,
    FROM_RUNNER,
    MAX_HEADER_BYTES,
    PROTOCOL_VERSION,
    Forged,
    Header,
    Kind,
    Malformed,
    Oversized,
    ProtocolError,
    WrongMap,
    is_reply_to,
    parse_json,
)
from gridmap_core.wire.keys import (
    KEY_BYTES,
    CurveKeys,
    KeyFileError,
    MapKeys,
    check_key,
    new_curve_keys,
    new_key,
    new_keys,
    read_key_file,
    write_key_file,
)
from gridmap_core.wire.replay import ReplayGuard

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FROM_MONITOR",
    "FROM_RUNNER",
    "KEY_BYTES",
    "MAC_BYTES",
    "MAX_HEADER_BYTES",
    "PROTOCOL_VERSION",
    "Codec",
    "CurveKeys",
    "Forged",
    "Header",
    "KeyFileError",
    "Kind",
    "Malformed",
    "MapKeys",
    "Message",
    "Oversized",
    "ProtocolError",
    "ReplayGuard",
    "WrongMap",
    "is_reply_to",
    "new_curve_keys",
    "new_key",
    "new_keys",
    "parse_json",
    "read_key_file",
    "write_key_file",
]

MAC_BYTES = 32
DEFAULT_MAX_BYTES = 1 << 30
_FRAMES = 3
_LENGTH = struct.Struct("!Q")


@dataclass(frozen=True)
class Message:
    """An authenticated message: its header, and its payload still as received (a view,
    not a copy, of the transport's buffer)."""

    header: Header
    payload: memoryview


def _view(frame: object) -> memoryview:
    """A flat byte view of a frame: bytes, bytearray, memoryview, zmq.Frame, mmap, ..."""
    try:
        view = memoryview(frame)  # type: ignore[arg-type]
    except TypeError:
        buffer = getattr(frame, "buffer", None)  # pyzmq frames without the buffer protocol
        if not isinstance(buffer, memoryview):
            raise Malformed(f"a frame is a {type(frame).__name__}, not bytes") from None
        view = buffer
    if view.ndim != 1 or view.format != "B":
        try:
            view = view.cast("B")
        except TypeError:
            raise Malformed("a frame is not a contiguous byte buffer") from None
    return view


def _mac(keyed: hmac.HMAC | bytes, header: memoryview | bytes,
         payload: memoryview | bytes) -> bytes:
    # Incremental, so a large payload is hashed where it lies (hashlib releases the GIL).
    # ``keyed`` is the key, or an HMAC already fed it: copying that skips the key pads.
    digest = hmac.new(keyed, digestmod="sha256") if isinstance(keyed, bytes) else keyed.copy()
    digest.update(_LENGTH.pack(len(header)) + header)  # a header is small: one update
    digest.update(payload)
    return digest.digest()


class Codec:
    """Encodes and authenticates the messages of one map.

    One per sender: the monitor holds one for the whole map, each runner its own.
    ``max_bytes`` bounds payloads both ways, so a sender learns at once (from
    :meth:`encode`) that a receiver would refuse its message. Thread-safe.

    >>> codec = Codec(new_key(), "map-1")
    >>> frames = codec.encode(Kind.HEARTBEAT, task_id=3, attempt=0, payload=b"...")
    >>> codec.decode(frames).header.task_id
    3
    """

    def __init__(self, key: bytes, map_id: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._key = check_key(key)
        self._keyed = hmac.new(self._key, digestmod="sha256")
        if not isinstance(map_id, str) or not map_id:
            raise ValueError("map_id must be a non-empty string")
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.map_id = map_id
        self.max_bytes = max_bytes
        # Sequence numbers start at the current time in microseconds, so a sender that
        # restarts (a runner re-run by the scheduler under the same attempt, a new
        # Codec after a reconnect) still counts up from where the old one stopped.
        self._seq = itertools.count(time.time_ns() // 1000)

    def header(self, kind: Kind, task_id: int, attempt: int) -> Header:
        """A fresh header from this sender: the next sequence number, the time now."""
        return Header(kind, self.map_id, task_id, attempt, next(self._seq), time.time())

    def encode(self, kind: Kind, task_id: int, attempt: int,
               payload: bytes | bytearray | memoryview = b"") -> list[bytes | memoryview]:
        """The frames of a new message; ``payload`` is referenced, not copied.

        Raises :class:`Oversized` if the payload exceeds ``max_bytes``. Do not change
        a ``bytearray`` payload until the transport has sent it.
        """
        return self.encode_header(self.header(kind, task_id, attempt), payload)

    def encode_header(self, header: Header,
                      payload: bytes | bytearray | memoryview = b"") -> list[bytes | memoryview]:
        """Frames for a header made by the caller (tests, replies with a chosen seq)."""
        data = header.to_json()
        if len(data) > MAX_HEADER_BYTES:
            raise Oversized(f"header of {len(data)} bytes exceeds {MAX_HEADER_BYTES}")
        body: bytes | memoryview = payload if isinstance(payload, bytes) else _view(payload)
        if len(body) > self.max_bytes:
            raise Oversized(f"payload of {len(body)} bytes exceeds max_bytes={self.max_bytes}")
        return [data, _mac(self._keyed, data, body), body]

    def reply(self, request: Header, kind: Kind,
              payload: bytes | bytearray | memoryview = b"") -> list[bytes | memoryview]:
        """Frames answering ``request``: same task and attempt, ``kind`` from this side."""
        return self.encode(kind, request.task_id, request.attempt, payload)

    def decode(self, frames: Sequence[object], expect: Collection[Kind] | None = None
               ) -> Message:
        """Check and open a received message; raise a :class:`ProtocolError` if bad.

        Sizes are checked from lengths before anything is hashed, and the MAC before
        the header is parsed. ``expect`` (e.g. :data:`FROM_RUNNER` on the monitor's
        side) refuses, as :class:`Malformed`, an authentic message of another kind: one
        key signs both directions, so without it a monitor's own TASK sent back to it
        would pass. The payload is returned as a view of the received frame.
        """
        if len(frames) != _FRAMES:
            raise Malformed(f"{len(frames)} frames, expected {_FRAMES}")
        header, mac, payload = (_view(frame) for frame in frames)
        if len(header) > MAX_HEADER_BYTES:
            raise Oversized(f"header of {len(header)} bytes exceeds {MAX_HEADER_BYTES}")
        if len(payload) > self.max_bytes:
            raise Oversized(f"payload of {len(payload)} bytes exceeds max_bytes={self.max_bytes}")
        if len(mac) != MAC_BYTES:
            raise Malformed(f"MAC of {len(mac)} bytes, expected {MAC_BYTES}")
        if not hmac.compare_digest(_mac(self._keyed, header, payload), mac):
            raise Forged("MAC does not match (altered, or not made with this map's key)")
        parsed = Header.from_json(header)
        if parsed.map_id != self.map_id:
            raise WrongMap(f"message for map {parsed.map_id[:64]!r}, not {self.map_id!r}")
        if expect is not None and parsed.kind not in expect:
            raise Malformed(f"a {parsed.kind.value} message was not expected here")
        return Message(parsed, payload)
