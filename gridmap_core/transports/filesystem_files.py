"""The filesystem transport's message files: their format, atomic writing, checked reading."""

from __future__ import annotations

import io
import os
import re
import stat
import struct
from collections.abc import Sequence
from pathlib import Path

from gridmap_core.transports import Frames, TransportError
from gridmap_core.wire.protocol import MAX_HEADER_BYTES

__all__ = ["MESSAGE_NAME", "SLACK", "private_directory", "read_message", "write_message"]

_MAGIC = b"GMF1"
_PREFIX = struct.Struct("!4sI")
_MAX_FRAMES = 16
# Room beyond the payload for the header, the MAC and the file's own prefix.
SLACK = MAX_HEADER_BYTES + 4096
# CLIENT.N.msg: a request's name, and its reply's.
MESSAGE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}\.[0-9]{1,20}\.msg$")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


# Private: it never leaves the transport, whose two sides catch it and drop the file.
class _BadFile(Exception):
    """A message file that is not one: dropped (deleted) by whoever finds it."""


def _write_all(fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    views = [view for view in views if len(view)]
    while views:
        # writev: one system call for a small message, no joined copy for a large one
        written = os.writev(fd, views[:512])
        while written:
            if written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][written:]
                written = 0


def write_message(directory: Path, name: str, frames: Frames, fsync: bool) -> None:
    """Write ``frames`` to ``directory/name`` atomically: a temporary name, then rename."""
    lengths = [memoryview(frame).nbytes for frame in frames]
    if len(lengths) > _MAX_FRAMES:
        raise TransportError(f"{len(lengths)} frames, at most {_MAX_FRAMES}")
    prefix = _PREFIX.pack(_MAGIC, len(lengths)) + struct.pack(f"!{len(lengths)}Q", *lengths)
    temporary = directory / f".{name}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
    try:
        _write_all(fd, [prefix, *frames])
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.rename(temporary, directory / name)


def read_message(path: Path, limit: int) -> list[memoryview]:
    """The frames of a message file, as views of one buffer. Raises FileNotFoundError
    if there is no such file, and :class:`_BadFile` if it is not a message of ours."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _BadFile("not a regular file")
        size = info.st_size
        # Judged from the size alone: an oversized file is never read.
        if size > limit:
            raise _BadFile(f"{size} bytes, more than the limit of {limit}")
        buffer = bytearray(size)
        view = memoryview(buffer)
        with io.FileIO(fd, closefd=False) as reader:
            done = 0
            while done < size:
                count = reader.readinto(view[done:])
                if not count:
                    raise _BadFile("shorter than its size")
                done += count
    finally:
        os.close(fd)
    if size < _PREFIX.size:
        raise _BadFile("too short")
    magic, count = _PREFIX.unpack_from(view)
    lengths_end = _PREFIX.size + 8 * count
    if magic != _MAGIC or count > _MAX_FRAMES or lengths_end > size:
        raise _BadFile("not a gridmap message file")
    lengths = struct.unpack_from(f"!{count}Q", view, _PREFIX.size)
    if lengths_end + sum(lengths) != size:
        raise _BadFile("frame lengths do not add up to the file's size")
    frames = []
    start = lengths_end
    for length in lengths:
        frames.append(view[start:start + length])
        start += length
    return frames


def private_directory(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    # mkdir's mode passes through the umask; set it exactly.
    os.chmod(path, 0o700)
    return path
