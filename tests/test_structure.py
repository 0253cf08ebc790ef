"""The shape of the package that keeps one request path: short functions, one writer of the
journal, uvicorn's internals in one module, and endpoints that are module-level functions."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

import pytest

from mockserver.app import ROUTES, create_app

PACKAGE = Path(__file__).resolve().parent.parent / "mockserver"
MODULES = sorted(PACKAGE.rglob("*.py"))
BENCH = sorted((PACKAGE.parent / "bench").glob("*.py"))
LONGEST = 60


def where(path: Path) -> str:
    """A module's path inside the package: "web/pipeline.py"."""
    return path.relative_to(PACKAGE).as_posix()


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


@pytest.mark.parametrize(
    "path", MODULES + BENCH, ids=lambda p: p.relative_to(PACKAGE.parent).as_posix()
)
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
    writers = {where(path): lines for path in MODULES if (lines := _journal_adds(path))}
    assert list(writers) == ["web/pipeline.py"], writers
    assert len(writers["web/pipeline.py"]) == 1


# One outcome per request (mockserver.record.outcome): the journal's record and coverage's counts
# are each derived from it in one function, called in one place, next to the journal's
# one writer.
ALL_MODULES = MODULES


def _calls_of(name: str) -> list[str]:
    """Where `name(...)` or `<anything>.name(...)` is called: "module: enclosing function"."""
    found = []
    for path in ALL_MODULES:
        parsed = tree(path)
        functions = [
            n for n in ast.walk(parsed) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        for node in ast.walk(parsed):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called != name:
                continue
            inside = [
                f.name
                for f in functions
                if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)
                and f.name != name  # a method of that name calling a namesake
            ]
            found.append(f"{where(path)}: {inside[-1] if inside else '<module>'}")
    return found


def test_the_record_and_the_counts_each_have_one_home() -> None:
    assert _calls_of("RequestRecord") == ["record/journal.py: record_of"]
    assert _calls_of("Tally") == ["record/coverage.py: tally"]
    assert _calls_of("record_of") == _calls_of("tally") == ["web/pipeline.py: record"]
    counting = [
        f"{where(path)}:{node.lineno}"
        for path in ALL_MODULES
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "count"
        and ast.unparse(node.func.value).endswith("counters")
    ]
    assert [place.split(":")[0] for place in counting] == ["web/pipeline.py"]


def test_an_outcome_and_what_is_derived_from_it_are_immutable() -> None:
    import dataclasses

    from mockserver.record import coverage, journal, outcome

    kinds = [
        value
        for module in (outcome, coverage, journal)
        for value in vars(module).values()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == module.__name__
    ]
    names = {kind.__name__ for kind in kinds}
    assert {"Arrival", "Outcome", "ErrorNote", "Tally", "RequestRecord"} <= names
    thawed = [kind.__name__ for kind in kinds if not vars(kind)["__dataclass_params__"].frozen]
    assert thawed == []


def test_no_coroutine_chain_is_walked() -> None:
    """The latency wait ends on the connection's `gone` event, not by cancelling a task
    found waiting in `asyncio.sleep`."""
    walking = {"cr_await", "cr_code", "get_coro", "uncancel"}
    found = [
        f"{where(path)}:{node.lineno} {node.attr}"
        for path in ALL_MODULES
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Attribute) and node.attr in walking
    ]
    assert found == []


OWN = ("self", "cls")


def test_no_private_attribute_of_another_object_is_written() -> None:
    """`x._name = ...` only for the object's own (`self`, `cls`): not a dependency's, as
    proxy mode once wrote Starlette's `request._body`."""
    found = []
    for path in ALL_MODULES:
        for node in ast.walk(tree(path)):
            if not isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if (
                        isinstance(part, ast.Attribute)
                        and part.attr.startswith("_")
                        and not part.attr.startswith("__")
                        and not (isinstance(part.value, ast.Name) and part.value.id in OWN)
                    ):
                        found.append(f"{where(path)}:{node.lineno} {ast.unparse(target)}")
    assert found == []


def test_the_states_of_a_connection() -> None:
    """Every state can be reached from OPEN; an answer given, or a connection gone, is final."""
    from mockserver.web.connection import MOVES, State

    reached, new = {State.OPEN}, {State.OPEN}
    while new:
        new = {after for state in new for after in MOVES[state]} - reached
        reached |= new
    assert reached == set(State)
    final = {state for state in State if not MOVES[state]}
    assert final == {State.ANSWERED, State.CLIENT_LEFT, State.DROPPED, State.CUT}
    assert {state.ending for state in final} == {"answered", "client_disconnected", "dropped"}
    assert all(state.gone for state in final - {State.ANSWERED})


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
                importers.append(where(path))
    assert sorted(set(importers)) == ["web/uvicorn_glue.py"]


@pytest.mark.parametrize("spec", ROUTES, ids=lambda s: f"{s.method} {s.path}")
def test_every_endpoint_is_a_module_level_function(spec: object) -> None:
    endpoint = inspect.unwrap(spec.endpoint)  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(endpoint)
    assert "<locals>" not in endpoint.__qualname__, endpoint.__qualname__


def test_create_app_is_a_short_assembly() -> None:
    source = inspect.getsource(create_app)
    assert len(source.splitlines()) <= 30


# The test-facing API (mockserver.engine.api): each of these is written once, for a mock in
# this process, a mock elsewhere and a session alike. A class picks its transport, its url
# and its api_key, so those are left out.
SHARED = (
    "records",
    "requests",
    "last_request",
    "expect_errors",
    "assert_requested",
    "check",
    "fail_next",
    "coverage",
    "reset",
    "session",
    "api_base",
    "headers",
    "client_options",
)


def _base_name(node: ast.expr) -> str | None:
    """`Harness`, `harness_api.Harness` and `Harness[QueuedFault]` are all `Harness`."""
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else None


def _defines(node: ast.ClassDef | ast.Module) -> set[str]:
    """The names a class body (or a module) binds with def, or with an assignment."""
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(item.name)
        elif isinstance(item, ast.Assign):
            names |= {t.id for t in item.targets if isinstance(t, ast.Name)}
        elif isinstance(item, ast.AnnAssign) and item.value is not None:
            names |= {item.target.id} if isinstance(item.target, ast.Name) else set()
    return names


def shared_definitions(modules: dict[str, ast.Module]) -> dict[str, list[str]]:
    """Where each SHARED name is defined: in the classes of the test-facing API (those that
    define fail_next, and their subclasses, by the names of their bases, across modules);
    and for fail_next, anywhere at all (a module's function, any class)."""
    classes = [
        (module, node)
        for module, parsed in modules.items()
        for node in ast.walk(parsed)
        if isinstance(node, ast.ClassDef)
    ]
    family = {node.name for _, node in classes if "fail_next" in _defines(node)}
    grown = True
    while grown:
        more = {
            node.name
            for _, node in classes
            if node.name not in family and {_base_name(b) for b in node.bases} & family
        }
        family |= more
        grown = bool(more)
    found: dict[str, list[str]] = {name: [] for name in SHARED}
    for module, node in classes:
        if node.name in family or "fail_next" in _defines(node):
            for name in _defines(node) & set(SHARED):
                found[name].append(f"{module}: {node.name}.{name}")
    methods = {id(item) for _, node in classes for item in node.body}
    for module, parsed in modules.items():
        functions = (
            n for n in ast.walk(parsed) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        )
        if any(n.name == "fail_next" and id(n) not in methods for n in functions):
            found["fail_next"].append(f"{module}: a function fail_next")
    return found


def test_the_test_facing_api_is_written_once() -> None:
    modules = {str(p.relative_to(PACKAGE)): tree(p) for p in sorted(PACKAGE.rglob("*.py"))}
    found = shared_definitions(modules)
    assert {name: len(where) for name, where in found.items()} == dict.fromkeys(SHARED, 1), found
    assert {where[0].split(":")[0] for where in found.values()} == {"engine/api.py"}


def test_a_second_definition_is_found() -> None:
    """The check above fails on the shapes a repeat takes: a subclass, a subclass of a
    subclass (in another module, generic), an unrelated class, a module's function."""
    modules = {
        "api.py": ast.parse(
            "class Harness:\n    def fail_next(self): ...\n    def check(self): ...\n"
            "    def reset(self): ...\n"
        ),
        "server.py": ast.parse(
            "import api\nclass Served(api.Harness[int]):\n    def check(self): ...\n"
            "class MockServer(Served):\n    reset = None\n"
            "class Journal:\n    def reset(self): ...\n"  # not of the API: its own reset
        ),
        "other.py": ast.parse(
            "class Elsewhere:\n    def fail_next(self): ...\ndef fail_next(): ...\n"
        ),
    }
    found = shared_definitions(modules)
    assert found["fail_next"] == [
        "api.py: Harness.fail_next",
        "other.py: Elsewhere.fail_next",
        "other.py: a function fail_next",
    ]
    assert found["check"] == ["api.py: Harness.check", "server.py: Served.check"]
    assert found["reset"] == ["api.py: Harness.reset", "server.py: MockServer.reset"]
    assert found["records"] == []


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_table_of_options_is_a_leaf() -> None:
    """Every layer may read its defaults from the table: it imports the standard library and
    its own value kinds only."""
    for name in ("options.py", "argtypes.py"):
        imported = _imported(PACKAGE / name) - {"__future__", "mockserver", "mockserver.argtypes"}
        foreign = {n for n in imported if n.split(".")[0] not in sys.stdlib_module_names}
        assert foreign == set(), (name, foreign)


def test_command_line_arguments_are_declared_in_the_table_only() -> None:
    """No `add_argument` beyond options.py: each option of every command is a row there."""
    adders = {
        where(path)
        for path in MODULES
        for node in ast.walk(tree(path))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
    }
    assert adders == {"options.py"}


# The package's layers, bottom to top. A module may import its own layer and those below it,
# never one above: wherever the import stands (a function, `if TYPE_CHECKING`), since a lazy
# import is still a dependency.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("settings", ("errors", "options", "argtypes", "config", "paths", "redaction")),
    ("contract", ("contract",)),
    ("answers", ("answers",)),
    ("record", ("record",)),
    ("engine", ("engine",)),
    ("web", ("web",)),
    ("dialects", ("dialects",)),
    ("assembly", ("app",)),
    ("harness", ("harness",)),
    ("top", ("cli", "__init__", "__main__")),
)


def layer_of(module: str) -> int:
    """The layer of "mockserver.web.pipeline" (by its package) or "mockserver.config"."""
    part = module.split(".")[1] if "." in module else "__init__"
    for index, (_, names) in enumerate(LAYERS):
        if part in names:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def _dependencies(path: Path) -> set[str]:
    """The mockserver modules `path` imports, "from mockserver.web import admin" included."""
    found = set()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mockserver")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mockserver"):
            module = node.module or ""
            found |= (
                {f"{module}.{a.name}" for a in node.names} if module == "mockserver" else {module}
            )
    return {name for name in found if name.split(".")[-1][:1].islower()}


def layer_violations(modules: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {dependency} "
        f"({LAYERS[layer_of(dependency)][0]})"
        for module, dependencies in modules.items()
        for dependency in dependencies
        if layer_of(dependency) > layer_of(module)
    )


def module_name(path: Path) -> str:
    return "mockserver." + where(path).removesuffix(".py").removesuffix("/__init__").replace(
        "/", "."
    )


def test_every_module_imports_only_its_layer_and_those_below() -> None:
    modules = {module_name(path): _dependencies(path) for path in MODULES}
    assert layer_violations(modules) == []


def test_a_module_importing_upwards_is_caught() -> None:
    modules = {
        "mockserver.record.journal": {"mockserver.web.pipeline"},
        "mockserver.config": {"mockserver.contract.schemas"},
        "mockserver.web.app": {"mockserver.engine.state", "mockserver.errors"},
    }
    assert layer_violations(modules) == [
        "mockserver.config (settings) imports mockserver.contract.schemas (contract)",
        "mockserver.record.journal (record) imports mockserver.web.pipeline (web)",
    ]


ENGINE = ("contract", "answers", "record", "engine", "web")


def test_the_engine_imports_no_dialect() -> None:
    """A dialect is a module of `dialects/` and its data: the engine is handed the dialects by
    the app's assembly, and names none of them."""
    engine = [path for path in MODULES if where(path).split("/")[0] in ENGINE]
    assert len(engine) > 30
    naming = {
        f"{where(path)} imports {name}"
        for path in engine
        for name in _dependencies(path) | _imported(path)
        if name == "mockserver.dialects" or name.startswith("mockserver.dialects.")
    }
    assert naming == set()
    # and the check sees one that does
    assert layer_violations({"mockserver.web.app": {"mockserver.dialects.openai"}}) != []


def test_every_subpackage_is_a_layer() -> None:
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert packages == {name for _, names in LAYERS for name in names if "." not in name} & packages
    assert packages <= {name for _, names in LAYERS for name in names}
