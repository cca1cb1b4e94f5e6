"""Code a newcomer can read: no module over 450 lines, no function over 60 (migrations aside).

Exceptions are listed here with their reason; none is kept today.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "core", "worker", "avlora")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
EXCEPTIONS: dict[str, str] = {}  # "path" or "path:function" -> why it stays longer


def _modules():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_no_module_is_over_450_lines():
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in _modules()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES and str(p.relative_to(ROOT)) not in EXCEPTIONS]
    assert not long, "split these modules by concern: " + ", ".join(long)


def test_no_function_is_over_60_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                where = f"{path.relative_to(ROOT)}:{node.name}"
                if lines > MAX_FUNCTION_LINES and where not in EXCEPTIONS:
                    long.append(f"{where} ({lines} lines)")
    assert not long, "split these functions: " + ", ".join(long)
