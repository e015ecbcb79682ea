"""zdumps/zloads, compatibility with the original's bz2 format, picklability checks."""

from __future__ import annotations

import bz2
import linecache
import os
import pickle
import socket
import threading
import traceback
from pathlib import Path

import cloudpickle
import pytest

from gridmap_core import SerializationError, zdumps, zloads
from gridmap_core.model.serialization import check_picklable, dumps


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


SCRIPT_SOURCE = '''
def outer(x):
    def inner(y):
        raise ValueError(f"inner {y}")  # inner's line
    return inner(x + 1)  # outer's line
'''


def test_code_pickled_by_value_keeps_its_file_and_source_lines(tmp_path: Path) -> None:
    # A function of a script run as __main__ travels by value. Its traceback on
    # another host names its file and shows its lines, even where that host cannot
    # read the file (gone here once pickled).
    script = tmp_path / "job_script.py"
    script.write_text(SCRIPT_SOURCE)
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(SCRIPT_SOURCE, str(script), "exec"), namespace)
    data = dumps(namespace["outer"])
    script.unlink()
    linecache.clearcache()
    function = pickle.loads(data)
    with pytest.raises(ValueError) as info:
        function(1)
    text = "".join(traceback.format_exception(info.value))
    assert "<dynamic-code>" not in text
    assert f'File "{script}", line 5, in outer' in text
    assert "return inner(x + 1)  # outer's line" in text
    assert f'File "{script}", line 4, in inner' in text
    assert 'raise ValueError(f"inner {y}")  # inner\'s line' in text
