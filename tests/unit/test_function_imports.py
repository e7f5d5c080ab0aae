"""Imports live at the top of a module. The few inside functions are deliberate (a heavy or
optional library only one path needs, a CLI path that must not load gRPC), and each says why
in a comment in its function before it."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXCLUDED = ("tests/", "bench/", "tools/")


def function_imports(source: str) -> list[tuple[int, bool]]:
    """(line, explained) of each import inside a function: explained when a comment stands on its
    line or between its function's ``def`` and it."""
    lines = source.splitlines()
    found: list[tuple[int, bool]] = []

    def walk(node: ast.AST, function: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            if function is not None and isinstance(child, (ast.Import, ast.ImportFrom)):
                before = lines[function.lineno - 1:child.end_lineno]
                found.append((child.lineno, any("#" in line for line in before)))
            inner = child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            walk(child, inner)

    walk(ast.parse(source), None)
    return found


def test_the_rule_sees_an_unexplained_import():
    source = "def f():\n    import json\n\n\ndef g():\n    # why\n    import json\n"
    assert function_imports(source) == [(2, False), (7, True)]


def test_every_import_inside_a_function_says_why():
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    unexplained = [f"{name}:{line}" for name in files if not name.startswith(EXCLUDED) and "_pb2" not in name
                   for line, explained in function_imports((ROOT / name).read_text()) if not explained]
    assert unexplained == []
