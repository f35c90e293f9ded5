"""Print a markdown table of finished `sciml pinn train/transfer` run folders: rel L2 at chosen steps,
at the end, trainable parameters and training seconds (from each folder's metrics.jsonl and meta.json).

    python experiments/run_dirs_table.py runs/tr50_lm40_* --steps 10,20,40

Steps are metrics.jsonl's 0-based step index (step 10 is logged after 11 optimiser steps); a step past the
run's last logged one prints "-", otherwise the last record at or before it is shown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(folder: Path) -> tuple[dict, list[dict]]:
    meta = json.loads((folder / "meta.json").read_text())
    recs = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return meta, [r for r in recs if "rel_l2" in r]


def at(recs: list[dict], step: int) -> str:
    """rel L2 of the last record logged at or before ``step`` (metrics.jsonl's 0-based step index)."""
    if not recs or step > recs[-1]["step"]:
        return "-"
    done = [r for r in recs if r["step"] <= step]
    return f"{done[-1]['rel_l2']:.2e}" if done else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--steps", default="10,20,40", help="comma-separated step counts")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print("| run | method | trainable | " + " | ".join(f"at {s}" for s in steps) + " | end | status | training s |")
    print("|---|---|---:|" + "---:|" * len(steps) + "---:|---|---:|")
    for f in args.folders:
        if not (f / "metrics.jsonl").exists():
            continue
        meta, recs = rows(f)
        end = f"{recs[-1]['rel_l2']:.2e}" if recs else "-"
        secs = meta.get("train_seconds", recs[-1].get("seconds") if recs else float("nan"))
        print(f"| {f.name} | {meta.get('method', '?')} | {meta.get('n_trainable', 0):,} | "
              + " | ".join(at(recs, s) for s in steps)
              + f" | {end} | {meta.get('status', '?')} | {float(secs):.0f} |")


if __name__ == "__main__":
    main()
