"""runq.policy is pure: no clock, no I/O, no store, fleet or API. Checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import runq.policy

POLICY_DIR = Path(runq.policy.__file__).parent
FORBIDDEN = (
    "time",
    "os",
    "asyncio",
    "httpx",
    "requests",
    "sqlite3",
    "psycopg",
    "runq.store",
    "runq.fleet",
    "runq.api",
)


def imported_modules(source: str, package: str) -> set[str]:
    """Every module `source` imports, absolute, with `from X import Y` giving X and X.Y."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def forbidden_imports(source: str, package: str = "runq.policy") -> list[str]:
    return sorted(
        module
        for module in imported_modules(source, package)
        if any(module == bad or module.startswith(f"{bad}.") for bad in FORBIDDEN)
    )


CHECKER_CASES = [
    pytest.param("import time", ["time"], id="a plain import is caught"),
    pytest.param("import os.path", ["os.path"], id="a submodule import is caught"),
    pytest.param("from time import monotonic", ["time", "time.monotonic"], id="a from import"),
    pytest.param("from runq.store import sqlite", ["runq.store", "runq.store.sqlite"], id="store"),
    pytest.param("from runq import fleet", ["runq.fleet"], id="a package imported by name"),
    pytest.param("from ..api import app", ["runq.api", "runq.api.app"], id="a relative import"),
    pytest.param("from .. import store", ["runq.store"], id="a relative package import"),
    pytest.param("def f():\n    import asyncio\n", ["asyncio"], id="an import inside a function"),
    pytest.param("import timeit\nimport osmosis", [], id="a name that only starts alike passes"),
    pytest.param("from runq.core.job import Job\nimport math", [], id="core and stdlib math pass"),
]


@pytest.mark.parametrize(("source", "caught"), CHECKER_CASES)
def test_the_checker_catches_forbidden_imports(source: str, caught: list[str]) -> None:
    assert forbidden_imports(source) == caught


def package_of(path: Path) -> str:
    """The package a module's relative imports start from."""
    inside = path.parent.relative_to(POLICY_DIR).parts
    return ".".join(["runq", "policy", *inside])


def test_policy_modules_import_nothing_impure() -> None:
    modules = sorted(POLICY_DIR.rglob("*.py"))
    assert modules, f"no policy modules found under {POLICY_DIR}"

    offenders = {
        str(path.relative_to(POLICY_DIR)): bad
        for path in modules
        if (bad := forbidden_imports(path.read_text(encoding="utf-8"), package_of(path)))
    }

    assert offenders == {}
