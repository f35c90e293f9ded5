"""A trained evolution PINN (``sciml pinn train``) on two test sets, next to the ansatz's trivial baseline.

For a run of a catalogue member (``problems.pdes.family_member``) on the unit ball, prints the relative L2
error of the trained network, with ``t ~ U(t_0, t_1)`` and ``x`` drawn

* ``radial``: a uniform direction times ``r ~ U(0, 1)`` (the SVD-PINN / SDGD codes' points);
* ``volume``: uniform in the ball's volume (in high d: almost all points near the sphere);

and of the trivial baseline: the run's ansatz with a *linear* network,

    u_0(t, x) = h(x) + (t - t_0)(1 - |x|^2)(a + b.x + c t)      (``loss.hard = "initial_boundary"``)
    u_0(t, x) = (1 - |x|^2)(a + b.x + c t)                      (no ansatz),

its d + 2 numbers fitted by least squares to the exact solution on a training set drawn like the test
set. A high-dimensional error means something only when it is clearly below this baseline.

    .venv/bin/python experiments/pinn_eval_sets.py runs/ac10 [--n-test 20000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from problems.pdes import family_member
from sciml.pinn import PINN
from sciml.pinn.problem import Ball
from sciml.pinn.sampling import RadialUniformBall, UniformBall, sample_domain
from sciml.pinn.solver import with_hard_constraints
from sciml.run.seeds import derived_generator

F64 = torch.float64
SAMPLERS = {"radial": RadialUniformBall(), "volume": UniformBall()}


def points(d: int, n: int, sampler: str, split: str, seed: int, t_range: tuple[float, float]):
    """``(t, x)``: ``n`` points of the ball of R^d drawn by ``sampler`` and times uniform in ``t_range``."""
    gen = derived_generator(seed, "pinn_eval_sets", sampler, split, d)
    x = sample_domain(Ball(d), n, sampler=SAMPLERS[sampler], generator=gen, dtype=F64)
    t = t_range[0] + (t_range[1] - t_range[0]) * torch.rand(n, generator=gen, dtype=F64)
    return t, x


def rel_l2(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(pred - true) / torch.linalg.vector_norm(true))


def baseline_columns(problem, hard: str, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The lift ``A`` and the columns ``B [1, x, t]`` of the linear-network ansatz at ``(t, x)``."""
    t0 = problem.t_range[0]
    phi = 1 - (x**2).sum(1)
    lin = torch.cat([torch.ones_like(t)[:, None], x, t[:, None]], dim=1)
    if hard == "initial_boundary":
        return problem.initial(x), ((t - t0) * phi)[:, None] * lin
    return torch.zeros_like(t), phi[:, None] * lin


def evaluate(run: str, n_test: int, n_train: int, seed: int) -> dict:
    trained = PINN.load(run)
    cfg = trained.config
    problem = family_member(cfg.problem.family, cfg.problem.value, cfg.problem.d)
    hard = cfg.loss.hard
    out = {"run": run, "problem": problem.name, "hard": hard, "n_test": n_test}
    for sampler in SAMPLERS:
        t, x = points(problem.d, n_test, sampler, "test", seed, problem.t_range)
        u = problem.exact(t, x)
        with torch.no_grad():
            pred = trained.predict(t.float(), x.float(), problem=with_hard_constraints(problem, hard)).double()
        ttr, xtr = points(problem.d, max(n_train, 10 * (problem.d + 2)), sampler, "train", seed, problem.t_range)
        a, cols = baseline_columns(problem, hard, ttr, xtr)
        coef = torch.linalg.lstsq(cols, problem.exact(ttr, xtr) - a).solution
        a_te, cols_te = baseline_columns(problem, hard, t, x)
        out[sampler] = {"pinn": rel_l2(pred, u), "baseline": rel_l2(a_te + cols_te @ coef, u)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run folders of `sciml pinn train`")
    p.add_argument("--n-test", type=int, default=20000)
    p.add_argument("--n-train", type=int, default=20000, help="the baseline's least-squares points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = [evaluate(r, args.n_test, args.n_train, args.seed) for r in args.runs]
    print("| run | problem | rel L2 radial | baseline radial | rel L2 volume | baseline volume |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['problem']} | {r['radial']['pinn']:.2e} | {r['radial']['baseline']:.2e} | "
              f"{r['volume']['pinn']:.2e} | {r['volume']['baseline']:.2e} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
