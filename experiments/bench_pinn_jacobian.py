"""Benchmark: the per-point residual Jacobian J (m x P) of the natural-gradient and Levenberg-Marquardt
steps, through the forward Laplacian on one point against the exact-Hessian path, beside a batch gradient.

For the 10-d and 100-d Allen-Cahn members (u = h + t (1 - |x|^2) N, the accuracy-first configs' networks)
it times, round-robin so that machine noise hits all alike: the batch gradient of the loss (what an Adam
step differentiates), J through the forward Laplacian (``residual_functions(..., forward=True)``, the
default for an MLP) and J through exact Hessians (``forward=False``). It prints the medians and the
ratios, and checks that the two Jacobians agree. Run it on a quiet machine.

    python experiments/bench_pinn_jacobian.py --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.func import grad

from problems.pdes import family_member
from sciml.pinn import PINNConfig, Trainer, build_network, identity_parametrisation, with_hard_constraints
from sciml.pinn.gauss_newton import residual_functions, residual_jacobian
from sciml.run import load_config, seed_everything

CASES = {"d = 10, 3x128": (10, [128, 128, 128]), "d = 100, 192-96": (100, [192, 96])}


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--points", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"| case | points | batch gradient s | J forward s | J Hessian s | forward / gradient | Hessian / forward |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (d, widths) in CASES.items():
        seed_everything(0)
        cfg = load_config({"problem": {"d": d}, "model": {"widths": widths},
                           "sampling": {"sampler": "mixed", "n_interior": a.points, "n_boundary": 0, "n_initial": 0},
                           "loss": {"hard": "initial_boundary"}, "laplacian": {"method": "forward", "compile": "off"}},
                          PINNConfig)
        problem = with_hard_constraints(family_member("allen_cahn", 0.0, d), "initial_boundary")
        module = build_network(d + 1, widths, "tanh")
        tr = Trainer(problem, module, identity_parametrisation(module), cfg)
        blocks = tr._lm_blocks(tr.global_points)
        theta = tr.par.theta
        fast = residual_functions(module, problem, tr.par.build, tr.par.const, tr.t_shift, forward=True)
        slow = residual_functions(module, problem, tr.par.build, tr.par.const, tr.t_shift, forward=False)
        r1, J1 = residual_jacobian(fast, theta, blocks)
        r2, J2 = residual_jacobian(slow, theta, blocks)
        err = float((J1 - J2).abs().max() / J2.abs().max())
        assert err < 1e-3, f"{name}: the two Jacobians differ ({err:.2e})"
        times = {"grad": [], "fast": [], "slow": []}
        jobs = {"grad": lambda: grad(lambda th: tr.loss(th)[0])(dict(theta)),
                "fast": lambda: residual_jacobian(fast, theta, blocks),
                "slow": lambda: residual_jacobian(slow, theta, blocks)}
        for _ in range(a.repeats):
            for k, job in jobs.items():
                times[k].append(timed(job, 1))
        g, f, s = (statistics.median(times[k]) for k in ("grad", "fast", "slow"))
        print(f"| {name} | {a.points} | {g:.4f} | {f:.4f} | {s:.3f} | {f / g:.1f} | {s / f:.1f} |", flush=True)


if __name__ == "__main__":
    main()
