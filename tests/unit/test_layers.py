"""The rule of dependencies, checked on the source (import-linter checks the rest)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _imports(package: str) -> set[tuple[Path, str]]:
    found: set[tuple[Path, str]] = set()
    for path in (SRC / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update((path, alias.name.split(".")[0]) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add((path, node.module.split(".")[0]))
    return found


def test_the_domain_imports_only_the_standard_library() -> None:
    foreign = {
        (p.name, m)
        for p, m in _imports("domain")
        if m not in sys.stdlib_module_names and m not in {"domain", "__future__"}
    }
    assert foreign == set()


def test_the_application_imports_only_the_domain_and_the_standard_library() -> None:
    foreign = {
        (p.name, m)
        for p, m in _imports("application")
        if m not in sys.stdlib_module_names and m not in {"domain", "application", "__future__"}
    }
    assert foreign == set()


@pytest.mark.parametrize("package", ["domain", "application"])
def test_the_check_sees_imports(package: str) -> None:
    # Guards the two tests above against passing because they read nothing.
    assert len(_imports(package)) > 5


# -- no import cycle between the project's modules ------------------------------------

PACKAGES = ("domain", "application", "adapters", "entrypoints")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_graph() -> dict[str, set[str]]:
    """Each project module → the project modules it imports, at any depth of the file
    (imports inside functions and under TYPE_CHECKING count too)."""
    modules = {
        _module_name(path): path for package in PACKAGES for path in (SRC / package).rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from a.b import c`: c may be a module of package a.b, or a name in it.
                candidates = [f"{node.module}.{alias.name}" for alias in node.names]
                candidates = [c for c in candidates if c in modules] or [node.module]
            else:
                continue
            targets.update(c for c in candidates if c in modules and c != name)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_of_src_is_part_of_an_import_cycle() -> None:
    assert find_cycle(module_graph()) is None


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function() -> None:
    graph = module_graph()
    assert "entrypoints.container" in graph["entrypoints.worker"]  # it reads real imports
    graph["entrypoints.container"] = {*graph["entrypoints.container"], "entrypoints.worker"}
    assert find_cycle(graph) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
