"""Every public name of the original GridMap 0.15.0's ``gridmap`` and ``gridmap.conf``
modules (and of ``gridmap.job``, ``gridmap.data``, ``gridmap.version``) imports, with
the original's meaning: its type, its default, the environment variable that sets it,
and its functions' parameters in the original's order.

The names and values below are the original's, from its source (gridmap/conf.py,
gridmap/__init__.py, gridmap/job.py, gridmap/data.py, gridmap/version.py).
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from tests import PROJECT_ROOT

ROOT = PROJECT_ROOT

# The original's gridmap.conf: name -> (type, default). SMTP_SERVER, ERROR_MAIL_RECIPIENT
# and CREATE_PLOTS depend on the machine and are checked on their own.
CONF_DEFAULTS: dict[str, tuple[type, Any]] = {
    "USE_MEM_FREE": (bool, False),
    "DEFAULT_QUEUE": (str, "all.q"),
    "DEFAULT_TEMP_DIR": (str, "/scratch/"),
    "DEFAULT_PAR_ENV": (str, "smp"),
    "SEND_ERROR_MAIL": (bool, True),
    "ERROR_MAIL_SENDER": (str, "error@gridmap.py"),
    "MAX_TIME_BETWEEN_HEARTBEATS": (int, 90),
    "IDLE_THRESHOLD": (float, 1.0),
    "NUM_RESUBMITS": (int, 3),
    "CHECK_FREQUENCY": (int, 15),
    "HEARTBEAT_FREQUENCY": (int, 10),
}
CONF_NAMES = [*CONF_DEFAULTS, "CREATE_PLOTS", "SMTP_SERVER", "ERROR_MAIL_RECIPIENT",
              "MAX_IDLE_HEARTBEATS", "DRMAA_PRESENT"]
# The original gridmap/__init__.py's __all__, and the other names it defined.
TOP_LEVEL = ["Job", "JobException", "process_jobs", "grid_map", "DRMAANotPresentException",
             "CHECK_FREQUENCY", "CREATE_PLOTS", "DEFAULT_QUEUE", "ERROR_MAIL_RECIPIENT",
             "ERROR_MAIL_SENDER", "HEARTBEAT_FREQUENCY", "IDLE_THRESHOLD",
             "MAX_IDLE_HEARTBEATS", "MAX_TIME_BETWEEN_HEARTBEATS", "NUM_RESUBMITS",
             "SEND_ERROR_MAIL", "SMTP_SERVER", "USE_MEM_FREE", "DEFAULT_TEMP_DIR",
             "__version__", "VERSION"]
# Names of gridmap.job that the original's users import from there.
JOB_MODULE = ["Job", "JobException", "process_jobs", "grid_map", "DRMAANotPresentException",
              "zdumps", "zloads", "DRMAA_PRESENT", "DEFAULT_QUEUE", "DEFAULT_TEMP_DIR",
              "DEFAULT_PAR_ENV", "USE_MEM_FREE", "NUM_RESUBMITS", "HEARTBEAT_FREQUENCY"]

# Prints, as JSON, each conf name's type and value as a fresh process imports them.
READ_CONF = """
import json, gridmap.conf as conf
print(json.dumps({name: [type(getattr(conf, name)).__name__, getattr(conf, name)]
                  for name in %r}))
"""


def fresh_conf(tmp_path: Path, **env: str) -> dict[str, tuple[str, Any]]:
    """gridmap.conf as a new process with only ``env`` set imports it."""
    clean = {key: value for key, value in os.environ.items()
             if key not in CONF_NAMES and not key.startswith("GRIDMAP_")
             and key not in ("MAX_IDLE_TIME", "DRMAA_LIBRARY_PATH")}
    clean.update(PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "xdg"),
                 USER="ann", LOGNAME="ann", **env)
    done = subprocess.run([sys.executable, "-c", READ_CONF % CONF_NAMES], cwd=tmp_path,
                          env=clean, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {name: (kind, value) for name, (kind, value) in json.loads(done.stdout).items()}


def test_conf_defaults_are_the_originals(tmp_path: Path) -> None:
    conf = fresh_conf(tmp_path)
    for name, (kind, default) in CONF_DEFAULTS.items():
        assert conf[name] == (kind.__name__, default), name
    host = socket.gethostname()
    assert conf["SMTP_SERVER"] == ("str", ".".join(host.split(".")[-3:]))
    assert conf["ERROR_MAIL_RECIPIENT"] == ("str", f"ann@{'.'.join(host.split('.')[-2:])}")
    # True, unless matplotlib cannot be imported (then no plots, as the original said).
    assert conf["CREATE_PLOTS"] == ("bool", find_spec("matplotlib") is not None)
    # Whether `import drmaa` would work: here no DRMAA library is named.
    assert conf["DRMAA_PRESENT"] == ("bool", False)
    # Idle heartbeats before a job counts as dead, a whole number as in the original
    # (the limit is now an hour: MAX_IDLE_TIME / HEARTBEAT_FREQUENCY of them).
    assert conf["MAX_IDLE_HEARTBEATS"] == ("int", 360)


def test_conf_reads_the_originals_environment_variables(tmp_path: Path) -> None:
    conf = fresh_conf(tmp_path, USE_MEM_FREE="TRUE", DEFAULT_QUEUE="long.q",
                      DEFAULT_TEMP_DIR="/shared/tmp", DEFAULT_PAR_ENV="mpi",
                      CREATE_PLOTS="False", SEND_ERROR_MAIL="False", SMTP_SERVER="mail.example",
                      ERROR_MAIL_SENDER="me@example.org", ERROR_MAIL_RECIPIENT="you@example.org",
                      MAX_TIME_BETWEEN_HEARTBEATS="120", IDLE_THRESHOLD="2.5",
                      MAX_IDLE_HEARTBEATS="5", NUM_RESUBMITS="1", CHECK_FREQUENCY="30",
                      HEARTBEAT_FREQUENCY="20")
    assert conf == {
        "USE_MEM_FREE": ("bool", True), "DEFAULT_QUEUE": ("str", "long.q"),
        "DEFAULT_TEMP_DIR": ("str", "/shared/tmp"), "DEFAULT_PAR_ENV": ("str", "mpi"),
        "CREATE_PLOTS": ("bool", False), "SEND_ERROR_MAIL": ("bool", False),
        "SMTP_SERVER": ("str", "mail.example"), "ERROR_MAIL_SENDER": ("str", "me@example.org"),
        "ERROR_MAIL_RECIPIENT": ("str", "you@example.org"),
        "MAX_TIME_BETWEEN_HEARTBEATS": ("int", 120), "IDLE_THRESHOLD": ("float", 2.5),
        "MAX_IDLE_HEARTBEATS": ("int", 5), "NUM_RESUBMITS": ("int", 1),
        "CHECK_FREQUENCY": ("int", 30), "HEARTBEAT_FREQUENCY": ("int", 20),
        "DRMAA_PRESENT": ("bool", False),
    }


def test_every_top_level_name_imports() -> None:
    import gridmap

    missing = [name for name in TOP_LEVEL if not hasattr(gridmap, name)]
    assert not missing, missing
    for name in CONF_NAMES:
        if name in TOP_LEVEL:
            assert getattr(gridmap, name) == getattr(gridmap.conf, name), name
    # The submodules an `import gridmap` brought along.
    for module in ("conf", "job", "data", "version"):
        assert getattr(gridmap, module).__name__ == f"gridmap.{module}"
    job_module = gridmap.job
    missing = [name for name in JOB_MODULE if not hasattr(job_module, name)]
    assert not missing, missing
    star: dict[str, Any] = {}
    exec("from gridmap import *", star)
    assert set(TOP_LEVEL) - {"__version__", "VERSION"} <= set(star)


def test_version_is_text_and_a_tuple_of_numbers() -> None:
    import gridmap
    from gridmap.version import VERSION, __version__

    assert isinstance(gridmap.__version__, str) and gridmap.__version__ == __version__
    assert isinstance(VERSION, tuple) and all(isinstance(part, int) for part in VERSION)
    assert gridmap.VERSION == VERSION == tuple(int(p) for p in __version__.split("."))


def test_exceptions_keep_their_kinds() -> None:
    import gridmap

    assert issubclass(gridmap.JobException, Exception)
    # The original raised it when a cluster was required and none could be used.
    assert issubclass(gridmap.DRMAANotPresentException, ImportError)
    with pytest.raises(ImportError, match="require_cluster=True"):
        gridmap.process_jobs([gridmap.Job(abs, [-1])], require_cluster=True)


def test_zdumps_and_zloads_round_trip() -> None:
    from gridmap import zdumps, zloads
    from gridmap.data import zdumps as data_zdumps

    assert data_zdumps is zdumps
    value = {"square": lambda x: x * x, "data": list(range(100))}
    packed = zdumps(value)
    assert isinstance(packed, bytes) and len(packed) < len(repr(value)) * 4
    loaded = zloads(packed)
    assert loaded["data"] == value["data"] and loaded["square"](3) == 9


ORIGINAL_PARAMETERS = {
    "grid_map": ["f", "args_list", "cleanup", "mem_free", "name", "num_slots", "temp_dir",
                 "white_list", "queue", "quiet", "local", "max_processes",
                 "interpreting_shell", "copy_env", "add_env", "project", "validation_level",
                 "os_distribution", "os_minor", "gpu", "h_vmem", "h_rt", "resources",
                 "completion_mail", "require_cluster", "par_env"],
    "process_jobs": ["jobs", "temp_dir", "white_list", "quiet", "max_processes", "local",
                     "require_cluster"],
    "Job": ["f", "args", "kwlist", "cleanup", "mem_free", "name", "num_slots", "queue",
            "interpreting_shell", "copy_env", "add_env", "project", "validation_level",
            "os_distribution", "os_minor", "par_env", "gpu", "h_vmem", "h_rt", "resources"],
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_PARAMETERS))
def test_functions_take_the_originals_parameters_in_its_order(name: str) -> None:
    import gridmap

    target = getattr(gridmap, name)
    signature = inspect.signature(target.__init__ if inspect.isclass(target) else target)
    positional = [p.name for p in signature.parameters.values()
                  if p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"]
    assert positional == ORIGINAL_PARAMETERS[name]


def test_grid_map_takes_the_originals_arguments_by_position(in_tmp: Path) -> None:
    import gridmap

    # Positional up to `project`, as a caller of the original may have written it.
    results = gridmap.grid_map(abs, [-1, -2], True, None, "pos", 1, None, None, None, True,
                               True, 1, None, True, None, "a-project")
    assert results == [1, 2]
