"""The package's import graph: no cycle, and every module imports on its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import recommender

PACKAGE = Path(recommender.__file__).parent


def module_names() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports_of(name: str) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (also inside functions)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found: set[str] = set()
    known = set(module_names())
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # ``from package import module`` imports the module
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    # A module's own packages are imported before it whatever it says: not an edge.
    parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in known and m != name} - parents


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = {name: imports_of(name) for name in module_names()}
    assert graph["recommender.cli"], "the graph should see the CLI's imports"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_model_and_index_code_import_no_shell():
    shells = {"recommender.cli", "recommender.api", "recommender.server"}
    for name in module_names():
        if name not in shells | {"recommender"}:
            assert not imports_of(name) & shells, name


def test_training_does_not_import_the_cli():
    for name in module_names():
        if name.startswith("recommender.training"):
            assert "recommender.cli" not in imports_of(name), name


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    script = "import importlib, sys; importlib.import_module(sys.argv[1])"
    for name in module_names():
        result = subprocess.run(
            [sys.executable, "-c", script, name], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{name}:\n{result.stderr[-2000:]}"
