"""Benchmark: strong and weak scaling of data-parallel `sciml pinn train` (torchrun, gloo on CPU).

Each case is a real `sciml pinn train` run (10-d Allen-Cahn, the paper's 2 x 300 tanh network, exact
forward Laplacian) started as its own process(es); the time per Adam step is the trainer's own
``train_seconds`` (steps only: no start-up, no test evaluation) divided by the steps, from rank 0.

* strong scaling: the same global batch (``--n`` interior points) on 1 process and on P processes;
* weak scaling: ``--n`` points per process, so P processes train on P times as many points;
* the fair baseline on a shared-memory machine: 1 process with P threads (intra-op parallelism).

Each process gets ``--threads`` threads (default 1) so that P processes use P cores. Ratios are
taken against the 1-process, 1-thread run measured in the same invocation. Run it on a quiet machine.

    python experiments/bench_distributed.py --procs 2 --n 2000 --iters 30 --json docs/results/distributed_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
seed = 0
log_every = 100000
checkpoint_every = 0
[problem]
family = "allen_cahn"
value = 0.0
d = {d}
[model]
widths = [{width}, {width}]
[sampling]
sampler = "radial"
n_interior = {n}
n_boundary = {nb}
n_initial = {nb}
n_test = 1000
[optim]
iters = {iters}
"""


def run_case(tmp: Path, name: str, procs: int, threads: int, n: int, a) -> dict:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(CONFIG.format(d=a.d, width=a.width, n=n, nb=n // 2, iters=a.iters))
    launch = [sys.executable] if procs == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                  f"--nproc_per_node={procs}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SCIML_PROGRESS": "0",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [*launch, "-m", "sciml", "pinn", "train", str(cfg), "--out", str(tmp / name), "--threads", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp)
    if r.returncode:
        raise SystemExit(f"{name} failed:\n{r.stderr[-3000:]}")
    import h5py

    with h5py.File(tmp / name / "results.h5") as f:
        secs = float(f.attrs["train_seconds"])
    return {"case": name, "processes": procs, "threads_per_process": threads, "global_points": n,
            "seconds_per_step": secs / a.iters}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--procs", type=int, default=2, help="P, the number of processes to compare with one")
    p.add_argument("--n", type=int, default=2000, help="interior points (global for strong, per process for weak)")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--threads", type=int, default=1, help="threads per process")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    P, t = a.procs, a.threads
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        run_case(tmp, "warmup", 1, t, a.n // 4, a)  # imports and caches warm
        base = run_case(tmp, "base", 1, t, a.n, a)
        cases = [base,
                 run_case(tmp, "threads", 1, P * t, a.n, a),
                 run_case(tmp, "strong", P, t, a.n, a),
                 run_case(tmp, "weak", P, t, P * a.n, a)]
    b = base["seconds_per_step"]
    print(f"10-d Allen-Cahn, 2 x {a.width} tanh, forward Laplacian, {a.iters} Adam steps; base: 1 process x {t} "
          f"thread(s), {a.n} points: {b * 1e3:.1f} ms/step")
    print(f"{'case':<10}{'processes':>10}{'threads':>9}{'points':>9}{'ms/step':>10}{'speed-up':>10}{'efficiency':>12}")
    for c in cases:
        s = c["seconds_per_step"]
        if c["case"] == "weak":  # P times the work in the time of one: throughput ratio
            speed = P * b / s
        else:
            speed = b / s
        c["speedup"] = speed
        c["efficiency"] = speed / (c["processes"] * c["threads_per_process"] / t)
        print(f"{c['case']:<10}{c['processes']:>10}{c['threads_per_process']:>9}{c['global_points']:>9}"
              f"{s * 1e3:>10.1f}{speed:>9.2f}x{c['efficiency']:>11.0%}")
    print("strong: same global batch; weak: points per process fixed (speed-up = throughput ratio); "
          "threads: one process with P threads")
    if a.json:
        from sciml.run import atomic_write_text

        atomic_write_text(Path(a.json), json.dumps({"args": vars(a), "cpu_count": os.cpu_count(), "cases": cases},
                                                   indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
