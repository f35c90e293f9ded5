"""Reproduction of the SVD-PINN transfer experiments (Gao, Cheung, Ng, arXiv 2211.08760), reduced budget.

Pre-train a PINN on one family member, then transfer it to other members with every method:
SVD-PINN (svd), full fine-tuning (full), frozen hidden layer (frozen_hidden, the paper's eta = 0),
last layer only (last_layer), training from scratch (scratch); optionally sigma_only.
Records relative L2 vs iteration, trainable parameters and wall time per method; writes a JSON file
(updated after every run, so an interrupted job keeps what it finished) and one plot per target.

The paper's setting is the default: 2 x 300 network, 1000 interior / 500 boundary / 500 initial points
drawn with the radial-uniform ball sampler (its test set is drawn the same way), boundary/initial
weight 100, Adam 1e-3, SGD 1e-2 for the singular values, full batch, 20,000 iterations.

    OMP_NUM_THREADS=1 python experiments/transfer_reproduce.py --family allen_cahn --source 0 \
        --targets 50 --iters-pretrain 3000 --iters 2000 --out runs/repro_ac --json docs/results/transfer_allen_cahn.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from problems.pdes import family_member
from sciml import fit
from sciml.pinn import PINN
from sciml.pinn.report import plot_errors
from sciml.run import config_to_dict, load_config
from sciml.transfer import TRANSFER_STRATEGIES, Transfer, TransferRunConfig

METHODS = ("svd", "full", "frozen_hidden", "last_layer", "scratch")


def base_config(a) -> dict:
    return {
        "problem": {"family": a.family, "value": a.source, "d": a.d},
        "model": {"widths": [a.width, a.width], "activation": a.activation, "input_scale": "none"},
        "sampling": {"sampler": a.sampler, "r_min": a.r_min,
                     "n_interior": 1000, "n_boundary": 500, "n_initial": 500, "n_test": 10000,
                     "resample": a.resample},
        "loss": {"w_residual": 1.0, "w_boundary": 100.0, "w_initial": 100.0},
        "optim": {"iters": a.iters_pretrain, "lr": 1e-3, "decay_rate": a.decay_rate, "decay_steps": a.decay_steps},
        "transfer": {"s_lr": a.s_lr},
        "seed": a.seed, "log_every": a.log_every, "checkpoint_every": 1000,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", default="allen_cahn", choices=("allen_cahn", "linear_parabolic"))
    p.add_argument("--source", type=float, default=0.0, help="family parameter of the pre-training")
    p.add_argument("--targets", type=float, nargs="+", default=[50.0])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--activation", default="tanh")
    p.add_argument("--sampler", default="radial", choices=("radial", "volume"),
                   help="ball sampler for training and test points (the paper: radial)")
    p.add_argument("--r-min", type=float, default=0.0, help="smallest radius of the radial sampler "
                   "(the released linear-parabolic code: 1e-3)")
    p.add_argument("--resample", action="store_true",
                   help="fresh collocation points every step (beyond the paper, which keeps 1000 fixed points)")
    p.add_argument("--decay-rate", type=float, default=1.0,
                   help="lr multiplied by this every --decay-steps (the released script: no decay)")
    p.add_argument("--decay-steps", type=int, default=1000)
    p.add_argument("--iters-pretrain", type=int, default=20000)
    p.add_argument("--iters", type=int, default=20000)
    p.add_argument("--s-lr", type=float, default=1e-2)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pretrained", default=None, help="reuse this pre-training run directory")
    p.add_argument("--out", default="runs/transfer_repro")
    p.add_argument("--json", default=None)
    p.add_argument("--resume", action="store_true",
                   help="continue interrupted runs (the pre-training and each transfer) from their latest checkpoint")
    p.add_argument("--plot-dir", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)
    jpath = Path(a.json) if a.json else out / "summary.json"
    jpath.parent.mkdir(parents=True, exist_ok=True)
    summary = json.loads(jpath.read_text()) if jpath.exists() else {"runs": []}
    cfg = load_config(base_config(a), TransferRunConfig)
    summary["config"] = config_to_dict(cfg)
    summary["threads"] = a.threads

    pre_dir = Path(a.pretrained) if a.pretrained else out / "pretrain"
    if not (pre_dir / "model.pt").exists():
        t0 = time.perf_counter()
        res = fit(PINN, cfg, family_member(a.family, a.source, a.d), out=pre_dir,
                  resume=(pre_dir / "config.toml").exists())
        tr = res.payload
        summary["pretrain"] = {"value": a.source, "iters": a.iters_pretrain, "rel_l2": res.metrics["rel_l2"],
                               "train_seconds": tr.train_seconds, "wall_seconds": time.perf_counter() - t0}
        print(f"pre-trained {tr.problem}: rel L2 {res.metrics['rel_l2']:.4f} in {tr.train_seconds:.0f} s", flush=True)
        jpath.write_text(json.dumps(summary, indent=1))
    pre = PINN.load(pre_dir)
    tcfg = load_config({**base_config(a), "optim": {"iters": a.iters, "lr": 1e-3, "decay_rate": a.decay_rate,
                                                    "decay_steps": a.decay_steps}}, TransferRunConfig)
    done = {(r["target"], r["method"]) for r in summary["runs"]}
    for target in a.targets:
        for m in a.methods:
            if (target, m) in done:
                continue
            strat = TRANSFER_STRATEGIES.resolve(m, seed=a.seed + 1)  # the tables' scratch networks: seed + 1
            t0 = time.perf_counter()
            run_dir = out / f"{a.family}_{target:g}_{m}"
            res = fit(Transfer, tcfg, family_member(a.family, target, a.d), source=pre, strategy=strat, out=run_dir,
                      resume=a.resume and (run_dir / "config.toml").exists())
            tr = res.payload
            h = tr.history
            row = {"target": target, "method": m, "status": res.status.value, "iters": a.iters,
                   "n_trainable": tr.n_trainable, "train_seconds": tr.train_seconds,
                   "wall_seconds": time.perf_counter() - t0, "initial_rel_l2": h[0][1], "final_rel_l2": h[-1][1],
                   "final_rel_l2_sq": h[-1][2], "best_rel_l2": min(e for _, e, _ in h),
                   "steps": [s for s, _, _ in h], "rel_l2": [e for _, e, _ in h]}
            summary["runs"].append(row)
            jpath.write_text(json.dumps(summary, indent=1))
            print(f"{a.family} {a.source:g} -> {target:g} {m:>14}: rel L2 {h[0][1]:.4f} -> {h[-1][1]:.4f} "
                  f"({tr.n_trainable} trainable, {tr.train_seconds:.0f} s)", flush=True)
    plot_dir = Path(a.plot_dir) if a.plot_dir else out
    plot_dir.mkdir(parents=True, exist_ok=True)
    for target in a.targets:
        curves = {r["method"]: (r["steps"], r["rel_l2"]) for r in summary["runs"] if r["target"] == target}
        if curves:
            plot_errors(plot_dir / f"transfer_{a.family}_{target:g}.png", curves,
                        f"{a.family}, d={a.d}: {a.source:g} -> {target:g}")
    print(f"{'target':>8} {'method':>14} {'trainable':>10} {'rel L2 start':>12} {'rel L2 end':>10} {'seconds':>8}")
    for r in summary["runs"]:
        print(f"{r['target']:>8g} {r['method']:>14} {r['n_trainable']:>10} {r['initial_rel_l2']:>12.4f} "
              f"{r['final_rel_l2']:>10.4f} {r['train_seconds']:>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
