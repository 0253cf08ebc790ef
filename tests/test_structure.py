"""The shape of the package that keeps one request path: short functions, one writer of the
journal, uvicorn's internals in one module, and endpoints that are module-level functions."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from mockserver.app import create_app
from mockserver.routes import ROUTES

PACKAGE = Path(__file__).resolve().parent.parent / "mockserver"
MODULES = sorted(PACKAGE.glob("*.py"))
LONGEST = 60


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_function_is_longer_than_about_sixty_lines(path: Path) -> None:
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > LONGEST
    ]
    assert long == []


def _journal_adds(path: Path) -> list[int]:
    """Lines that call `journal.add(...)` or `<anything>.journal.add(...)`."""

    def is_journal(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id == "journal") or (
            isinstance(node, ast.Attribute) and node.attr == "journal"
        )

    return [
        node.lineno
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add"
        and is_journal(node.func.value)
    ]


def test_one_place_writes_the_journal() -> None:
    writers = {path.name: lines for path in MODULES if (lines := _journal_adds(path))}
    assert list(writers) == ["pipeline.py"], writers
    assert len(writers["pipeline.py"]) == 1


def test_only_serving_imports_uvicorn() -> None:
    importers = []
    for path in MODULES:
        for node in ast.walk(tree(path)):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name == "uvicorn" or name.startswith("uvicorn.") for name in names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["serving.py"]


@pytest.mark.parametrize("spec", ROUTES, ids=lambda s: f"{s.method} {s.path}")
def test_every_endpoint_is_a_module_level_function(spec: object) -> None:
    endpoint = inspect.unwrap(spec.endpoint)  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(endpoint)
    assert "<locals>" not in endpoint.__qualname__, endpoint.__qualname__


def test_create_app_is_a_short_assembly() -> None:
    source = inspect.getsource(create_app)
    assert len(source.splitlines()) <= 30
