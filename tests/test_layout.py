"""The package layout keeps its rules: every module imports, no import cycle, and the
product (proxy/, gateway/, ws/, ops/) never imports the offline exchange (sandbox/)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "signing_proxy"
PRODUCT_ROOMS = ("proxy", "gateway", "ws", "ops", "kalshi", "config")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """The package's modules that `name` imports, at any depth of its code."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


# __main__ runs the command line when imported; the CLI tests start it as a process.
@pytest.mark.parametrize("name", sorted(set(MODULES) - {"signing_proxy.__main__"}))
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def test_no_module_uses_relative_imports() -> None:
    # Absolute imports name the room a module comes from; the graph below relies on it.
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert not relative, f"{name} uses a relative import"


def test_no_import_cycle() -> None:
    # A package imports its own modules when it is imported; that edge is not a cycle.
    def edges(name: str) -> set[str]:
        return {t for t in GRAPH[name] if not t.startswith(f"{name}.")}

    state: dict[str, str] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        path.append(name)
        for target in sorted(edges(name)):
            if state.get(target) == "open":
                cycle = [*path[path.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("room", PRODUCT_ROOMS)
def test_the_product_never_imports_the_sandbox(room: str) -> None:
    prefix = f"signing_proxy.{room}"
    for name, targets in GRAPH.items():
        if name == prefix or name.startswith(f"{prefix}."):
            sandbox = sorted(t for t in targets if t.startswith("signing_proxy.sandbox"))
            assert not sandbox, f"{name} imports {sandbox}"


def test_tests_mirror_the_package() -> None:
    # A test folder is named after the room it tests (cli.py's tests sit in cli/),
    # tests/support holds the helpers and tests/docs runs the documentation's examples;
    # a stray folder means a test nobody will find.
    tests = Path(__file__).resolve().parent
    rooms = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    folders = {p.name for p in tests.iterdir() if (p / "__init__.py").exists()}
    assert folders - rooms <= {"cli", "support", "docs"}, folders - rooms
