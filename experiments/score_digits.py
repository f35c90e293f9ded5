"""Reproduction: linear DSM vs NDSM (+ control variates) on a small, unbalanced set of 8x8 digits.

scikit-learn's digits (no download). By default three classes with proportions 0.8 / 0.15 / 0.05 and
only ~220 training images (mode imbalance + small training set); ``--reflected`` instead trains on all
digits plus mirrored copies of 30% of them (an approximate reflection symmetry). The NDSM forward
process is Langevin dynamics toward a GMM with one component per class fitted to the images (no
labels used). Both use the same small U-Net and step budget. Mode coverage and weights come from a
logistic-regression classifier trained on the real images; MMD^2 is to the training images (the set
is too small for a held-out split with the same class proportions).

    OMP_NUM_THREADS=1 python experiments/score_digits.py --steps 2000 --grid docs/score_digits.png \
        --json docs/score_digits.json
    # full budget: --steps 20000 --n-samples 5000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import sciml
from problems.mixtures import digits, digits_reflected
from sciml.metrics import mmd
from sciml.run import load_config
from sciml.score import ScoreConfig, ScoreTraining
from sciml.score.metrics import classifier_weights, fit_classifier, mode_coverage, weight_error


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--class-weights", type=float, nargs="+", default=[0.8, 0.15, 0.05])
    ap.add_argument("--n-train", type=int, default=220)
    ap.add_argument("--reflected", action="store_true")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--sample-steps", type=int, default=300)
    ap.add_argument("--arch", default="unet", choices=["unet", "mlp"], help="mlp treats images as 64-d vectors")
    ap.add_argument("--base-channels", type=int, default=32)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--reg-covar", type=float, default=0.05, help="GMM covariance floor (sets the drift stiffness)")
    ap.add_argument("--covariance", default="full", choices=["full", "diag"], help="GMM covariance type")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", nargs="+", default=["dsm", "ndsm_cv"], choices=["dsm", "ndsm", "ndsm_cv"])
    ap.add_argument("--json", default=None)
    ap.add_argument("--grid", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.reflected:
        x, y = digits_reflected(seed=args.seed)
        classes, true_w = list(range(10)), None
    else:
        x, y = digits(classes=args.classes, class_weights=args.class_weights, n=args.n_train, seed=args.seed,
                      return_labels=True)
        classes = args.classes
        true_w = np.asarray(args.class_weights) / np.sum(args.class_weights)
    real, real_y = digits(classes=classes, return_labels=True)
    clf = fit_classifier(real, real_y)
    lab_idx = {c: i for i, c in enumerate(classes)}
    emp = np.bincount([lab_idx[int(v)] for v in y], minlength=len(classes)) / len(y)
    print(f"training images: {x.shape[0]}, class proportions {np.round(emp, 3)}; classifier accuracy on the "
          f"real images {clf.score(real.reshape(len(real), -1).numpy(), real_y.numpy()):.3f}")
    common = {"seed": args.seed, "model": {"arch": args.arch, "base_channels": args.base_channels, "width": args.width},
              "train": {"steps": args.steps, "batch_size": args.batch_size, "bank_paths": 512},
              "sample": {"n_steps": args.sample_steps, "batch_size": 1000}}
    methods = {
        "dsm": ("linear DSM (VP)", {"sde": {"kind": "vp"}, "train": {"objective": "dsm"}}),
        "ndsm": ("NDSM", {"sde": {"kind": "langevin_gmm", "n_components": len(classes), "reg_covar": args.reg_covar, "covariance": args.covariance},
                          "train": {"objective": "ndsm", "control_variates": "none"}}),
        "ndsm_cv": ("NDSM + CV", {"sde": {"kind": "langevin_gmm", "n_components": len(classes),
                                          "reg_covar": args.reg_covar, "covariance": args.covariance},
                                  "train": {"objective": "ndsm", "control_variates": "learned"}}),
    }
    rows, grids = [], {}
    for key in args.methods:
        name, over = methods[key]
        cfg_d = {k: ({**v, **over.get(k, {})} if isinstance(v, dict) else v) for k, v in common.items()}
        cfg_d["sde"] = over["sde"]
        cfg = load_config(cfg_d, ScoreConfig)
        t0 = time.perf_counter()
        res = sciml.fit(ScoreTraining, cfg, x)
        t_train = time.perf_counter() - t0
        srun = res.payload
        t0 = time.perf_counter()
        s = srun.generate(args.n_samples, generator=torch.Generator().manual_seed(args.seed + 3), show_progress=False)
        t_sample = time.perf_counter() - t0
        s = s.clamp(-1, 1)
        w = classifier_weights(s, clf, 10)[classes] if classes == list(range(10)) else \
            classifier_weights(s, clf, max(classes) + 1)[classes]
        row = {"method": name, "status": res.status.value, "train_s": t_train, "sample_s": t_sample,
               "class_weights": w.tolist(), "mmd_to_train": float(mmd(s.reshape(len(s), -1), x.reshape(len(x), -1))),
               "final_loss": res.metrics.get("loss")}
        ref = true_w if true_w is not None else emp
        if srun.gmm is not None:
            gw = srun.gmm.weights
            row["gmm_weights"] = gw.tolist()
            print(f"  fitted GMM weights {np.round(gw.cpu().numpy(), 3)}")
        row["weight_error"] = weight_error(w, ref)
        row["coverage"] = mode_coverage(w, ref)
        rows.append(row)
        grids[name] = s[:64]
        print(f"  {name:16s} train {t_train:6.1f} s  sample {t_sample:5.1f} s  class weights {np.round(w.numpy(), 3)}  "
              f"max err {row['weight_error']:.3f}  covered {row['coverage']}/{len(classes)}  "
              f"MMD^2 to the training images {row['mmd_to_train']:.3e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"classes": classes, "target_weights": None if true_w is None
                                               else true_w.tolist(), "n_train": int(x.shape[0]),
                                               "steps": args.steps, "threads": args.threads, "runs": rows}, indent=1))
        print(f"wrote {args.json}")
    if args.grid:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = {"training images": x[:64], **grids}
        fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.5))
        for ax, (name, imgs) in zip(np.atleast_1d(axes), panels.items()):
            tile = imgs[:64, 0].reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64).numpy()
            ax.imshow(tile, cmap="gray_r", vmin=-1, vmax=1)
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(args.grid, dpi=110)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
