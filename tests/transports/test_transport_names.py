"""The core knows no transport by name: outside gridmap_core/transports/, no module
imports a built-in transport or compares a setting with a transport's name. Each
transport builds its own serve options and doctor's advice through its TransportSpec,
so a third party's transport is served exactly as the built-in ones are."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests import PROJECT_ROOT

CORE = PROJECT_ROOT / "gridmap_core"
TRANSPORTS = CORE / "transports"
NAMES = ("zmq", "filesystem")
MODULES = tuple(f"gridmap_core.transports.{name}" for name in NAMES)
# The one place a transport is named outside transports/: the TRANSPORT setting's
# default, a value the user can change, kept with the core's other settings.
DEFAULT = ("model/core_settings.py", 'DEFAULT_TRANSPORT = "zmq"')


def core_modules() -> list[Path]:
    return sorted(path for path in CORE.rglob("*.py") if TRANSPORTS not in path.parents)


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the string constants that are docstrings (prose may name anything)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                     ast.Constant):
                found.add(id(body[0].value))
    return found


def transport_mentions(source: str) -> list[str]:
    """Where ``source`` imports a built-in transport's module, or uses a transport's
    name (or its module's dotted path) as a value."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {alias.name}" for alias in node.names
                      if alias.name.startswith(MODULES)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.startswith(MODULES) or (module == "gridmap_core.transports" and any(
                    alias.name in NAMES for alias in node.names)):
                found.append(f"line {node.lineno}: from {module} import ...")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings):
            text = node.value
            if text in NAMES or any(module in text for module in MODULES):
                found.append(f"line {node.lineno}: {text!r}")
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    source = ('"""Mentions zmq in prose."""\n'
              "import gridmap_core.transports.zmq\n"
              "from gridmap_core.transports.filesystem import FilesystemTransport\n"
              "from gridmap_core.transports import zmq\n"
              "if name == 'filesystem':\n    pass\n"
              "path = 'gridmap_core.transports.zmq:ZmqTransport'\n"
              "def f():\n    '''zmq'''\n")
    assert len(transport_mentions(source)) == 5


@pytest.mark.parametrize("path", core_modules(), ids=lambda path: str(path.relative_to(CORE)))
def test_no_core_module_outside_transports_names_a_transport(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    if str(path.relative_to(CORE)) == DEFAULT[0]:
        assert source.count(DEFAULT[1]) == 1, f"{DEFAULT[0]} no longer holds {DEFAULT[1]}"
        source = source.replace(DEFAULT[1], "DEFAULT_TRANSPORT = TRANSPORT_DEFAULT")
    mentions = transport_mentions(source)
    assert not mentions, (
        f"{path.relative_to(CORE.parent)} names a transport: {'; '.join(mentions)}. "
        "Give the transport's own behaviour to its TransportSpec (serve_options, advice) "
        "in gridmap_core/transports/ instead.")
