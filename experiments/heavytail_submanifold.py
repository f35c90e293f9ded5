"""The authors' 110-d benchmark (docs/heavytail.md, "The 110-d benchmark"): a 10-d Cauchy power law
``z_i = sign(y_i)|y_i|^t_i`` (the authors' powers) padded with 100 zero coordinates, 10,000 training
points per seed, scored on 10,000 generated samples with the authors' metric (mean CCDF L1 over the ten
heavy coordinates on their linear grid up to 5e6, against the exact marginals) and the distance to the
orthogonal space (mean norm of coordinates 11-110), plus per-coordinate Hill indices against the exact
ones ``1 / t_i`` (is the tail learned per direction?).

One config (a JSON dict of HeavyTailConfig keys, or a TOML file) per call, one JSON line per seed:

    OMP_NUM_THREADS=1 python experiments/heavytail_submanifold.py configs/heavytail/submanifold_110d_gan.toml --seeds 0,1,2
    OMP_NUM_THREADS=1 python experiments/heavytail_submanifold.py '{"steps": 3000, "batch": 2000,
        "critic": {"steps": 3}}' --seeds 0,1,2
    OMP_NUM_THREADS=1 python experiments/heavytail_submanifold.py --exact --seeds 0,1,2   # the noise floor

``--exact`` scores 10,000 fresh exact samples instead of a model (what a perfect generator scores).
``--score-ve`` trains the score wing's VE model instead (the authors' baseline: sigma from 0.01 to 100, no
standardisation, Euler-Maruyama reverse SDE); the JSON then holds ScoreConfig keys:

    OMP_NUM_THREADS=1 python experiments/heavytail_submanifold.py --score-ve '{"train": {"steps": 3000}}'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from problems.heavy_tails import cauchy_power  # noqa: E402
from sciml import fit  # noqa: E402
from sciml.heavytail import HeavyTail, HeavyTailConfig  # noqa: E402
from sciml.heavytail.metrics import hill  # noqa: E402
from sciml.heavytail.submanifold import authors_powers, cauchy_power_sf, submanifold_metrics  # noqa: E402
from sciml.run import load_config  # noqa: E402

N_SCORE = 10000  # the authors score 10,000 generated samples; the metric depends on n


def score(samples: np.ndarray, powers: np.ndarray) -> dict:
    """The authors' two numbers, and per heavy coordinate the Hill index (k = 2%) against 1 / t_i."""
    m = submanifold_metrics(samples, cauchy_power_sf(powers))
    heavy = samples[:, : len(powers)]
    finite = np.isfinite(heavy).all(axis=1)
    h = np.array([hill(np.abs(heavy[finite, i])) for i in range(len(powers))])
    truth = 1.0 / powers
    err = np.abs(h - truth) / truth
    return {"ccdf_l1_submanifold": round(m["ccdf_l1_submanifold"], 1), "off_manifold": round(m["off_manifold"], 4),
            "hill": [round(float(v), 2) for v in h], "hill_truth": [round(float(v), 2) for v in truth],
            "hill_within_15pct": int(np.sum(err <= 0.15)), "hill_error_median": round(float(np.median(err)), 3),
            "hill_spread": round(float(h.max() - h.min()), 2)}


def score_ve(over: dict, data: np.ndarray, seed: int, powers: np.ndarray) -> dict:
    """The VE score-model baseline on ``data``, scored like the generators (the authors' sigma range)."""
    from sciml.score import ScoreConfig, ScoreTraining

    base = {"sde": {"kind": "ve", "sigma_min": 0.01, "sigma_max": 100.0}, "train": {"standardize": False}}
    merged = {**base, **over}
    for table in base:  # a table the JSON gives is merged into the baseline's, key by key
        if isinstance(over.get(table), dict):
            merged[table] = {**base[table], **over[table]}
    cfg = load_config({**merged, "seed": seed, "checkpoint_every": 10**9}, ScoreConfig)
    cpu = time.process_time()
    res = fit(ScoreTraining, cfg, torch.as_tensor(data, dtype=torch.float32))
    x = res.payload.generate(N_SCORE, generator=torch.Generator().manual_seed(10**6 + seed))
    cpu = time.process_time() - cpu
    return {"config": {"score_ve": merged}, "seed": seed, "status": res.status.name,
            **score(x.double().numpy(), powers), "cpu_s": round(cpu, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", nargs="?", default="{}", help="JSON dict of HeavyTailConfig keys, or a TOML file")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--n-data", type=int, default=10000)
    ap.add_argument("--exact", action="store_true", help="score exact samples (the noise floor)")
    ap.add_argument("--score-ve", action="store_true", help="train the VE score model (ScoreConfig keys)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prob = cauchy_power(10, 110)
    powers = authors_powers()
    if args.config.endswith(".toml"):
        with open(args.config, "rb") as fh:
            over = tomllib.load(fh)
    else:
        over = json.loads(args.config)
    for seed in (int(s) for s in args.seeds.split(",")):
        if args.exact:
            row = {"model": "exact samples", "seed": seed, **score(prob.sample(N_SCORE, 10**6 + seed), powers)}
            print(json.dumps(row), flush=True)
            continue
        data = prob.sample(args.n_data, seed)
        if args.score_ve:
            print(json.dumps(score_ve(over, data, seed, powers)), flush=True)
            continue
        cfg = load_config({**over, "seed": seed, "checkpoint_every": 10**9, "n_samples": N_SCORE},
                          HeavyTailConfig)
        cpu = time.process_time()
        res = fit(HeavyTail, cfg, data, problem=prob)
        cpu = time.process_time() - cpu
        x = res.payload.sample(N_SCORE, generator=torch.Generator().manual_seed(10**6 + seed)).numpy()
        row = {"config": over, "seed": seed, "status": res.status.name, **score(x.astype(np.float64), powers),
               "cpu_s": round(cpu, 1)}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
