"""Tails the generators learn (docs/heavytail.md, "Tails: what the generators learn" and "Defaults on other
targets").

One config (a JSON dict of HeavyTailConfig keys, the rest defaults; ``'{}'`` = the defaults) trained on a
catalogue problem per seed (data seed s = run seed s, 10,000 points), printing one JSON line per seed: the
radial Hill index against the truth, P(|x| > r) at the data's 99th / 99.9th percentile radii r99, r99.9
against the exact law (Student-t) or, where the radial law has no closed form (iid Lomax in d > 1), against
200,000 held-out exact samples, whether both bars are met (Hill within 15%, both P ratios within a factor
1.5), the farthest sample, the CPU seconds of the run (``time.process_time``, one thread), and the same
numbers for the training sample itself (``data_*``: the noise floor; a generator that reproduces its
training sample exactly scores these).

    OMP_NUM_THREADS=1 python experiments/heavytail_tails.py '{}'                       # GAN defaults, t(1.5) 2-d
    OMP_NUM_THREADS=1 python experiments/heavytail_tails.py '{"model": "particles"}'
    OMP_NUM_THREADS=1 python experiments/heavytail_tails.py '{}' --problem pareto --nu 1.5 --dim 3 --seeds 0,1,2
    OMP_NUM_THREADS=1 python experiments/heavytail_tails.py '{"model": "particles", "steps": 300,
        "particles": {"coordinates": "linear", "dt": 5.0}}' --seeds 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from problems.heavy_tails import make_problem  # noqa: E402
from sciml import fit  # noqa: E402
from sciml.heavytail import HeavyTail, HeavyTailConfig  # noqa: E402
from sciml.heavytail.metrics import hill  # noqa: E402
from sciml.run import load_config  # noqa: E402

HILL_BAR, P_BAR = 0.15, 1.5


def tail_row(samples: np.ndarray, data: np.ndarray, prob, held_out: np.ndarray | None) -> dict:
    """Hill, P ratios at the data's r99 / r99.9 (exact law, or ``held_out`` samples) and the pass flag."""
    r, rx = np.linalg.norm(data, axis=1), np.linalg.norm(samples, axis=1)
    out = {"hill": round(hill(rx), 3), "true_index": prob.radial_index}
    out["hill_error"] = round(abs(out["hill"] - prob.radial_index) / prob.radial_index, 3)
    ok = out["hill_error"] <= HILL_BAR
    for name, q in (("r99", 0.99), ("r999", 0.999)):
        rq = float(np.quantile(r, q))
        ref = (float(prob.radial_sf(rq)) if prob.radial_sf is not None
               else float(np.mean(np.linalg.norm(held_out, axis=1) > rq)))
        ratio = float(np.mean(rx > rq)) / ref
        out[f"p_ratio_{name}"] = round(ratio, 3)
        ok = ok and 1 / P_BAR <= ratio <= P_BAR
    out["max_radius"] = round(float(rx.max()), 1)
    out["pass"] = bool(ok)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="JSON dict of HeavyTailConfig keys ('{}': the defaults)")
    ap.add_argument("--problem", default="student_t", choices=("student_t", "pareto"))
    ap.add_argument("--nu", type=float, default=1.5, help="Student-t degrees of freedom / Lomax a")
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--n-data", type=int, default=10000)
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prob = make_problem(args.problem, nu=args.nu, dim=args.dim)
    held_out = prob.sample(max(200000, 10 * args.n_data), 10**6) if prob.radial_sf is None else None
    over = json.loads(args.config)
    for seed in (int(s) for s in args.seeds.split(",")):
        data = prob.sample(args.n_data, seed)
        cfg = load_config({**over, "seed": seed, "checkpoint_every": 10**9}, HeavyTailConfig)
        cpu = time.process_time()
        res = fit(HeavyTail, cfg, data, problem=prob)
        cpu = time.process_time() - cpu
        floor = tail_row(data, data, prob, held_out)  # the training sample itself against the same bars
        row = {"problem": prob.name, "model": cfg.model, "seed": seed,
               **tail_row(res.payload.samples, data, prob, held_out),
               "data_hill": floor["hill"], "data_p_ratio_r99": floor["p_ratio_r99"],
               "data_p_ratio_r999": floor["p_ratio_r999"], "data_pass": floor["pass"],
               "ccdf_l1": round(res.metrics["ccdf_l1"], 3) if "ccdf_l1" in res.metrics else None,
               "cpu_s": round(cpu, 1), "status": res.status.value}
        shape = getattr(res.payload.sampler, "radial_logit", None)
        if shape is not None:  # the radial latent's learned shape weights a_j
            row["radial_a"] = [round(float(v), 3) for v in torch.sigmoid(shape.detach())]
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
