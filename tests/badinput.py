"""The harness of the malformed-input corpus (tests/test_bad_input_*.py).

Each case runs one ``sciml`` command in-process and checks the error policy of
:mod:`sciml.run.errors`: exit status 2, exactly one line on stderr that starts with ``error:`` and
names the culprit, no traceback, and nothing left behind in the working folder (no run directory,
no output file, no ``.tmp``).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from sciml.cli import main

__all__ = ["Case", "run_cli", "check_case", "snapshot"]


@dataclass(frozen=True)
class Case:
    """One malformed input.

    Attributes:
        id: short name, for the test id.
        argv: the command line after ``sciml`` (``{tmp}`` is replaced by the case's folder, ``{data}``
            by the shared fixture folder of prepared files).
        names: text the one-line message must contain (the option, key or file, in lower case).
        cls: the class of bad input this case belongs to (for the corpus' coverage check).
    """

    id: str
    argv: tuple[str, ...]
    names: str
    cls: str = ""


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``sciml ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse errors
            code = e.code if isinstance(e.code, int) else 1
    return int(code or 0), out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> set[str]:
    """Every path under ``folder`` (relative), to see what a command left behind."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def check_case(case: Case, tmp: Path, data: Path) -> None:
    """Run ``case`` in ``tmp`` and assert the error policy (see the module docstring)."""
    argv = [a.replace("{tmp}", str(tmp)).replace("{data}", str(data)) for a in case.argv]
    before, data_before = snapshot(tmp), snapshot(data)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        code, out, err = run_cli(argv)
    finally:
        os.chdir(cwd)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, f"{case.id}: exit {code}, stderr: {err!r}"
    assert "Traceback" not in err, f"{case.id}: traceback: {err}"
    assert len(lines) == 1, f"{case.id}: expected one line on stderr, got {lines!r}"
    assert lines[0].startswith(("error:", "sciml")), f"{case.id}: {lines[0]!r}"
    assert case.names.lower() in lines[0].lower(), f"{case.id}: {lines[0]!r} does not name {case.names!r}"
    left = snapshot(tmp) - before
    assert not left, f"{case.id}: left behind {sorted(left)}"
    assert snapshot(data) == data_before, f"{case.id}: changed the shared data folder"
