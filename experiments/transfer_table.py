"""Print the reproduction JSON of ``transfer_reproduce.py`` as markdown tables (for docs/pinn.md).

    python experiments/transfer_table.py docs/results/transfer_allen_cahn.json

Runs split over several processes (one method each, their own JSON files) are merged with ``--merge``:
the first file's pre-training record is kept, the runs are concatenated, and ``--plot`` draws the
curves of one target together.

    python experiments/transfer_table.py runs/r/svd.json runs/r/full.json --merge docs/results/x.json --plot x.png
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

MILESTONES = (1000, 5000, 10000, 20000)


def at_step(r: dict, step: int) -> float | None:
    """The logged rel L2 at the last logged step <= ``step`` (None before the first, or past the run)."""
    if step > r["steps"][-1]:
        return None
    vals = [e for s, e in zip(r["steps"], r["rel_l2"]) if s <= step]
    return vals[-1] if vals else None


def table(s: dict) -> None:
    pre = s.get("pretrain", {})
    if pre:
        print(f"Pre-training at {pre['value']:g}: {pre['iters']} Adam iterations, rel L2 {pre['rel_l2']:.4f}.\n")
    print("| target | method | trainable params | rel L2 at start | rel L2 at end | best | (rel L2)^2 at end | "
          "training time (s) | s / iteration |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in s["runs"]:
        print(f"| {r['target']:g} | {r['method']} | {r['n_trainable']:,} | {r['initial_rel_l2']:.4f} | "
              f"{r['final_rel_l2']:.4f} | {r['best_rel_l2']:.4f} | {r['final_rel_l2_sq']:.2e} | "
              f"{r['train_seconds']:.0f} | {r['train_seconds'] / r['iters']:.2f} |")
    print("\n| target | method | " + " | ".join(f"rel L2 at {m // 1000}k" for m in MILESTONES) + " |")
    print("|---|---|" + "---|" * len(MILESTONES))
    for r in s["runs"]:
        cells = [at_step(r, m) for m in MILESTONES]
        print(f"| {r['target']:g} | {r['method']} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells)
              + " |")


def merge(paths: list[str]) -> dict:
    parts = [json.loads(Path(p).read_text()) for p in paths]
    out = {k: v for k, v in parts[0].items() if k != "runs"}
    out["runs"] = [r for s in parts for r in s.get("runs", [])]
    out["merged_from"] = [str(p) for p in paths]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("json", nargs="+")
    ap.add_argument("--merge", default=None, help="write the merged JSON here")
    ap.add_argument("--plot", default=None, help="with --merge: plot every target's curves to this file")
    a = ap.parse_args(argv)
    if not a.merge:
        for p in a.json:
            table(json.loads(Path(p).read_text()))
        return 0
    s = merge(a.json)
    dest = Path(a.merge)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(s, fh, indent=1)
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, dest)  # atomic: a reader never sees half a file
    table(s)
    if a.plot:
        from sciml.pinn.report import plot_errors

        targets = sorted({r["target"] for r in s["runs"]})
        for target in targets:
            curves = {r["method"]: (r["steps"], r["rel_l2"]) for r in s["runs"] if r["target"] == target}
            cfg = s.get("config", {}).get("problem", {})
            out = Path(a.plot) if len(targets) == 1 else Path(a.plot).with_stem(f"{Path(a.plot).stem}_{target:g}")
            plot_errors(out, curves, f"{cfg.get('family', '')}, d={cfg.get('d', '')}: "
                        f"{cfg.get('value', 0):g} -> {target:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
