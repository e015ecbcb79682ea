"""zdumps/zloads, compatibility with the original's bz2 format, picklability checks."""

from __future__ import annotations

import bz2
import os
import socket
import threading

import cloudpickle
import pytest

from gridmap_core import SerializationError, zdumps, zloads
from gridmap_core.serialization import check_picklable


def test_roundtrip_of_objects_and_lambdas() -> None:
    data = {"a": list(range(1000)), "b": "x" * 10_000}
    assert zloads(zdumps(data)) == data
    offset = 3
    restored = zloads(zdumps(lambda x: x + offset))
    assert restored(1) == 4


def test_compresses_compressible_data_and_keeps_random_data_whole() -> None:
    text = ["same words again"] * 10_000
    assert len(zdumps(text)) < len(cloudpickle.dumps(text)) / 10
    noise = os.urandom(1_000_000)
    packed = zdumps(noise)
    assert len(packed) < len(noise) * 1.01
    assert zloads(packed) == noise


def test_reads_the_original_gridmaps_bz2_format() -> None:
    original = bz2.compress(cloudpickle.dumps({"answer": 42}), 9)
    assert zloads(original) == {"answer": 42}


def test_rejects_foreign_bytes() -> None:
    with pytest.raises(SerializationError, match="neither a gridmap frame"):
        zloads(b"not a frame at all")


def test_check_picklable_names_the_culprit() -> None:
    with socket.socket() as sock, pytest.raises(SerializationError) as info:
        check_picklable([(1,), (2,), (sock,)], "args_list")
    assert "args_list[2]" in str(info.value)
    with pytest.raises(SerializationError, match="lock"):
        check_picklable([(threading.Lock(),)], "args_list")
    check_picklable([(lambda: 1,)], "args_list")  # cloudpickle takes lambdas
