"""Demo section: neural deflation on the 2-D isotropic oscillator (expect 3 integrals), about a minute."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["demo"]


def demo(args: argparse.Namespace) -> bool:
    import torch

    from problems.systems import get_system

    from .. import fit
    from ..dynamics import simulate
    from ..run import load_config, resolve_device
    from . import Deflation, DiscoveryConfig, span_check

    device = resolve_device(getattr(args, "device", "cpu") or "cpu")
    seed = 0 if getattr(args, "seed", None) is None else int(args.seed)
    system = get_system("ho2d-iso")
    # many short trajectories (one period each): the integrals must generalise to held-out ellipses
    traj = simulate(system, 128, 60, 0.05, generator=torch.Generator().manual_seed(seed))
    print(f"2-D isotropic oscillator: {traj.n_trajectories} trajectories x {traj.n_times} snapshots, "
          f"Yoshida-4 energy drift {traj.attrs['energy_drift']:.1e}")
    out = Path(getattr(args, "out", "runs/demo")) / "conservation"
    # networks only (library_degree 0): the polynomial start would find these quadratic integrals by itself,
    # which the second run below shows
    cfg = load_config({"steps": 1500, "lr": 1e-2, "batch_size": 512, "seed": seed, "library_degree": 0,
                       "network": {"width": 32, "depth": 2}}, DiscoveryConfig)
    n_threads = torch.get_num_threads()
    # nets this small gain nothing from threads, and on a shared machine extra threads only contend
    torch.set_num_threads(getattr(args, "threads", None) or 1)
    try:
        run = fit(Deflation, cfg, traj, out=out, device=device, overwrite=True)
    finally:
        torch.set_num_threads(n_threads)
    if run.payload is None:  # diverged: no discovery to show
        print(f"{run.status.value}: {run.message}")
        return False
    res = run.payload
    for f in res.fits:
        print(f"  H_{f.index}: held-out median loss {f.loss:.2e} ({f.seconds:.1f} s)")
    print(f"count {res.n_conserved} (theory 3), margin {res.decision.margin:.2f} decades; plot {out}/loss_vs_k.png")
    ok = res.n_conserved == 3
    if res.n_conserved:
        rep = span_check(res.conserved, system.invariants, traj.X[res.split[1]].reshape(-1, 4))
        print(f"learned vs (H_x, H_y, L): sin of largest principal angle {rep.sin_true_vs_learned:.3f} "
              f"(< 0.1 means the learned quantities span the known ones)")
        ok = ok and rep.spans()
    lib = fit(Deflation, DiscoveryConfig(seed=seed), traj, device=device).payload
    print(f"with the default polynomial start: count {lib.n_conserved} in {lib.seconds:.1f} s, starts "
          f"{[f.stats['start'] + ' (degree ' + str(f.stats['library_degree']) + ')' for f in lib.fits]}")
    return bool(ok and lib.n_conserved == 3)
