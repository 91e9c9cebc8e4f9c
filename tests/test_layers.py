"""The layers of docs/architecture.md, enforced on the source: which package under runq may
import which, and no import cycle between packages.

Every import counts for the table, those inside functions too (a lazy import is still a
dependency). For cycles only module-level imports count: a function-level import runs after
both modules are loaded, and one under `if TYPE_CHECKING:` never runs.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import runq

SRC = Path(runq.__file__).parent
ROOT = "runq"  # the package root itself: `from runq import __version__`
ERRORS = "errors"  # runq/errors.py: the exception classes every layer raises
ANY = frozenset(
    {"core", "store", "policy", "models", "bundles", "worker", "fleet", "api", "web", "bench"}
    | {"server"}
)
# The table of docs/architecture.md ("may import"): package -> the runq packages it may import.
# The package root and `runq.errors` may be imported by all.
MAY_IMPORT: Mapping[str, frozenset[str]] = {
    ERRORS: frozenset(),
    "core": frozenset(),
    "store": frozenset({"core"}),
    "policy": frozenset({"core"}),
    "models": frozenset({"core"}),
    "bundles": frozenset({"core"}),
    "worker": frozenset({"core"}),
    "fleet": frozenset({"core", "store", "policy", "models", "bundles"}),
    "api": frozenset({"core", "policy", "fleet"}),  # services, never the store
    "web": frozenset({"core", "api", "fleet"}),
    "bench": frozenset({"core", "policy"}),
    "server": ANY - {"server"},  # the composition root: builds everything, imported by the CLI
    "cli": ANY,
}
# Packages whose imports that run when they are loaded must be the standard library's (or
# runq's own): core is values and parsing, and a worker's cold start is part of the product.
STDLIB_ONLY = {ERRORS: "all", "core": "all", "worker": "module level"}


@dataclass(frozen=True)
class Import:
    module: str  # absolute, e.g. "runq.core.hosts" or "pynvml"
    line: int
    module_level: bool  # runs when the importing module is loaded


def layer_of(module: str) -> str | None:
    """The package of the table that `module` belongs to; None outside runq.

    >>> layer_of("runq.fleet.machine"), layer_of("runq.cli.bench"), layer_of("httpx")
    ('fleet', 'cli', None)
    """
    parts = module.split(".")
    if parts[0] != ROOT:
        return None
    if len(parts) == 1 or parts[1] == "__version__":
        return ROOT
    return parts[1]


def _under_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, package: str, submodules: frozenset[str] = frozenset()) -> list[Import]:
    """Every import in `source`, made absolute from `package` (the importing module's package).

    `from runq import X` names the module runq.X when X is one of runq's `submodules`, else the
    root package (a name defined in runq/__init__.py).
    """
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, module_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if base == ROOT:
                names = {f"{ROOT}.{a.name}" if a.name in submodules else ROOT for a in node.names}
                found.extend(Import(name, node.lineno, module_level) for name in sorted(names))
            else:
                found.append(Import(base, node.lineno, module_level))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            module_level = False
        elif isinstance(node, ast.If) and _under_type_checking(node):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, module_level)
            return
        for inner in ast.iter_child_nodes(node):
            visit(inner, module_level)

    visit(ast.parse(source), True)
    return found


def violation(layer: str, imported: Import) -> str | None:
    """Why `layer` may not make this import, or None when it may."""
    target = layer_of(imported.module)
    if target is None:
        top = imported.module.split(".")[0]
        scope = STDLIB_ONLY.get(layer)
        stdlib = top in sys.stdlib_module_names or top == "__future__"
        if scope is None or stdlib or (scope == "module level" and not imported.module_level):
            return None
        return f"imports {imported.module!r}, not the standard library's"
    if target in (layer, ROOT, ERRORS) or target in MAY_IMPORT[layer]:
        return None
    return f"imports {imported.module!r} ({target} is not in its may-import list)"


def find_cycle(edges: Mapping[str, set[str]]) -> list[str]:
    """One cycle of the directed graph `edges` as [a, b, ..., a], or [] when it has none."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str]:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return []
        path.append(node)
        for target in sorted(edges.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return []

    for start in sorted(edges):
        cycle = visit(start)
        if cycle:
            return cycle
    return []


# --- the checker, checked ------------------------------------------------------------------------

SUBMODULES = frozenset({"core", "fleet", "errors", "web"})


@pytest.mark.parametrize(
    ("source", "package", "found"),
    [
        pytest.param("import os.path", "runq.core", [("os.path", True)], id="a plain import"),
        pytest.param(
            "from runq.fleet.machine import x", "runq", [("runq.fleet.machine", True)], id="from X"
        ),
        pytest.param(
            "from ..store import rows", "runq.api", [("runq.store", True)], id="a relative import"
        ),
        pytest.param(
            "from runq import fleet, __version__",
            "runq.web",
            [("runq", True), ("runq.fleet", True)],
            id="a package by name and a name of the root",
        ),
        pytest.param(
            "def f():\n    import runq.web\n", "runq.api", [("runq.web", False)], id="in a function"
        ),
        pytest.param(
            "if TYPE_CHECKING:\n    from runq.web import x\nelse:\n    import json\n",
            "runq.api",
            [("runq.web", False), ("json", True)],
            id="under TYPE_CHECKING",
        ),
        pytest.param(
            "try:\n    import pynvml\nexcept ImportError:\n    pass\n",
            "runq.core",
            [("pynvml", True)],
            id="a guarded import still runs",
        ),
    ],
)
def test_imports_are_read_with_where_they_run(
    source: str, package: str, found: list[tuple[str, bool]]
) -> None:
    imports = imports_of(source, package, SUBMODULES)

    assert [(i.module, i.module_level) for i in imports] == found


@pytest.mark.parametrize(
    ("layer", "module", "module_level", "allowed"),
    [
        pytest.param("core", "runq.errors", True, True, id="core may raise runq errors"),
        pytest.param("core", "runq.fleet.machine", False, False, id="core may not look up"),
        pytest.param("core", "pynvml", False, False, id="core is stdlib only, lazily too"),
        pytest.param("core", "re", True, True, id="core may use the stdlib"),
        pytest.param("worker", "numpy", False, True, id="a worker may import lazily"),
        pytest.param("worker", "httpx", True, False, id="a worker loads nothing heavy"),
        pytest.param("worker", "runq.store", False, False, id="a worker never reads the store"),
        pytest.param("api", "runq.web.routes", False, False, id="api may not import web"),
        pytest.param("api", "runq.store.base", False, False, id="api goes through services"),
        pytest.param("web", "runq.api.auth", True, True, id="web may import api"),
        pytest.param("fleet", "httpx", True, True, id="fleet may use libraries"),
        pytest.param("server", "runq.cli", False, False, id="nothing but cli imports cli"),
    ],
)
def test_the_table_is_applied(layer: str, module: str, module_level: bool, allowed: bool) -> None:
    assert (violation(layer, Import(module, 1, module_level)) is None) == allowed


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        pytest.param({"a": {"b"}, "b": {"c"}}, [], id="a chain"),
        pytest.param({"a": {"b", "c"}, "b": {"c"}, "c": set()}, [], id="a diamond"),
        pytest.param({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"], id="two packages"),
        pytest.param({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"], id="further on"),
    ],
)
def test_the_cycle_finder(edges: dict[str, set[str]], cycle: list[str]) -> None:
    assert find_cycle(edges) == cycle


# --- the tree ------------------------------------------------------------------------------------


def modules() -> Iterator[tuple[str, str, Path]]:
    """(module, its package, path) of every module of runq."""
    for path in sorted(SRC.rglob("*.py")):
        parts = [ROOT, *path.relative_to(SRC).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
            yield ".".join(parts), ".".join(parts), path
        else:
            yield ".".join(parts), ".".join(parts[:-1]), path


def tree_imports() -> list[tuple[str, str, Import]]:
    """(module, its layer, an import) for every import of every module of runq."""
    submodules = frozenset(p.stem for p in SRC.iterdir() if p.suffix == ".py" or p.is_dir())
    found: list[tuple[str, str, Import]] = []
    for module, package, path in modules():
        layer = layer_of(module)
        assert layer is not None
        source = path.read_text(encoding="utf-8")
        found.extend((module, layer, i) for i in imports_of(source, package, submodules))
    return found


def test_every_package_is_in_the_table() -> None:
    layers = {layer_of(module) for module, _, _ in modules()}

    assert layers - {ROOT} == set(MAY_IMPORT), "a new package: give it a row in the table"


def test_every_import_follows_the_table_of_the_architecture_document() -> None:
    offenders = [
        f"{module}:{imported.line} {why}"
        for module, layer, imported in tree_imports()
        if layer in MAY_IMPORT and (why := violation(layer, imported)) is not None
    ]

    assert offenders == [], "see docs/architecture.md, 'may import':\n" + "\n".join(offenders)


def test_no_import_cycle_between_packages_at_module_level() -> None:
    edges: dict[str, set[str]] = {}
    for _, layer, imported in tree_imports():
        target = layer_of(imported.module)
        if imported.module_level and target not in (None, layer):
            edges.setdefault(layer, set()).add(target)

    assert find_cycle(edges) == []


def module_edges(imports: list[tuple[str, str, Import]], names: set[str]) -> dict[str, set[str]]:
    """Module -> the runq modules it imports."""
    edges: dict[str, set[str]] = {}
    for module, _, imported in imports:
        target = imported.module
        if target not in names or target == module:
            continue
        edges.setdefault(module, set()).add(target)
    return edges


def test_no_import_cycle_between_modules() -> None:
    """Every import counts, those inside functions and under TYPE_CHECKING too: two modules
    that import each other know each other, however late. A part that must call back its
    caller gets a narrow interface or a callable passed in. `from runq.fleet import x` names
    the module runq.fleet.x when there is one."""
    names = {module for module, _, _ in modules()}
    found: list[tuple[str, str, Import]] = []
    for module, package, path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    line = Import(target if target in names else node.module, node.lineno, True)
                    found.append((module, package, line))
            elif isinstance(node, ast.Import):
                found.extend(
                    (module, package, Import(alias.name, node.lineno, True)) for alias in node.names
                )

    assert find_cycle(module_edges(found, names)) == []
