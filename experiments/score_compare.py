"""Reproduction: linear DSM vs NDSM vs NDSM with control variates on an unbalanced Gaussian mixture.

Same data, same network, same number of optimiser steps for every method. Reports per-mode weights
and the largest weight error, off-mode fraction, MMD^2 and sliced W2 to held-out data, wall time, and
the measured variance of the NDSM objective (value and parameter gradient) with and without control
variates on the trained model, also as a function of the time step T/N.

    OMP_NUM_THREADS=1 python experiments/score_compare.py --problem mixture2d --steps 3000 \
        --json docs/score_mixture2d.json --plot docs/score_mixture2d.png
    # full budget (the issue's reproduction): --steps 20000 --n-data 20000 --n-samples 20000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import sciml
from problems.mixtures import MIXTURES
from sciml.metrics import mmd, sliced_wasserstein
from sciml.run import load_config
from sciml.score import NDSM, ControlVariates, PathBank, ScoreConfig, ScoreTraining
from sciml.score.diagnostics import ndsm_variance
from sciml.score.metrics import mode_coverage, mode_weights, weight_error

METHODS = {
    "linear DSM (VP)": {"sde": {"kind": "vp"}, "train": {"objective": "dsm"}},
    "NDSM": {"sde": {"kind": "langevin_gmm"}, "train": {"objective": "ndsm", "control_variates": "none"}},
    "NDSM + CV": {"sde": {"kind": "langevin_gmm"}, "train": {"objective": "ndsm", "control_variates": "learned"}},
}
ABLATION = {
    "NDSM + CV, plain net": {"sde": {"kind": "langevin_gmm"}, "model": {"prior_residual": False},
                             "train": {"objective": "ndsm", "control_variates": "learned"}},
}


def _merge(a: dict, b: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in a.items()}
    for k, v in b.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def variance_table(srun, data, seed, ns=(50, 100, 200, 400, 1000)):
    rows = []
    xn = (data - srun.shift) / srun.scale
    own = srun.objective  # the training objective with its learned coefficients
    bank = PathBank(srun.sde, own.times())
    g = torch.Generator().manual_seed(seed)
    bank.refresh(xn[torch.randperm(xn.shape[0], generator=g)[:1024]], generator=g)
    v = ndsm_variance(own, srun.model, *bank.draw(4096, generator=g), generator=g)
    rows.append({"n_time_steps": own.n_steps, "second_order": own.cv.second_order, "learned": True, **v})
    print(f"   N={own.n_steps:5d} learned coefficients: value var /{v['value_factor']:8.1f}  grad var "
          f"/{v['grad_factor']:6.1f}   mean {v['mean_plain']:9.3f} vs {v['mean_cv']:9.3f} "
          f"(se of diff {v['mean_diff_se']:.3f})", flush=True)
    for n in ns:
        for second in (False, True):
            ob = NDSM(srun.sde, n_steps=n, control_variates=ControlVariates(learn=False, second_order=second))
            bank = PathBank(srun.sde, ob.times())
            g = torch.Generator().manual_seed(seed + n)
            bank.refresh(xn[torch.randperm(xn.shape[0], generator=g)[:1024]], generator=g)
            xp, k = bank.draw(4096, generator=g)
            v = ndsm_variance(ob, srun.model, xp, k, generator=g)
            rows.append({"n_time_steps": n, "second_order": second, **v})
            print(f"   N={n:5d} {'1st+2nd' if second else '1st    '} order: value var /{v['value_factor']:8.1f}  "
                  f"grad var /{v['grad_factor']:6.1f}   mean {v['mean_plain']:9.3f} vs {v['mean_cv']:9.3f} "
                  f"(se of diff {v['mean_diff_se']:.3f})", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", default="mixture2d", choices=tuple(MIXTURES))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--radius", type=float, default=None, help="mixture2d: distance of the modes from the origin")
    ap.add_argument("--std", type=float, default=None, help="mixture2d: mode standard deviation")
    ap.add_argument("--n-data", type=int, default=10000)
    ap.add_argument("--n-samples", type=int, default=10000)
    ap.add_argument("--sample-steps", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--ablation", action="store_true", help="also train NDSM + CV with a plain (non-residual) net")
    ap.add_argument("--no-variance-table", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    geom = {k: v for k, v in (("radius", args.radius), ("std", args.std)) if v is not None}
    prob = MIXTURES[args.problem](**geom)
    methods = {**METHODS, **(ABLATION if args.ablation else {})}
    report = {"problem": args.problem, "geometry": geom, "weights": prob.weights.tolist(), "steps": args.steps, "n_data": args.n_data,
              "n_samples": args.n_samples, "threads": args.threads, "runs": []}
    scatter = {}
    for seed in args.seeds:
        g = torch.Generator().manual_seed(1000 + seed)
        data = prob.sample(args.n_data, generator=g)
        held = prob.sample(args.n_samples, generator=g)
        emp, _ = mode_weights(data, prob.weights, prob.means, prob.covariances)
        print(f"seed {seed}: training data's own mode weights {np.round(emp.numpy(), 4)} "
              f"(error {weight_error(emp, prob.weights):.4f})")
        for name, over in methods.items():
            if over["sde"]["kind"] == "langevin_gmm":
                over = _merge(over, {"sde": {"n_components": prob.n_components}})
            cfg = load_config(_merge({"seed": seed, "train": {"steps": args.steps},
                                      "sample": {"n_steps": args.sample_steps}}, over), ScoreConfig)
            t0 = time.perf_counter()
            res = sciml.fit(ScoreTraining, cfg, data)
            t_train = time.perf_counter() - t0
            srun = res.payload
            t0 = time.perf_counter()
            s = srun.generate(args.n_samples, generator=torch.Generator().manual_seed(seed + 7), show_progress=False)
            t_sample = time.perf_counter() - t0
            w, off = mode_weights(s, prob.weights, prob.means, prob.covariances)
            row = {"method": name, "seed": seed, "status": res.status.value, "train_s": t_train, "sample_s": t_sample,
                   "weights": w.tolist(), "weight_error": weight_error(w, prob.weights), "off_mode": off,
                   "coverage": mode_coverage(w, prob.weights),
                   "mmd": float(mmd(s[:5000], held[:5000])),
                   "sliced_w2": float(sliced_wasserstein(s, held, generator=torch.Generator().manual_seed(0))),
                   "final_minibatch_loss_var": res.metrics.get("loss_var")}
            if srun.gmm is not None:
                row["gmm_weights"] = sorted(srun.gmm.weights.tolist(), reverse=True)
            print(f"  {name:22s} train {t_train:6.1f} s  sample {t_sample:5.1f} s  weights "
                  f"{np.round(w.numpy(), 4)}  max err {row['weight_error']:.4f}  off {off:.4f}  "
                  f"MMD^2 {row['mmd']:.2e}  SW2 {row['sliced_w2']:.4f}", flush=True)
            if name == "NDSM + CV" and not args.no_variance_table and seed == args.seeds[0]:
                print("  measured NDSM objective variance on the trained model (plain / control variates):")
                row["variance_table"] = variance_table(srun, data, seed)
            report["runs"].append(row)
            if seed == args.seeds[0]:
                scatter[name] = s[:3000].numpy()
        scatter["held-out data"] = held[:3000].numpy()
    print("\nsummary (mean over seeds of the largest per-mode weight error):")
    for name in methods:
        errs = [r["weight_error"] for r in report["runs"] if r["method"] == name]
        print(f"  {name:22s} {np.mean(errs):.4f}  (seeds: {', '.join(f'{e:.4f}' for e in errs)})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    if args.plot and prob.dim == 2:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(scatter), figsize=(3.2 * len(scatter), 3.2), sharex=True, sharey=True)
        for ax, (name, pts) in zip(axes, scatter.items()):
            ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
            ax.set_title(name, fontsize=9)
            ax.set_aspect("equal")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
