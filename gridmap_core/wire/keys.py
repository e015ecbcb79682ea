"""The map's keys, and the file that hands them to the runners.

Each map has its own keys (:func:`new_keys`): a random MAC key that signs every
message (:func:`new_key`), and CURVE key pairs that encrypt the zmq transport and
authenticate its peers at the handshake (:class:`CurveKeys`). The monitor writes them
to a file that only its owner can read (:func:`write_key_file`) on a filesystem the
nodes share; the runner gets the file's path, never a key, on its command line, and
reads it with :func:`read_key_file`, which refuses a file others could have read or
planted. A monitor that takes the map over (``gridmap attach``) reads the same file,
and so serves with the same server key pair the waiting runners know.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from gridmap_core.errors import GridMapError

__all__ = ["KEY_BYTES", "CurveKeys", "KeyFileError", "MapKeys", "check_key",
           "new_curve_keys", "new_key", "new_keys", "read_key_file", "write_key_file"]

KEY_BYTES = 32
# The first line of a key file: what it is, and the version of its format.
_MAGIC = "gridmap map keys 2"
# The lines after it, in this order: the MAC key in hex, then the CURVE keys in Z85.
_MAC_NAME = "mac"
_CURVE_NAMES = ("curve-server-public", "curve-server-secret", "curve-client-public",
                "curve-client-secret")
# A CURVE key (32 bytes) in Z85, the encoding ZeroMQ's key options and tools use.
_Z85_KEY = re.compile(rb"[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}")
_HEX_KEY = re.compile(rb"[0-9a-f]{64}")
# A key file is about 350 bytes; anything much longer is not one of ours.
_KEY_FILE_MAX = 1024


class KeyFileError(GridMapError):
    """A key file that cannot be created or read, or that others could read."""


@dataclass(frozen=True, repr=False)
class CurveKeys:
    """A map's CURVE keys, each 40 bytes of Z85: the monitor's server key pair, and
    the one client key pair that all of the map's runners use. The monitor's endpoint
    accepts a connection only from a peer that proves it holds the client secret key,
    and a runner only talks to a server that holds the server secret key."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes

    def __post_init__(self) -> None:
        for name in ("server_public", "server_secret", "client_public", "client_secret"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or not _Z85_KEY.fullmatch(value):
                raise ValueError(f"CurveKeys.{name} must be a CURVE key in Z85 (40 bytes), "
                                 "as zmq.curve_keypair() makes (use new_curve_keys())")

    def __repr__(self) -> str:  # the secret keys never reach a log
        return (f"CurveKeys(server_public={self.server_public!r}, "
                f"client_public={self.client_public!r}, secrets hidden)")


@dataclass(frozen=True, repr=False)
class MapKeys:
    """Everything a map's key file holds: the MAC key and the CURVE keys."""

    mac: bytes
    curve: CurveKeys

    def __post_init__(self) -> None:
        check_key(self.mac)

    def __repr__(self) -> str:
        return f"MapKeys(mac=hidden, curve={self.curve!r})"


def check_key(key: bytes) -> bytes:
    """``key``, if it is a map's MAC key; ValueError if not."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"a map key is {KEY_BYTES} bytes (use new_key())")
    return key


def new_key() -> bytes:
    """A fresh random MAC key of :data:`KEY_BYTES` bytes."""
    return secrets.token_bytes(KEY_BYTES)


def new_curve_keys() -> CurveKeys:
    """Fresh CURVE server and client key pairs, from ZeroMQ's own generator."""
    import zmq  # only the monitor makes keys; a runner reading them needs no pyzmq

    if not zmq.has("curve"):
        raise KeyFileError("this pyzmq was built without CURVE, which gridmap needs to "
                           "encrypt its maps: install pyzmq from its wheels "
                           "(pip install --force-reinstall pyzmq)")
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    return CurveKeys(server_public, server_secret, client_public, client_secret)


def new_keys() -> MapKeys:
    """A new map's keys: a fresh MAC key and fresh CURVE key pairs."""
    return MapKeys(new_key(), new_curve_keys())


def _format(keys: MapKeys) -> bytes:
    curve = keys.curve
    values = (curve.server_public, curve.server_secret, curve.client_public,
              curve.client_secret)
    lines = [_MAGIC.encode("ascii"), f"{_MAC_NAME} {keys.mac.hex()}".encode("ascii")]
    lines += [name.encode("ascii") + b" " + value
              for name, value in zip(_CURVE_NAMES, values, strict=True)]
    return b"\n".join(lines) + b"\n"


def _parse(data: bytes, target: Path) -> MapKeys:
    """The keys of a key file's contents; KeyFileError saying what is wrong if not."""
    def malformed(what: str) -> KeyFileError:
        return KeyFileError(
            f"key file {target} is malformed ({what}); only the monitor writes key files: "
            "if it was edited or cut short, cancel the map and run it again")

    if len(data) > _KEY_FILE_MAX:
        raise malformed(f"over {_KEY_FILE_MAX} bytes")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) == 1 and _HEX_KEY.fullmatch(lines[0].strip()):
        raise KeyFileError(
            f"key file {target} holds only a MAC key: it was written by a gridmap from "
            "before maps were encrypted with CURVE. Let that map finish or cancel it with "
            "the gridmap that started it, then run it again with this one")
    if not lines or lines[0] != _MAGIC.encode("ascii"):
        raise malformed(f"its first line is not {_MAGIC!r}")
    names = (_MAC_NAME, *_CURVE_NAMES)
    if len(lines) != 1 + len(names):
        raise malformed(f"{len(lines)} lines, where it has {1 + len(names)}")
    values: list[bytes] = []
    for number, (line, name) in enumerate(zip(lines[1:], names, strict=True), start=2):
        given, _, value = line.partition(b" ")
        if given != name.encode("ascii"):
            raise malformed(f"line {number} is not the {name!r} line")
        pattern = _HEX_KEY if name == _MAC_NAME else _Z85_KEY
        if not pattern.fullmatch(value):
            encoding = "64 hex digits" if name == _MAC_NAME else "40 characters of Z85"
            raise malformed(f"{name} is not a key of {encoding}")
        values.append(value)
    return MapKeys(bytes.fromhex(values[0].decode("ascii")), CurveKeys(*values[1:]))


def write_key_file(path: str | os.PathLike[str], keys: MapKeys) -> Path:
    """Create ``path`` holding ``keys``, readable and writable by its owner only.

    The file is created exclusively (an existing file or symlink is an error, so
    nobody can have prepared it) with mode 0600 from the start, so it is never
    briefly readable by others; the mode is set again after creation because a umask
    could have taken bits away (0o277 would leave even the owner unable to read).
    """
    if not isinstance(keys, MapKeys):
        raise TypeError("write_key_file takes a MapKeys (use new_keys())")
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
        data = memoryview(_format(keys))
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


def read_key_file(path: str | os.PathLike[str]) -> MapKeys:
    """Read the keys written by :func:`write_key_file`.

    Refuses (:class:`KeyFileError`) a file that is not a regular file, not owned by
    the current user, or readable or writable by group or others: such keys may be
    known to someone else, and messages signed or encrypted with them prove nothing.
    A file that does not hold the keys in the expected form is refused too, with what
    is wrong with it.
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
        chunks: list[bytes] = []
        size = 0
        while size <= _KEY_FILE_MAX:
            chunk = os.read(fd, _KEY_FILE_MAX + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return _parse(b"".join(chunks), target)
