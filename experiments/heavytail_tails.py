"""Tails the generators learn (docs/heavytail.md, "Tails: what the generators learn").

One config (a JSON dict of HeavyTailConfig keys, the rest defaults) trained on a 2-d Student-t per seed
(data seed s = run seed s, 10,000 points), printing one JSON line per seed: the radial Hill index, its
error, the CCDF L1, the farthest sample, P(|x| > r) at the data's 99th / 99.9th percentile radius against
the exact value, the largest particle speed and the wall seconds.

    OMP_NUM_THREADS=1 python experiments/heavytail_tails.py '{"model": "particles", "steps": 600, "batch": 1000}'
    OMP_NUM_THREADS=1 python experiments/heavytail_tails.py '{"model": "gan", "steps": 1500, "batch": 2000,
        "critic": {"steps": 3}}'
    OMP_NUM_THREADS=1 python experiments/heavytail_tails.py '{"model": "particles", "steps": 300, "batch": 1000,
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

from problems.heavy_tails import student_t  # noqa: E402
from sciml import fit  # noqa: E402
from sciml.heavytail import HeavyTail, HeavyTailConfig  # noqa: E402
from sciml.run import load_config  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="JSON dict of HeavyTailConfig keys")
    ap.add_argument("--nu", type=float, default=1.5)
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--n-data", type=int, default=10000)
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prob = student_t(args.nu, args.dim)
    over = json.loads(args.config)
    for seed in (int(s) for s in args.seeds.split(",")):
        data = prob.sample(args.n_data, seed)
        r = np.linalg.norm(data, axis=1)
        r99, r999 = np.quantile(r, 0.99), np.quantile(r, 0.999)
        cfg = load_config({**over, "seed": seed, "checkpoint_every": 10**9}, HeavyTailConfig)
        t = time.perf_counter()
        res = fit(HeavyTail, cfg, data, problem=prob)
        rx = np.linalg.norm(res.payload.samples, axis=1)
        m = res.metrics
        print(json.dumps({
            "seed": seed, "seconds": round(time.perf_counter() - t, 1), "hill": round(m["hill"], 3),
            "hill_error": round(m["hill_error"], 3), "ccdf_l1": round(m["ccdf_l1"], 3),
            "max_radius": round(float(rx.max()), 1),
            "p_r99": float(np.mean(rx > r99)), "p_exact_r99": float(prob.radial_sf(r99)),
            "p_ratio_r99": round(float(np.mean(rx > r99) / prob.radial_sf(r99)), 3),
            "p_r999": float(np.mean(rx > r999)), "p_exact_r999": float(prob.radial_sf(r999)),
            "max_speed": m.get("max_speed"), "status": res.status.value}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
