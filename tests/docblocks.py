"""Code blocks of the docs, run by the tests: a block follows a ``<!-- name -->`` marker line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def doc_block(page: str, name: str) -> str:
    """The ```python block right after ``<!-- name -->`` in ``docs/<page>``."""
    text = (ROOT / "docs" / page).read_text()
    m = re.search(rf"<!-- {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S)
    if m is None:
        raise LookupError(f"docs/{page} has no python block marked <!-- {name} -->")
    return m.group(1)


def run_block(page: str, name: str, namespace: dict | None = None) -> dict:
    """Execute the block as a module (dataclasses need one in ``sys.modules``), with ``namespace``'s
    names predefined; return the module's namespace."""
    import sys
    import types

    mod = types.ModuleType(f"docblock_{name.replace('-', '_')}")
    mod.__dict__.update(namespace or {})
    sys.modules[mod.__name__] = mod
    exec(compile(doc_block(page, name), f"docs/{page}:{name}", "exec"), mod.__dict__)
    return mod.__dict__
