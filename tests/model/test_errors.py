"""Every error gridmap raises has one base, GridMapError, and keeps its builtin one."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import gridmap_core
from gridmap_core import GridMapError

# Raised and caught inside one module, never reaching a caller: no public error.
PRIVATE = {"_BadFile", "Stopped", "BadRequest", "RemoteError"}
PACKAGES = ["gridmap_core", "gridmap_local", "gridmap_sge", "gridmap_slurm",
            "gridmap_slurm_drmaa"]


def modules() -> list[ModuleType]:
    found = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        found.append(package)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            found.append(importlib.import_module(info.name))
    return found


def errors_defined_in(module: ModuleType) -> list[type[BaseException]]:
    return [value for name, value in vars(module).items()
            if inspect.isclass(value) and issubclass(value, BaseException)
            and value.__module__ == module.__name__ and name not in PRIVATE]


def test_every_error_of_every_part_is_a_gridmap_error() -> None:
    errors = [error for module in modules() for error in errors_defined_in(module)]
    assert len(errors) >= 16, errors  # the walk found the parts' errors at all
    outside = [f"{error.__module__}.{error.__qualname__}" for error in errors
               if not issubclass(error, GridMapError)]
    assert outside == [], f"errors without the GridMapError base: {outside}"


@pytest.mark.parametrize(("name", "builtin"), [
    ("ResourceError", ValueError), ("ConfigError", ValueError),
    ("SerializationError", TypeError), ("BackendUnavailableError", ImportError),
    ("PluginLoadError", ImportError), ("UnknownPluginError", LookupError),
])
def test_errors_keep_the_builtin_base_callers_caught(name: str,
                                                     builtin: type[Exception]) -> None:
    error = getattr(gridmap_core, name)
    assert issubclass(error, GridMapError) and issubclass(error, builtin)


def test_one_except_catches_a_bad_request() -> None:
    from gridmap_core import Job

    with pytest.raises(GridMapError, match="mem_free"):
        Job(print, [1], mem_free="lots")
