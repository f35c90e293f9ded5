"""experiments/bench_deepxde.py without DeepXDE: it must say so and exit 0, writing nothing.

The benchmark itself (DeepXDE side by side) needs the optional ``bench`` extra and minutes of CPU; only
its skip path is in the default suite. ``deepxde`` is hidden (``sys.modules["deepxde"] = None`` makes
``import deepxde`` raise ImportError) so that the skip path is tested whether or not it is installed.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "bench_deepxde.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_deepxde", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_deepxde_main_prints_the_remedy_and_writes_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "deepxde", None)
    mod = _load()
    out = tmp_path / "out.json"
    assert mod.import_deepxde() is None
    assert mod.main(["--dims", "10", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DeepXDE is not installed" in printed and "[bench]" in printed
    assert not out.exists()


def test_without_deepxde_the_script_exits_0():
    code = ("import runpy, sys; sys.modules['deepxde'] = None; "
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "DeepXDE is not installed" in r.stdout
