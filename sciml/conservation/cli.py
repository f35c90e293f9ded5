"""``sciml discover TRAJ.h5``: count and learn conserved quantities from trajectories."""

from __future__ import annotations

import argparse
import json

__all__ = ["register", "cmd_discover"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..cli import add_common

    p = subparsers.add_parser(
        "discover", help="count the conserved quantities of trajectories by neural deflation",
        description="Learn H_1, H_2, ... one at a time, each conserved along the trajectories and "
                    "functionally independent of the earlier ones; count those whose held-out loss "
                    "sits at the loss floor (or, rule = 'jump', where the losses jump). Writes OUT/summary.json, OUT/loss_vs_k.png, OUT/results.h5, OUT/H*.pt.")
    p.add_argument("traj", help="trajectory HDF5 file (dataset 'trajectories' (n, T, d), 't' or attr 'dt')")
    p.add_argument("--max-laws", type=int, default=None, help="candidates to train (default d-1, or N+1 "
                   "with --involution)")
    p.add_argument("--involution", action="store_true", help="count integrals in involution (at most N)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps per candidate")
    p.add_argument("--config", default=None, help="TOML file with DiscoveryConfig keys")
    p.add_argument("--out", default="runs/discover", help="run directory")
    p.add_argument("--json", action="store_true", help="print the JSON summary on stdout")
    add_common(p)
    p.set_defaults(func=cmd_discover, single_process="the candidates are trained one after another, each "
                   "deflated by the ones before, on a trajectory set one process holds")


def cmd_discover(args: argparse.Namespace) -> int:
    import torch

    from ..dynamics import load_trajectories
    from ..run import load_config, resolve_device
    from . import DiscoveryConfig, discover

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    traj = load_trajectories(args.traj)
    overrides = {k: v for k, v in (("max_laws", args.max_laws), ("steps", args.steps), ("seed", args.seed))
                 if v is not None}
    if args.involution:
        overrides["involution"] = True
    cfg = load_config(args.config or {}, DiscoveryConfig, overrides=overrides)
    res = discover(traj, cfg, device=device, out=args.out, verbose=not args.json)
    summ = res.summary()
    if args.json:
        print(json.dumps(summ, indent=1, default=str))
    else:
        print(f"{args.traj}: state dim {traj.dim}, {traj.n_trajectories} trajectories x {traj.n_times} samples")
        floor = cfg.rule == "floor"
        print(f"  k   {'held-out ' + cfg.statistic:<22} median loss  value spread  constancy  start              "
              + ("threshold  deflation  counted" if floor else "jump to next (decades)"))
        thr = list(res.decision.thresholds or []) if res.decision else []
        gaps = res.decision.gaps if res.decision else []
        counted = set(res.decision.counted_indices) if res.decision else set()
        for i, f in enumerate(res.fits):
            last = "  <- count" if i + 1 == res.n_conserved else ""
            tail = (f"{thr[i]:<10.2e} {f.stats.get('deflation', float('nan')):<10.2f} "
                    f"{'yes' if f.index in counted else 'no'}") if floor else f"{gaps[i]:+.2f}{last}"
            print(f"  {f.index:<3} {f.loss:<22.3e} {f.stats['median']:<12.3e} {f.stats['value_spread']:<13.3e} "
                  f"{f.stats['constancy']:<10.2e} {f.stats.get('start', '-'):<18} {tail}")
        if floor and res.decision is not None:
            print(f"rule: {res.decision.rule}")
        print(res.message)
        loose = [f.index for f in res.fits if f.index in counted and f.stats["constancy"] >= cfg.constancy_tol]
        if loose:
            print(f"warning: counted H_{loose} vary along held-out trajectories (relative spread >= "
                  f"{cfg.constancy_tol}): possibly staircase solutions; check them, or set veto = true")
        if res.decision is not None and res.decision.n < res.decision.n_jump:
            print(f"note: the jump suggests {res.decision.n_jump}, but H_{res.decision.n + 1} is not constant along "
                  f"held-out trajectories (spread {res.decision.constancy[res.decision.n]:.2f} >= "
                  f"{cfg.constancy_tol}): counted {res.decision.n}")
        if res.decision is not None and res.decision.ambiguous:
            print("warning: the count is not decisive (margin <= 0); train longer or give more trajectories")
        if res.decision is not None and res.decision.capped:
            print(f"note: every candidate looked conserved; the count is at least {res.n_conserved} "
                  f"(raise --max-laws)")
        print(f"wrote {res.run_dir}/summary.json, loss_vs_k.png, results.h5")
    return 0 if res.status.value == "success" else 1
