"""Calibrate the count rules once for all systems from the reproduction runs' JSON files.

For each held-out statistic (median, mean, geometric mean, trimmed mean) and jump threshold J, count
how many systems the jump rule gets right, and the smallest margin among them; the same for the floor
rule at thresholds D decades above the loss floor (delta^2, or each candidate's own floor, with the
independence bound D_i on its median deflation factor); plot loss vs k for every system with the
decided count marked.

    python experiments/deflation_calibration.py --out runs/deflation_table --plot runs/deflation_loss_vs_k.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sciml.conservation import FloorRule, JumpRule
from sciml.conservation.count import exact_flags


def _ok(r: dict, n: int) -> bool:
    at_least = r.get("at_least", r["system"] == "toda-periodic" and not r.get("involution"))
    return n >= r["expected"] if at_least else n == r["expected"]


def _constancy(r: dict) -> list[float]:
    """Held-out constancy per candidate (older files hold it only for the counted ones; pad with 1)."""
    if all("constancy" in s for s in r["stats"]):
        return [s["constancy"] for s in r["stats"]]
    c = [x["median"] for x in r.get("constancy") or []]
    return c + [1.0] * (len(r["stats"]) - len(c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/deflation_table")
    ap.add_argument("--plot", default=None)
    ap.add_argument("--jumps", nargs="+", type=float, default=[0.5, 1.0, 1.5, 2.0, 3.0])
    ap.add_argument("--decades", nargs="+", type=float, default=[0.5, 0.75, 1.0, 1.25],
                    help="own-floor sweep: D values")
    ap.add_argument("--independence", nargs="+", type=float, default=[1.0, 1.5, 2.0],
                    help="own-floor sweep: D_i values")
    args = ap.parse_args()
    rows = [json.loads(p.read_text()) for p in sorted(Path(args.out).glob("*.json"))]
    print(f"{len(rows)} systems: {', '.join(r['system'] + (f'-N{r[chr(110)]}' if r['n'] else '') for r in rows)}")
    print("| statistic | J (decades) | constancy tol | counted right | smallest margin (dec) |")
    print("|---|---|---|---|---|")
    for stat, J, tol in ([(s, J, None) for s in ("median", "mean", "geomean", "trimmed") for J in args.jumps]
                         + [("median", 1.0, t) for t in (None, 0.01, 0.1, 0.3, 0.5)] + [("mean", 1.0, t) for t in (None, 0.1, 0.3, 0.5)]):
        if True:
            rule = JumpRule(J, constancy_tol=tol or 1.0)
            right, margins = 0, []
            for r in rows:
                losses = [s[stat] for s in r["stats"]]
                dec = rule.decide(losses, complete=len(losses) == r["dim"] - 1 and not r.get("involution"),
                                  cap=r["dim"] // 2 if r.get("involution") else r["dim"] - 1,
                                  constancy=_constancy(r) if tol else None)
                right += _ok(r, dec.n)
                margins.append(dec.margin)
            print(f"| {stat} | {J:g} | {tol if tol else 'none'} | {right}/{len(rows)} | {min(margins):.2f} |")
    print("\n| rule | D (decades above delta^2) | counted right | smallest margin (dec) |")
    print("|---|---|---|---|")
    for D in (0.5, 1.0, 1.5, 2.0):
        right, margins = 0, []
        for r in rows:
            losses = [s["median"] for s in r["stats"]]
            dec = FloorRule(r.get("config", {}).get("floor", 1e-3), D).decide(
                losses, cap=r["dim"] // 2 if r.get("involution") else r["dim"] - 1,
                exact=exact_flags(r["stats"]))
            right += _ok(r, dec.n)
            margins.append(dec.margin)
        print(f"| floor | {D:g} | {right}/{len(rows)} | {min(margins):.2f} |")
    own = [r for r in rows if all("floor_loss" in st for st in r["stats"])]
    if own:
        print(f"\nOwn floors ({len(own)} files with floor_loss): counted right / smallest margin (decades)")
        print("| D \\ D_i | " + " | ".join(f"{Di:g}" for Di in args.independence) + " |")
        print("|---|" + "---|" * len(args.independence))
        for D in args.decades:
            cells = []
            for Di in args.independence:
                right, margins = 0, []
                for r in own:
                    c = r.get("config", {})
                    rule = FloorRule(c.get("floor", 1e-3), D, c.get("floor_exact_decades", 2.0), Di)
                    dec = rule.count(r["stats"], [st["median"] for st in r["stats"]], complete=True,
                                     cap=r["dim"] // 2 if r.get("involution") else r["dim"] - 1)
                    right += _ok(r, dec.n)
                    margins.append(dec.margin)
                cells.append(f"{right}/{len(own)}, {min(margins):.2f}")
            print(f"| {D:g} | " + " | ".join(cells) + " |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for i, r in enumerate(rows):
            losses = [s["median"] for s in r["stats"]]
            dec = JumpRule(1.0).decide(losses, complete=len(losses) == r["dim"] - 1)
            ks = list(range(1, len(losses) + 2))
            ax.semilogy(ks, losses + [1.0], "o-", color=f"C{i % 10}", ms=3,
                        label=f"{r['system']}{'-N' + str(r['n']) if r['n'] else ''}: {dec.n} (theory {r['expected']})")
            ax.semilogy([dec.n], [losses[dec.n - 1]] if dec.n else [1.0], "*", color=f"C{i % 10}", ms=12)
        ax.set_xlabel("k (last point: the virtual candidate, loss 1)")
        ax.set_ylabel("held-out median loss")
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
