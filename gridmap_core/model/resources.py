"""One resource vocabulary for every backend: parsing and validating what a job asks for.

Values are checked when a :class:`~gridmap_core.model.job.Job` is created, so a typo in
``mem_free`` fails on the submitting host, before anything reaches a scheduler.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gridmap_core.errors import GridMapError

__all__ = ["ResourceError", "Resources", "parse_memory", "parse_runtime"]


class ResourceError(GridMapError, ValueError):
    """A resource request that is malformed, or that a backend cannot honour."""


# Grid Engine's memory specifiers: lower case are powers of 1000, upper case of 1024.
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3,
    "K": 2**10,
    "m": 10**6,
    "M": 2**20,
    "g": 10**9,
    "G": 2**30,
    "t": 10**12,
    "T": 2**40,
}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)\s*$")
_MEMORY_FORMS = (
    "a number of bytes, or a number with a unit K, M, G or T (powers of 1024; "
    "k, m, g, t are powers of 1000), e.g. '512M' or '4G'"
)


@lru_cache(maxsize=256)
def _memory_from_text(text: str) -> int:
    match = _MEMORY_RE.match(text)
    if match is None:
        raise ValueError(text)
    number, unit = match.groups()
    return int(float(number) * _MEMORY_UNITS[unit])


def parse_memory(value: str | int | None, field: str = "memory") -> int | None:
    """Return a memory request in bytes, or None when nothing is requested.

    >>> parse_memory("4G")
    4294967296
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ResourceError(f"{field}={value!r} is not a memory size: use {_MEMORY_FORMS}.")
    if isinstance(value, int):
        if value <= 0:
            raise ResourceError(f"{field}={value!r} must be positive: use {_MEMORY_FORMS}.")
        return value
    if not isinstance(value, str):
        raise ResourceError(
            f"{field}={value!r} ({type(value).__name__}) is not a memory size: use {_MEMORY_FORMS}."
        )
    try:
        size = _memory_from_text(value)
    except ValueError:
        raise ResourceError(
            f"{field}={value!r} is not a memory size: use {_MEMORY_FORMS}."
        ) from None
    if size <= 0:
        raise ResourceError(f"{field}={value!r} must be more than zero bytes.")
    return size


_RUNTIME_FORMS = "seconds (e.g. 90 or '90'), 'MM:SS', 'HH:MM:SS' or a datetime.timedelta"


@lru_cache(maxsize=256)
def _runtime_from_text(text: str) -> int:
    parts = text.strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(text)
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds


def parse_runtime(
    value: str | int | float | datetime.timedelta | None, field: str = "h_rt"
) -> int | None:
    """Return a runtime limit in whole seconds, or None when there is no limit.

    >>> parse_runtime("1:30:00")
    5400
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ResourceError(f"{field}={value!r} is not a runtime: use {_RUNTIME_FORMS}.")
    if isinstance(value, datetime.timedelta):
        seconds = int(value.total_seconds())
    elif isinstance(value, (int, float)):
        seconds = int(value)
    elif isinstance(value, str):
        try:
            seconds = _runtime_from_text(value)
        except ValueError:
            raise ResourceError(
                f"{field}={value!r} is not a runtime: use {_RUNTIME_FORMS}."
            ) from None
    else:
        raise ResourceError(
            f"{field}={value!r} ({type(value).__name__}) is not a runtime: use {_RUNTIME_FORMS}."
        )
    if seconds <= 0:
        raise ResourceError(f"{field}={value!r} must be at least one second.")
    return seconds


def check_count(value: object, field: str, minimum: int) -> int:
    """Return ``value`` as an int when it is a whole number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResourceError(f"{field}={value!r} must be a whole number of at least {minimum}.")
    if value < minimum:
        raise ResourceError(f"{field}={value!r} must be at least {minimum}.")
    return value


def check_names(value: object, field: str) -> tuple[str, ...]:
    """Return a sequence of strings (host names, raw requests) as a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        raise ResourceError(
            f"{field}={value!r} must be a list of strings, not one string: write [{value!r}]."
        )
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ResourceError(f"{field}={value!r} must be a list of strings.")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Resources:
    """What one job asks of a scheduler, in one vocabulary for every backend.

    Memory is in bytes and runtime in seconds; the original strings are kept too so
    a backend can pass the user's own spelling on to a scheduler that understands it.
    Each backend translates these into its native request and refuses, before
    anything is submitted, what it cannot honour.
    """

    mem_free: int | None = None
    h_vmem: int | None = None
    h_rt: int | None = None
    num_slots: int = 1
    par_env: str | None = None
    gpu: int = 0
    queue: str | None = None
    white_list: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    mem_free_text: str | None = None
    h_vmem_text: str | None = None
    h_rt_text: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        mem_free: str | int | None = None,
        h_vmem: str | int | None = None,
        h_rt: str | int | float | datetime.timedelta | None = None,
        num_slots: int = 1,
        par_env: str | None = None,
        gpu: int = 0,
        queue: str | None = None,
        white_list: Sequence[str] | None = None,
        resources: Sequence[str] | None = None,
    ) -> Resources:
        """Validate the original GridMap resource fields; raise :class:`ResourceError`."""
        fields = (mem_free, h_vmem, h_rt, num_slots, par_env, gpu, queue,
                  _names_key(white_list), _names_key(resources))
        # A map makes one Job per input, all asking the same: parse each request once.
        try:
            hash(fields)
        except TypeError:  # a value that cannot be a cache key: parse it every time
            return cls._parse(mem_free, h_vmem, h_rt, num_slots, par_env, gpu, queue,
                              white_list, resources)
        return _parse_cached(*fields)

    @classmethod
    def _parse(cls, mem_free: str | int | None, h_vmem: str | int | None,
               h_rt: str | int | float | datetime.timedelta | None, num_slots: int,
               par_env: str | None, gpu: int, queue: str | None,
               white_list: Sequence[str] | None, resources: Sequence[str] | None,
               ) -> Resources:
        if queue is not None and not isinstance(queue, str):
            raise ResourceError(f"queue={queue!r} must be a queue name (a string) or None.")
        if par_env is not None and not isinstance(par_env, str):
            raise ResourceError(f"par_env={par_env!r} must be a parallel environment name.")
        return cls(
            mem_free=parse_memory(mem_free, "mem_free"),
            h_vmem=parse_memory(h_vmem, "h_vmem"),
            h_rt=parse_runtime(h_rt, "h_rt"),
            num_slots=check_count(num_slots, "num_slots", 1),
            par_env=par_env,
            gpu=check_count(gpu, "gpu", 0),
            queue=queue or None,
            white_list=check_names(white_list, "white_list"),
            extra=check_names(resources, "resources"),
            mem_free_text=None if mem_free is None else str(mem_free),
            h_vmem_text=None if h_vmem is None else str(h_vmem),
            h_rt_text=None if h_rt is None else str(h_rt),
        )


def _names_key(value: Sequence[str] | None) -> Sequence[str] | None:
    """A list of names as a tuple, so that it can be a cache key (parsing makes it one
    anyway); anything else as it is."""
    if isinstance(value, list) and all(type(v) is str for v in value):
        return tuple(value)
    return value


@lru_cache(maxsize=256, typed=True)  # typed: 1 and True are different requests
def _parse_cached(*fields: Any) -> Resources:
    return Resources._parse(*fields)
