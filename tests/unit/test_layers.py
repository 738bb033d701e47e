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
