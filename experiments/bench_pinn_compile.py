"""Benchmark: a PINN training step with the loss compiled (``laplacian.compile = "on"``) vs eager.

For each case a real :class:`sciml.pinn.Trainer` is built twice from one config, once eager and once
compiled (``torch.compile`` of the whole loss, derivatives inside, checked against eager first), and
the full Adam step (points, loss, backward, optimiser) is timed round-robin so that machine noise hits
both alike. It prints the median step of each, the ratio, and the one-off compile time: the number of
steps after which compiling pays (``laplacian.compile = "auto"`` compiles runs of >= 2000 iterations).

Cases: the paper's 10-d Allen-Cahn (2 x 300, 1000 interior points), the foundation benchmark's network
(4 x 128, 2000 points) on the same PDE, and the 100-d member's setting (2 x 128, SDGD(16), hard
constraints, 200 resampled points). Run it on a quiet machine.

    python experiments/bench_pinn_compile.py --threads 2 --repeats 15 --json docs/results/pinn_compile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from problems.pdes import family_member
from sciml.pinn import PINNConfig, Trainer, build_network, identity_parametrisation, with_hard_constraints
from sciml.run import load_config, seed_everything, tune_allocator

CASES = {
    "paper 10-d Allen-Cahn, 2x300, 1000 pts": {
        "problem": {"d": 10}, "model": {"widths": [300, 300]},
        "sampling": {"sampler": "radial", "n_interior": 1000, "n_boundary": 500, "n_initial": 500}},
    "10-d Allen-Cahn, 4x128, 2000 pts": {
        "problem": {"d": 10}, "model": {"widths": [128] * 4},
        "sampling": {"sampler": "radial", "n_interior": 2000, "n_boundary": 500, "n_initial": 500}},
    "100-d Allen-Cahn, 2x128, SDGD(16), hard, 200 resampled": {
        "problem": {"d": 100}, "model": {"widths": [128, 128]},
        "sampling": {"sampler": "radial", "n_interior": 200, "n_boundary": 0, "n_initial": 0, "resample": True},
        "loss": {"hard": "initial_boundary"}, "laplacian": {"method": "sdgd", "probes": 16}},
}


def trainer(case: dict, mode: str) -> Trainer:
    base = {"problem": {"family": "allen_cahn", "value": 0.0}, "sampling": {"n_test": 10},
            "optim": {"iters": 100000}, "log_every": 10**9}
    over = {k: {**base.get(k, {}), **v} for k, v in case.items()}
    lap = {**over.get("laplacian", {}), "compile": mode}
    cfg = load_config({**base, **over, "laplacian": lap}, PINNConfig)
    seed_everything(0)
    problem = with_hard_constraints(family_member(cfg.problem.family, cfg.problem.value, cfg.problem.d), cfg.loss.hard)
    module = build_network(problem.d + 1, cfg.model.widths, cfg.model.activation)
    return Trainer(problem, module, identity_parametrisation(module), cfg)


def timed(tr: Trainer, i: int) -> float:
    t0 = time.perf_counter()
    tr.step(i)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--cases", nargs="+", default=None, help="substrings of the case names to run")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    tune_allocator()
    torch.set_num_threads(a.threads)
    rows = []
    print(f"{'case':<56} {'eager':>9} {'compiled':>9} {'speed-up':>8} {'compile':>8} {'pays after':>10}")
    for name, case in CASES.items():
        if a.cases and not any(s in name for s in a.cases):
            continue
        eager, comp = trainer(case, "off"), trainer(case, "on")
        t0 = time.perf_counter()
        comp.step(0)  # compiles (and checks against eager)
        compile_s = time.perf_counter() - t0
        eager.step(0)
        te, tc = [], []
        for i in range(1, a.repeats + 1):
            te.append(timed(eager, i))
            tc.append(timed(comp, i))
        me, mc = statistics.median(te), statistics.median(tc)
        pays = compile_s / (me - mc) if me > mc else float("inf")
        rows.append({"case": name, "eager_s": me, "compiled_s": mc, "speedup": me / mc, "compile_s": compile_s,
                     "compiled": comp.compiled, "pays_after_steps": pays, "threads": a.threads})
        print(f"{name:<56} {me * 1e3:7.1f}ms {mc * 1e3:7.1f}ms {me / mc:7.2f}x {compile_s:7.1f}s {pays:10.0f}"
              + ("" if comp.compiled else "  (compile failed: eager)"), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
