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
    p.add_argument("--amplitude", type=float, default=1.0,
                   help="half width a of the initial-state box (q, p ~ U(-a, a) around the system's centre)")
    p.add_argument("--regime", choices=("regular", "chaotic"), default="regular",
                   help="FPUT chains: 'regular' (the box, quasi-periodic at N = 3) or 'chaotic' (an energy shell "
                        "below the alpha chains' saddle, a wider box for beta: only H and P survive)")
    p.add_argument("--lyapunov", type=float, default=0.0, metavar="T",
                   help="also measure the largest Lyapunov exponent over time T on up to 32 of the initial "
                        "states (is the data chaotic? regular data admit extra local integrals); stored as "
                        "the attribute 'lyapunov'")
    p.add_argument("--out", required=True, help="output .h5 file")
    add_common(p)
    p.set_defaults(func=cmd_simulate, single_process="the trajectories are integrated by NumPy/SciPy in one "
                   "process; several runs with different --seed values give more")


def cmd_simulate(args: argparse.Namespace) -> int:
    import json

    import torch

    from problems.systems import get_system

    from ..run import ConfigError, seed_everything
    from . import (DOP853, Leapfrog, Yoshida4, default_integrator, lyapunov_exponent, save_trajectories,
                    simulate)

    for key, val, lo in (("--n-traj", args.n_traj, 2), ("--n-times", args.n_times, 5), ("--n", args.n, 2)):
        if val < lo:
            raise ConfigError(key, f"must be at least {lo}, got {val}")
    for key, val in (("--dt", args.dt), ("--amplitude", args.amplitude)):
        if not val > 0:
            raise ConfigError(key, f"must be positive, got {val}")
    if args.lyapunov < 0:
        raise ConfigError("--lyapunov", f"must be a time T > 0 (or 0: off), got {args.lyapunov}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.regime != "regular" and not args.system.startswith("fput"):
        raise ConfigError("--regime", f"only the FPUT chains have a chaotic regime, not {args.system}; drop it")
    try:
        system = get_system(args.system, args.n, amplitude=args.amplitude,
                            **({"regime": args.regime} if args.system.startswith("fput") else {}))
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
    lyap = None
    if args.lyapunov > 0:
        x0 = torch.from_numpy(traj.X[:32, 0])
        lyap = {**lyapunov_exponent(system, x0, args.lyapunov, generator=gen).summary(), "n_traj": len(x0)}
        traj.attrs["lyapunov"] = json.dumps(lyap)
    path = save_trajectories(traj, args.out)
    print(f"{system.name}: {traj.n_trajectories} trajectories x {traj.n_times} samples (dt {args.dt}), "
          f"state dim {traj.dim}; {traj.attrs['integrator']}; region {system.region.description}")
    at_least = "at least " if system.expected_is_lower_bound else ""
    print(f"max relative energy drift {traj.attrs['energy_drift']:.2e}; theory: {at_least}{system.expected} "
          f"independent integrals ({system.expected_involution} in involution) - {system.notes}")
    if lyap is not None:
        print(f"largest Lyapunov exponent over T = {lyap['T']:g} ({lyap['n_traj']} trajectories): "
              f"median {lyap['median']:.4f} (regular motion: about log(T)/T = {lyap['regular_reference']:.4f}); "
              f"chaotic fraction {lyap['chaotic_fraction']:.2f}")
    print(f"wrote {path} in {traj.attrs['seconds']:.1f} s")
    return 0
