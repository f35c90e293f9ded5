"""``sciml discover TRAJ.h5 --out DIR``: count and learn conserved quantities from trajectories."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

__all__ = ["register", "cmd_discover", "table_lines"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..cli import add_training_args

    p = subparsers.add_parser(
        "discover", help="count the conserved quantities of trajectories by neural deflation",
        description="Learn H_1, H_2, ... one at a time, each conserved along the trajectories and "
                    "functionally independent of the earlier ones; count those whose held-out loss "
                    "sits at the loss floor (or, rule = 'jump', where the losses jump). Writes OUT/summary.json, "
                    "OUT/loss_vs_k.png, OUT/results.h5, OUT/H*.pt; --resume continues a stopped run from its "
                    "latest checkpoint.")
    p.add_argument("traj", help="trajectory HDF5 file (dataset 'trajectories' (n, T, d), 't' or attr 'dt')")
    p.add_argument("--max-laws", type=int, default=None, help="candidates to train (default d-1, or N+1 "
                   "with --involution); config key max_laws")
    p.add_argument("--involution", action="store_true", help="count integrals in involution (at most N)")
    p.add_argument("--steps", type=int, default=None,
                   help="Adam steps of the cosine decay per candidate (with patience the fewest); config key steps")
    p.add_argument("--config", default=None, help="TOML file with DiscoveryConfig keys (docs/conservation.md)")
    p.add_argument("--json", action="store_true", help="print the JSON summary on stdout (the report on stderr)")
    add_training_args(p, out_required=True)
    p.set_defaults(func=cmd_discover, single_process="the candidates are trained one after another, each "
                   "deflated by the ones before, on a trajectory set one process holds")


def cmd_discover(args: argparse.Namespace) -> int:
    from .. import fit
    from ..cli import config_overrides, fit_options, report
    from ..dynamics import load_trajectories
    from ..run import load_config
    from . import Deflation, DiscoveryConfig

    traj = load_trajectories(args.traj)
    over = config_overrides(args, max_laws=args.max_laws, steps=args.steps,
                            involution=True if args.involution else None)
    cfg = load_config(args.config or {}, DiscoveryConfig, overrides=over)
    res = fit(Deflation, cfg, traj, **fit_options(args))
    disc = res.payload
    lines = [f"{args.traj}: state dim {traj.dim}, {traj.n_trajectories} trajectories x {traj.n_times} samples"]
    if disc is not None:
        lines += table_lines(disc)
    if not args.json:
        return report(res, "discover", lines)
    if disc is not None:
        print(json.dumps(disc.summary(), indent=1, default=str))
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the JSON only
        return report(res, "discover", lines)


def table_lines(disc: Any) -> list[str]:
    """The candidates' table (held-out losses, statistics, start; thresholds, deflation factors and what
    counted for the floor rule, jumps for the jump rule), the count, and its warnings."""
    d, cfg = disc.decision, disc.config
    if d is None:
        return ["no candidate finished"]
    floor = d.thresholds is not None
    out = [f"k   {'held-out ' + cfg.statistic:<22} median loss  value spread  constancy  start              "
           + ("threshold  deflation  counted" if floor else "jump to next (decades)")]
    counted = set(d.counted_indices)
    for i, f in enumerate(disc.fits):
        last = "  <- count" if i + 1 == disc.n_conserved else ""
        tail = (f"{d.thresholds[i]:<10.2e} {f.stats.get('deflation', float('nan')):<10.2f} "
                f"{'yes' if f.index in counted else 'no'}") if floor else f"{d.gaps[i]:+.2f}{last}"
        out.append(f"{f.index:<3} {f.loss:<22.3e} {f.stats['median']:<12.3e} {f.stats['value_spread']:<13.3e} "
                   f"{f.stats['constancy']:<10.2e} {f.stats.get('start', '-'):<18} {tail}")
    if floor:
        out.append(f"rule: {d.rule}")
    out.append(disc.message)
    loose = [f.index for f in disc.fits if f.index in counted and f.stats["constancy"] >= cfg.constancy_tol]
    if loose:
        out.append(f"warning: counted H_{loose} vary along held-out trajectories (relative spread >= "
                   f"{cfg.constancy_tol}): possibly staircase solutions; check them, or set veto = true")
    if d.n < d.n_jump and d.constancy is not None:
        out.append(f"note: the jump suggests {d.n_jump}, but H_{d.n + 1} is not constant along held-out "
                   f"trajectories (spread {d.constancy[d.n]:.2f} >= {cfg.constancy_tol}): counted {d.n}")
    if d.ambiguous:
        out.append("warning: the count is not decisive (margin <= 0); train longer or give more trajectories")
    if d.capped:
        out.append(f"note: every candidate looked conserved; the count is at least {disc.n_conserved} "
                   "(raise --max-laws)")
    if disc.run_dir is not None:
        out.append(f"wrote {disc.run_dir}/summary.json, loss_vs_k.png, results.h5")
    return out
