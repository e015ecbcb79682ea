"""Making the modules a job needs importable on the node that runs it.

A pickled function, class or instance names its module; the node imports that
module by name. Installed modules and those beside the job's working directory are
found there as they were here. The others are handled in two ways:

* a module the submitting process imported from a directory on its ``sys.path`` (a
  helper beside a script started from elsewhere, a test module of pytest's rootdir)
  is found on the node through that directory: each task carries the submitting
  process's own ``sys.path`` entries (not its interpreter's), which the runner puts
  in front of its own. The nodes of a cluster share the filesystem, so the module
  imported there is the very file imported here, with its package, its data files
  and its C extensions;
* a module that cannot be imported by name at all (loaded from a file path with
  ``importlib``, or whose directory left ``sys.path``) travels with the job by value
  (``cloudpickle.register_pickle_by_value``), decided when it is first pickled.

Where neither works (a directory the nodes cannot see), the node's error names the
module and what to do.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import logging
import os
import site
import sys
import sysconfig
from collections.abc import Sequence

import cloudpickle

__all__ = ["add_search_path", "explain_missing_module", "search_path", "send_by_value_if_needed"]
logger = logging.getLogger(__name__)

_checked: dict[str, bool] = {}  # module name -> sent by value (for this sys.path)
_checked_path: tuple[str, ...] = ()
_search_path: tuple[tuple[str, ...], str, tuple[str, ...]] | None = None


def _interpreter_directories() -> tuple[str, ...]:
    """Where this interpreter's own modules live: its prefixes (standard library,
    site-packages of a virtual environment or not) and the user's site-packages.
    The node's interpreter has its own, so these never travel."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(path for path in sysconfig.get_paths().values() if path)
    with contextlib.suppress(AttributeError):  # an old virtualenv's site module
        roots.update(site.getsitepackages())
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site:
        roots.add(user_site)
    return tuple(os.path.realpath(root) for root in roots)


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root + os.sep) for root in roots)


def search_path() -> tuple[str, ...]:
    """The submitting process's own ``sys.path`` entries, in order, as absolute
    paths ('' is the current directory): what a task carries to the node."""
    global _search_path
    key = tuple(sys.path)
    cwd = os.getcwd() if "" in key or "." in key else ""
    if _search_path is not None and _search_path[0] == key and _search_path[1] == cwd:
        return _search_path[2]
    interpreter = _interpreter_directories()
    found: list[str] = []
    for entry in key:
        path = os.path.abspath(str(entry) or cwd or ".")
        real = os.path.realpath(path)
        if path not in found and os.path.exists(path) and not _inside(real, interpreter):
            found.append(path)
    _search_path = (key, cwd, tuple(found))
    return _search_path[2]


def add_search_path(entries: Sequence[str]) -> None:
    """On the node: put the submitting process's entries in front of ``sys.path``, in
    their order; those already there stay where they are."""
    missing = [entry for entry in entries if entry not in sys.path]
    sys.path[:0] = missing
    if missing:
        importlib.invalidate_caches()


def _importable_by_name(name: str, module: object) -> bool:
    """Whether importing ``name`` afresh would load ``module``'s file again, through
    the finders of ``sys.meta_path`` (``sys.path``, editable installs, ...)."""
    origin = getattr(module, "__file__", None)
    if not origin:
        return True  # built in, frozen or a namespace package: nothing to send
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None or finder in (importlib.machinery.BuiltinImporter,
                                           importlib.machinery.FrozenImporter):
            continue
        try:
            spec = find_spec(name, None)
        except Exception:  # a finder's failure means it does not know the name
            continue
        if spec is not None:
            return bool(spec.origin) and os.path.realpath(spec.origin) == os.path.realpath(
                origin)
    return False


def send_by_value_if_needed(module_name: str | None) -> None:
    """Have cloudpickle pickle the top-level package of ``module_name`` by value if
    it cannot be imported by name, so the node gets its code with the job. Decided
    once per module (for as long as ``sys.path`` stays the same)."""
    global _checked_path
    if not module_name or module_name == "__main__":
        return
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return
    path = tuple(sys.path)
    if path != _checked_path:
        _checked.clear()
        _checked_path = path
    if top in _checked:
        return
    module = sys.modules.get(top)
    by_value = module is not None and not _importable_by_name(top, module)
    _checked[top] = by_value
    if by_value:
        logger.info("module %s (%s) cannot be imported by name: it travels with the jobs "
                    "by value", top, getattr(module, "__file__", "?"))
        cloudpickle.register_pickle_by_value(module)


def explain_missing_module(error: ModuleNotFoundError, entries: Sequence[str],
                           host: str) -> ModuleNotFoundError:
    """The error a node raises when it cannot import a module a job needs: which
    module, and what to do."""
    name = error.name or str(error)
    unseen = [entry for entry in entries if not os.path.exists(entry)]
    where = (f" These directories of the submitting process's sys.path do not exist "
             f"here: {', '.join(unseen)}." if unseen else "")
    top = name.partition(".")[0]
    return ModuleNotFoundError(
        f"No module named {name!r} on {host}: the job's function or arguments need it, "
        f"and this host cannot import it from its Python or from the submitting "
        f"process's sys.path.{where} Make the module's directory visible to the compute "
        f"nodes at the same path, install it where the nodes' Python finds it, or have "
        f"it travel with the jobs: call cloudpickle.register_pickle_by_value({top}) in "
        f"the submitting process before the map.",
        name=error.name,
    )
