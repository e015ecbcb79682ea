"""What a message of the runner <-> monitor protocol says about itself: its
:class:`Kind`, its :class:`Header` (compact JSON, never pickle) and the errors that get
a message dropped.

:mod:`gridmap_core.wire.protocol` puts headers on the wire and authenticates them; this
module parses and checks a header's fields, and nothing here reads a payload.
"""

from __future__ import annotations

import enum
import functools
import json
import json.scanner
import math
from typing import Any, NamedTuple

from gridmap_core.errors import GridMapError

__all__ = [
    "FROM_MONITOR",
    "FROM_RUNNER",
    "MAX_HEADER_BYTES",
    "PROTOCOL_VERSION",
    "Forged",
    "Header",
    "Kind",
    "Malformed",
    "Oversized",
    "ProtocolError",
    "WrongMap",
    "is_reply_to",
    "parse_json",
]

PROTOCOL_VERSION = 1
# A header is six short fields; 4 KiB leaves room for a long map id and nothing else.
MAX_HEADER_BYTES = 4096
_HEADER_KEYS = frozenset({"v", "kind", "map", "task", "attempt", "seq", "sent"})


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
