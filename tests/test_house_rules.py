"""The rules of docs/architecture.md that a reader can check mechanically: no function in sciml/ over
80 lines, and no library module importing the problems/ catalogue (only CLI and demo modules may)."""

import ast
from pathlib import Path

SCIML = Path(__file__).resolve().parents[1] / "sciml"


def _modules():
    return sorted(SCIML.rglob("*.py"))


def test_no_function_is_longer_than_80_lines():
    long = [f"{p.relative_to(SCIML)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in _modules() for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, long


def test_the_library_never_imports_the_catalogue():
    bad = []
    for p in _modules():
        if p.name in ("cli.py", "demo.py"):
            continue
        for n in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module or ""] if isinstance(n, ast.ImportFrom) and n.level == 0 else []
            bad += [f"{p.relative_to(SCIML)}:{n.lineno} imports {m}" for m in names if m.split(".")[0] == "problems"]
    assert not bad, bad
