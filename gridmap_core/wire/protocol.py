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

The key lives in a file that only its owner can read (:func:`write_key_file`,
:func:`read_key_file`); the runner gets the file's path, never the key, on its
command line.
"""

from __future__ import annotations

import enum
import functools
import hmac
import itertools
import json
import json.scanner
import math
import os
import secrets
import stat
import struct
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from gridmap_core.errors import GridMapError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FROM_MONITOR",
    "FROM_RUNNER",
    "KEY_BYTES",
    "MAC_BYTES",
    "MAX_HEADER_BYTES",
    "PROTOCOL_VERSION",
    "Codec",
    "Forged",
    "Header",
    "KeyFileError",
    "Kind",
    "Malformed",
    "Message",
    "Oversized",
    "ProtocolError",
    "ReplayGuard",
    "WrongMap",
    "is_reply_to",
    "new_key",
    "read_key_file",
    "write_key_file",
]

PROTOCOL_VERSION = 1
KEY_BYTES = 32
MAC_BYTES = 32
# A header is six short fields; 4 KiB leaves room for a long map id and nothing else.
MAX_HEADER_BYTES = 4096
DEFAULT_MAX_BYTES = 1 << 30
_FRAMES = 3
_LENGTH = struct.Struct("!Q")
_HEADER_KEYS = frozenset({"v", "kind", "map", "task", "attempt", "seq", "sent"})
# A key file holds the key in hex and a newline; anything longer is not ours.
_KEY_FILE_MAX = 256


class ProtocolError(GridMapError):
    """A message that must be dropped (and may be logged): the text says why, briefly."""


class Malformed(ProtocolError):
    """Not a message of this protocol: wrong number of frames, bad MAC length, bad header."""


class Forged(ProtocolError):
    """The MAC does not match: altered in transit, or made without this map's key."""


class WrongMap(ProtocolError):
    """Authentic, but addressed to another map."""


class Oversized(ProtocolError):
    """A header or payload larger than allowed; rejected from its length alone."""


class KeyFileError(GridMapError):
    """A key file that cannot be created or read, or that others could read."""


class Kind(str, enum.Enum):
    """What a message is. Runner -> monitor: FETCH, HEARTBEAT, RESULT; monitor -> runner:
    TASK, ACK, STOP."""

    FETCH = "fetch"  # runner: send me my task (payload empty)
    TASK = "task"  # monitor: the pickled function and arguments (to a RESULT: the next job)
    HEARTBEAT = "heartbeat"  # runner: CPU, memory, host, log tail (JSON)
    RESULT = "result"  # runner: the pickled value, or exception and traceback
    ACK = "ack"  # monitor: received; carry on
    STOP = "stop"  # monitor: stop now (cancelled, superseded by a resubmission, unknown task)

    @property
    def from_runner(self) -> bool:
        """Whether runners send this kind (the direction the :class:`ReplayGuard` keys on)."""
        return self in FROM_RUNNER


#: What runners send; what the monitor accepts (``Codec.decode(..., expect=FROM_RUNNER)``).
FROM_RUNNER = frozenset({Kind.FETCH, Kind.HEARTBEAT, Kind.RESULT})
#: What the monitor sends; what a runner accepts.
FROM_MONITOR = frozenset({Kind.TASK, Kind.ACK, Kind.STOP})
_KINDS = {kind.value: kind for kind in Kind}


_scan_json = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def parse_json(text: str) -> Any:
    """``json.loads`` of a whole document, without its Python-level wrappers (the
    monitor parses two small documents per heartbeat); ValueError if it is not JSON."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("not JSON: extra data")
    return value


@functools.lru_cache(maxsize=64)
def _json_string(text: str) -> str:
    """``text`` as a JSON string literal (a map has one id; cache it)."""
    return json.dumps(text, ensure_ascii=True)


class Header(NamedTuple):
    """Who sent a message, about which task, and when.

    A NamedTuple rather than a frozen dataclass: two are made per message handled,
    and this is several times cheaper to create.

    ``attempt`` numbers the submissions of one task (0 for the first), so a message
    from a superseded submission can be told from the current one. ``seq`` increases
    with every message a sender sends; ``sent`` is the sender's ``time.time()``.
    """

    kind: Kind
    map_id: str
    task_id: int
    attempt: int
    seq: int
    sent: float

    def to_json(self) -> bytes:
        """The compact JSON of this header, as it goes on the wire."""
        # Formatted by hand: json.dumps with separators costs three times as much, and
        # the monitor encodes one header per message it answers.
        sent = float(self.sent)
        if not math.isfinite(sent):
            raise ValueError(f"header field sent={self.sent!r} is not a finite number")
        return (
            f'{{"v":{PROTOCOL_VERSION},"kind":"{self.kind.value}",'
            f'"map":{_json_string(self.map_id)},"task":{int(self.task_id)},'
            f'"attempt":{int(self.attempt)},"seq":{int(self.seq)},"sent":{sent!r}}}'
        ).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes | memoryview) -> Header:
        """Parse and check a header; raise :class:`Malformed` if it is not one of ours."""
        try:
            fields = parse_json(str(data, "ascii"))
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise Malformed("header is not ASCII JSON") from None
        if type(fields) is not dict or fields.keys() != _HEADER_KEYS:
            raise Malformed("header has the wrong fields")
        if fields["v"] != PROTOCOL_VERSION:
            raise Malformed(f"protocol version {fields['v']!r}, expected {PROTOCOL_VERSION}")
        kind = _KINDS.get(fields["kind"]) if isinstance(fields["kind"], str) else None
        if kind is None:
            raise Malformed(f"unknown message kind {fields['kind']!r}")
        if not isinstance(fields["map"], str):
            raise Malformed("map id is not a string")
        task, attempt, seq, sent = fields["task"], fields["attempt"], fields["seq"], fields["sent"]
        # type() and not isinstance(): a bool is an int to Python, not to us
        if not (type(task) is type(attempt) is type(seq) is int and min(task, attempt, seq) >= 0):
            raise Malformed("header fields task, attempt and seq must be non-negative integers")
        if type(sent) is not float and type(sent) is not int:
            raise Malformed("header field 'sent' is not a number")
        return cls(kind, fields["map"], task, attempt, seq, float(sent))


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


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"a map key is {KEY_BYTES} bytes (use new_key())")
    return key


def is_reply_to(reply: Header, request: Header) -> bool:
    """Whether ``reply`` answers ``request``: same map, task and attempt, other direction.

    A runner checks this on every reply, so that a reply meant for another task of
    the same map (authentic, hence accepted by the codec) is not taken for its own.
    """
    return (
        reply.map_id == request.map_id
        and reply.task_id == request.task_id
        and reply.attempt == request.attempt
        and reply.kind.from_runner != request.kind.from_runner
    )


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
        self._key = _check_key(key)
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


class ReplayGuard:
    """Refuses authentic messages seen before: a recorded message sent again, or an
    old one arriving after a newer one.

    Keyed by (task id, attempt, direction), so the guard holds one integer per live
    task and direction; call :meth:`forget` when a task ends to free it. A forgotten
    task's old messages would pass again, so the monitor must itself refuse messages
    for tasks that have ended (answer STOP). Thread-safe.
    """

    def __init__(self) -> None:
        self._last: dict[int, dict[tuple[int, bool], int]] = {}
        self._lock = threading.Lock()

    def accept(self, header: Header) -> bool:
        """True (and remember ``header.seq``) only if it is higher than the last seq
        accepted for the same task, attempt and direction."""
        key = (header.attempt, header.kind.from_runner)
        with self._lock:
            task = self._last.get(header.task_id)
            if task is None:
                self._last[header.task_id] = {key: header.seq}
                return True
            last = task.get(key)
            if last is not None and header.seq <= last:
                return False
            task[key] = header.seq
            return True

    def forget(self, task_id: int, attempt: int | None = None) -> None:
        """Drop what is remembered of a task (of one attempt, or all of them)."""
        with self._lock:
            if attempt is None:
                self._last.pop(task_id, None)
                return
            task = self._last.get(task_id)
            if task is not None:
                task.pop((attempt, True), None)
                task.pop((attempt, False), None)
                if not task:
                    del self._last[task_id]

    def __len__(self) -> int:
        """Number of tasks remembered."""
        return len(self._last)


# -- keys --------------------------------------------------------------------------------


def new_key() -> bytes:
    """A fresh random map key of :data:`KEY_BYTES` bytes."""
    return secrets.token_bytes(KEY_BYTES)


def write_key_file(path: str | os.PathLike[str], key: bytes) -> Path:
    """Create ``path`` holding ``key``, readable and writable by its owner only.

    The file is created exclusively (an existing file or symlink is an error, so
    nobody can have prepared it) with mode 0600 from the start, so it is never
    briefly readable by others; the mode is set again after creation because a umask
    could have taken bits away (0o277 would leave even the owner unable to read).
    """
    _check_key(key)
    target = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {target} exists already; a map writes a new one") from None
    except OSError as error:
        raise KeyFileError(f"cannot create key file {target}: {error.strerror}") from error
    try:
        os.fchmod(fd, 0o600)
        data = memoryview(key.hex().encode("ascii") + b"\n")
        while data:
            data = data[os.write(fd, data):]
        # The runner reads it from another host: it must be on disk, not just in our cache.
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)
    return target


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a key written by :func:`write_key_file`.

    Refuses (:class:`KeyFileError`) a file that is not a regular file, not owned by
    the current user, or readable or writable by group or others: such a key may be
    known to someone else, and messages signed with it prove nothing.
    """
    target = Path(path)
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang the runner.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise KeyFileError(f"cannot open key file {target}: {error.strerror}") from error
    try:
        # fstat of the open file, not stat of the path: the checked file is the one read.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {target} is not a regular file")
        if info.st_uid != os.getuid():
            raise KeyFileError(
                f"key file {target} is owned by uid {info.st_uid}, not by you (uid {os.getuid()})"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise KeyFileError(
                f"key file {target} has mode {mode:04o}: others may read it, so it is "
                "refused; key files must be 0600"
            )
        data = os.read(fd, _KEY_FILE_MAX + 1)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(data.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(data) > _KEY_FILE_MAX or len(key) != KEY_BYTES:
        raise KeyFileError(f"key file {target} does not hold a {KEY_BYTES}-byte key in hex")
    return key

