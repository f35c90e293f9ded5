"""Are the catalogue's data chaotic? Largest Lyapunov exponents of every system over its sampled region.

Neural deflation counts the integrals the *data* admit: where the motion is regular (quasi-periodic on
tori) a non-integrable system has smooth local integrals beyond its global ones. This script measures,
for each catalogue system at N = 3 and the initial-state region of the reproduction table (optionally at
other amplitudes), the finite-time largest Lyapunov exponent of ``--n-traj`` trajectories
(:func:`sciml.dynamics.lyapunov_exponent`) and prints a Markdown table: median and quartiles of
lambda_T, the regular reference log(T)/T, and the fraction of trajectories whose tangent grew by more
than T^2 (classed chaotic).

    OMP_NUM_THREADS=1 python experiments/lyapunov_table.py --T 500 --json docs/results/lyapunov_table.json
    python experiments/lyapunov_table.py --systems fput-beta-fixed --amplitudes 1 2 3 --T 500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from problems.systems import HAS_N, SYSTEMS, get_system
from sciml.dynamics import lyapunov_exponent
from sciml.run.io import atomic_write_text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS))
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--amplitudes", nargs="+", type=float, default=[1.0])
    p.add_argument("--T", type=float, default=500.0)
    p.add_argument("--step", type=float, default=0.01)
    p.add_argument("--n-traj", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--regime", choices=("regular", "chaotic"), default="regular",
                   help="initial states of the FPUT chains (problems.systems.fput)")
    p.add_argument("--json", default=None, help="append the rows to this JSON file (written atomically)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    print("| system | amplitude | T | median lambda_T (q25-q75) | log(T)/T | chaotic fraction | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for name in a.systems:
        for amp in a.amplitudes:
            n = a.n if name in HAS_N else None
            s = get_system(name, n, amplitude=amp, **({"regime": a.regime} if name.startswith("fput") else {}))
            gen = torch.Generator().manual_seed(a.seed)
            x0 = s.sample_initial(a.n_traj, gen)
            c0 = time.process_time()
            r = lyapunov_exponent(s, x0, a.T, step=a.step, generator=gen)
            row = {"system": name, "n": n, "amplitude": amp, "n_traj": a.n_traj, "region": s.region.description,
                   **r.summary(), "cpu_s": time.process_time() - c0}
            rows.append(row)
            print(f"| {name} | {amp:g} | {row['T']:g} | {row['median']:.4f} ({row['q25']:.4f}-{row['q75']:.4f}) | "
                  f"{row['regular_reference']:.4f} | {row['chaotic_fraction']:.2f} | {row['cpu_s']:.0f} |", flush=True)
    if a.json:
        path = Path(a.json)
        old = json.loads(path.read_text()) if path.exists() else {"rows": []}
        old["rows"].extend(rows)
        atomic_write_text(path, json.dumps(old, indent=1))


if __name__ == "__main__":
    main()
