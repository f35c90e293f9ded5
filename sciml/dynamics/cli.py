"""``sciml simulate SYSTEM --out TRAJ.h5``: trajectories from the catalogue (:mod:`problems.systems`)."""

from __future__ import annotations

import argparse

__all__ = ["register", "cmd_simulate"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from problems.systems import SYSTEMS

    from ..cli import add_common

    p = subparsers.add_parser(
        "simulate", help="simulate trajectories of a catalogue system into an HDF5 file",
        description="Integrate trajectories of a catalogue system (symplectic Yoshida-4 for separable "
                    "Hamiltonians, DOP853 otherwise) from initial states drawn over the system's region, "
                    "report the energy drift, and write the HDF5 trajectory schema.")
    p.add_argument("system", choices=sorted(SYSTEMS), help="catalogue name")
    p.add_argument("--n", type=int, default=3, help="particles / lattice sites (lattices, Calogero-Moser)")
    p.add_argument("--n-traj", type=int, default=64, help="number of trajectories")
    p.add_argument("--n-times", type=int, default=1000, help="samples per trajectory")
    p.add_argument("--dt", type=float, default=0.05, help="sampling interval")
    p.add_argument("--integrator", choices=("auto", "yoshida4", "leapfrog", "dop853"), default="auto")
    p.add_argument("--max-step", type=float, default=None, help="largest internal step (symplectic)")
    p.add_argument("--out", required=True, help="output .h5 file")
    add_common(p)
    p.set_defaults(func=cmd_simulate, single_process="the trajectories are integrated by NumPy/SciPy in one "
                   "process; several runs with different --seed values give more")


def cmd_simulate(args: argparse.Namespace) -> int:
    import torch

    from problems.systems import get_system

    from ..run import ConfigError, seed_everything
    from . import DOP853, Leapfrog, Yoshida4, default_integrator, save_trajectories, simulate

    for key, val, lo in (("--n-traj", args.n_traj, 2), ("--n-times", args.n_times, 5), ("--n", args.n, 2)):
        if val < lo:
            raise ConfigError(key, f"must be at least {lo}, got {val}")
    if not args.dt > 0:
        raise ConfigError("--dt", f"must be positive, got {args.dt}")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        system = get_system(args.system, args.n)
    except ValueError as e:
        raise ConfigError("--n", str(e)) from None
    kw = {} if args.max_step is None else {"max_step": args.max_step}
    integ = {"auto": lambda: default_integrator(system), "yoshida4": lambda: Yoshida4(**kw),
             "leapfrog": lambda: Leapfrog(**kw), "dop853": lambda: DOP853()}[args.integrator]()
    gen = seed_everything(0 if args.seed is None else args.seed)
    try:
        traj = simulate(system, args.n_traj, args.n_times, args.dt, integrator=integ, generator=gen)
    except ValueError as e:
        raise ConfigError("--integrator", str(e)) from None
    path = save_trajectories(traj, args.out)
    print(f"{system.name}: {traj.n_trajectories} trajectories x {traj.n_times} samples (dt {args.dt}), "
          f"state dim {traj.dim}; {traj.attrs['integrator']}; region {system.region.description}")
    print(f"max relative energy drift {traj.attrs['energy_drift']:.2e}; theory: {system.expected} independent "
          f"integrals ({system.expected_involution} in involution) - {system.notes}")
    print(f"wrote {path} in {traj.attrs['seconds']:.1f} s")
    return 0
