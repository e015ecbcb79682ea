"""The map's key, and the file that hands it to the runners.

Each map has its own random key (:func:`new_key`). The monitor writes it to a file that
only its owner can read (:func:`write_key_file`) on a filesystem the nodes share; the
runner gets the file's path, never the key, on its command line, and reads it with
:func:`read_key_file`, which refuses a file others could have read or planted.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from gridmap_core.errors import GridMapError

__all__ = ["KEY_BYTES", "KeyFileError", "check_key", "new_key", "read_key_file",
           "write_key_file"]

KEY_BYTES = 32
# A key file holds the key in hex and a newline; anything longer is not ours.
_KEY_FILE_MAX = 256


class KeyFileError(GridMapError):
    """A key file that cannot be created or read, or that others could read."""


def check_key(key: bytes) -> bytes:
    """``key``, if it is a map key; ValueError if not."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"a map key is {KEY_BYTES} bytes (use new_key())")
    return key


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
    check_key(key)
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

