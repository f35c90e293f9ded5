"""The trivial baseline of the high-dimensional ball benchmarks: (1 - |x|^2)(a + b.x) fitted by least squares.

For every dimension, sampler and coefficient seed, fits the d + 1 numbers a, b to the exact two-body and
three-body solutions (``problems.highd``) at ``max(--n-train, 10 (d + 1))`` training points and reports
the relative L2 error on ``--n-test`` test points drawn the same way:

* ``radial``: a uniform direction times r ~ U(0, 1), the SDGD / STDE codes' training and test points;
* ``volume``: uniform in the ball's volume.

The points do not depend on the coefficient seed, so one least-squares factorisation serves every seed
and both solutions. Prints the markdown table of ``docs/highd_benchmarks.md``:

    .venv/bin/python experiments/highd_baseline.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from problems.highd import ManyBodySolution, affine_baseline
from sciml.pinn.problem import Ball
from sciml.pinn.sampling import RadialUniformBall, UniformBall, sample_domain
from sciml.run.seeds import derived_generator

F64 = torch.float64
SAMPLERS = {"radial": RadialUniformBall(), "volume": UniformBall()}
BODIES = {2: "two-body", 3: "three-body"}


def _points(d: int, n: int, sampler: str, split: str, seed: int) -> torch.Tensor:
    gen = derived_generator(seed, "highd_baseline", sampler, split, d)
    return sample_domain(Ball(d), n, sampler=SAMPLERS[sampler], generator=gen, dtype=F64)


def _values(sols: list[ManyBodySolution], x: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """``(N, len(sols))``: every solution at every point, in chunks (keeps temporaries small)."""
    return torch.cat([torch.stack([sol(xc) for sol in sols], dim=1) for xc in x.split(chunk)])


def _rel_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Column-wise ||pred - true|| / ||true||."""
    return (pred - true).norm(dim=0) / true.norm(dim=0)


def measure(d: int, sampler: str, seeds: list[int], n_train: int, n_test: int, point_seed: int) -> dict:
    """Relative L2 of the affine fit per body and coefficient seed (one factorisation for all)."""
    sols = [ManyBodySolution(d, body, s) for body in BODIES for s in seeds]
    x = _points(d, n_train, sampler, "train", point_seed)
    fit = affine_baseline(x, _values(sols, x))
    del x
    xt = _points(d, n_test, sampler, "test", point_seed)
    errs = _rel_l2(fit(xt), _values(sols, xt)).tolist()
    out = {}
    for k, body in enumerate(BODIES):
        rows = errs[k * len(seeds):(k + 1) * len(seeds)]
        sums = [float(sols[k * len(seeds) + i].coeffs.sum()) / len(sols[0].coeffs) ** 0.5 for i in range(len(seeds))]
        out[body] = {"rel_l2": dict(zip(seeds, rows)), "coeff_sum_over_sqrt_m": dict(zip(seeds, sums))}
    return out


def _cell(by_seed: dict[int, float]) -> str:
    vals = list(by_seed.values())
    return f"{statistics.median(vals):.2g} [{min(vals):.2g}, {max(vals):.2g}]"


def table(results: dict, dims: list[int], seeds: list[int]) -> str:
    """The markdown table: seed 0 (or the first seed) and median [min, max] over the seeds."""
    s0 = seeds[0]
    lines = [f"| solution | d | radial, seed {s0} | radial, median [min, max] | volume, seed {s0} "
             f"| volume, median [min, max] |", "|---|---:|---:|---:|---:|---:|"]
    for body, name in BODIES.items():
        for d in dims:
            r = results[d]["radial"][body]["rel_l2"]
            v = results[d]["volume"][body]["rel_l2"]
            lines.append(f"| {name} | {d} | {r[s0]:.2g} | {_cell(r)} | {v[s0]:.2g} | {_cell(v)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--seeds", type=int, default=10, help="coefficient seeds 0 .. SEEDS-1")
    p.add_argument("--n-train", type=int, default=10_000, help="training points (at least 10 (d + 1) are used)")
    p.add_argument("--n-test", type=int, default=20_000)
    p.add_argument("--point-seed", type=int, default=0, help="seed of the training and test points")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write every number (per seed) here")
    a = p.parse_args(argv)
    if a.seeds < 1 or a.n_test < 1 or min(a.dims) < 3:
        p.error("need --seeds >= 1, --n-test >= 1 and every --dims >= 3")
    torch.set_num_threads(a.threads)
    seeds = list(range(a.seeds))
    results: dict = {}
    t0 = time.perf_counter()
    for d in a.dims:
        n_train = max(a.n_train, 10 * (d + 1))
        results[d] = {s: measure(d, s, seeds, n_train, a.n_test, a.point_seed) for s in SAMPLERS}
        results[d]["n_train"] = n_train
    print(table(results, a.dims, seeds))
    print(f"\n{a.n_test} test points; training points max({a.n_train}, 10 (d + 1)); seeds 0-{seeds[-1]}; "
          f"{time.perf_counter() - t0:.0f} s on {a.threads} thread(s)")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"args": vars(a), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
