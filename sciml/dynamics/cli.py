"""``sciml simulate SYSTEM --out TRAJ.h5``: trajectories from the catalogue (:mod:`problems.systems`).

Every option is checked before anything is integrated or written: the system name against the
catalogue, counts and times for range and finiteness, the output's size against the available memory
and disk (from the state dimension, before the system is built), the number of integration steps,
and ``--out`` (a file path in a writable folder). A run whose states or energy leave the finite range
is refused after integrating, before writing. Each refusal is a :class:`sciml.run.UsageError` naming
the option; the file is written atomically (:func:`sciml.dynamics.save_trajectories`).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["register", "cmd_simulate", "MAX_STEPS"]

MAX_STEPS = 10**9
"""Most integration steps one command may take (days of CPU); more is refused as a typo."""

LYAPUNOV_STEP = 0.01  # the RK4 step of sciml.dynamics.lyapunov_exponent's default


def register(subparsers: argparse._SubParsersAction) -> None:
    from problems.systems import SYSTEMS

    from ..cli import add_common
    from .integrators import INTEGRATORS

    p = subparsers.add_parser(
        "simulate", help="simulate trajectories of a catalogue system into an HDF5 file",
        description="Integrate trajectories of a catalogue system (symplectic Yoshida-4 for separable "
                    "Hamiltonians, DOP853 otherwise) from initial states drawn over the system's region, "
                    "report the energy drift, and write the HDF5 trajectory schema.")
    p.add_argument("system", metavar="SYSTEM", help=f"catalogue name: {', '.join(SYSTEMS)}")
    p.add_argument("--n", type=int, default=3, help="particles / lattice sites (lattices, Calogero-Moser)")
    p.add_argument("--n-traj", type=int, default=64, help="number of trajectories")
    p.add_argument("--n-times", type=int, default=1000, help="samples per trajectory")
    p.add_argument("--dt", type=float, default=0.05, help="sampling interval")
    p.add_argument("--integrator", choices=("auto", *INTEGRATORS.names()), default="auto")
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
    from problems.systems import get_system

    from ..run import UsageError, set_threads
    from . import save_trajectories

    _check_options(args)
    _check_device(args.device)
    set_threads(args.threads)
    out, folder = _check_out(args.out)
    _check_size(args, folder)
    try:
        system = get_system(args.system, args.n, amplitude=args.amplitude,
                            **({"regime": args.regime} if args.system.startswith("fput") else {}))
    except ValueError as e:
        raise UsageError("--amplitude" if "amplitude" in str(e) else "--n", str(e)) from None
    integ = _integrator(args, system)
    gen = _generator(args.seed)
    traj, lyap = _run(args, system, integ, gen)
    path = save_trajectories(traj, out)
    print(f"{system.name}: {traj.n_trajectories} trajectories x {traj.n_times} samples (dt {args.dt}), "
          f"state dim {traj.dim}; {traj.attrs['integrator']}; region {system.region.description}")
    at_least = "at least " if system.expected_is_lower_bound else ""
    what = "energy" if system.hamiltonian is not None else next(iter(system.invariants), "energy")
    print(f"max relative {what} drift {traj.attrs['energy_drift']:.2e}; theory: {at_least}{system.expected} "
          f"independent integrals ({system.expected_involution} in involution) - {system.notes}")
    if lyap is not None:
        print(f"largest Lyapunov exponent over T = {lyap['T']:g} ({lyap['n_traj']} trajectories): "
              f"median {lyap['median']:.4f} (regular motion: about log(T)/T = {lyap['regular_reference']:.4f}); "
              f"chaotic fraction {lyap['chaotic_fraction']:.2f}")
    print(f"wrote {path} in {traj.attrs['seconds']:.1f} s")
    return 0


def _check_options(args: argparse.Namespace) -> None:
    """Names, counts and times: each a :class:`UsageError` naming the option."""
    from problems.systems import SYSTEMS

    from ..run import UsageError

    if args.system not in SYSTEMS:
        raise UsageError("SYSTEM", f"unknown system {args.system!r}; the catalogue has {', '.join(SYSTEMS)}")
    for key, val, lo in (("--n-traj", args.n_traj, 2), ("--n-times", args.n_times, 5), ("--n", args.n, 2)):
        if val < lo:
            raise UsageError(key, f"must be at least {lo}, got {val}")
    for key, val in (("--dt", args.dt), ("--amplitude", args.amplitude)):
        if not (math.isfinite(val) and val > 0):
            raise UsageError(key, f"must be a finite number > 0, got {val}")
    if not math.isfinite((args.n_times - 1) * args.dt):
        raise UsageError("--dt", f"the last sample time (n_times - 1) x dt = {args.n_times - 1} x {args.dt} is "
                                 f"not a finite number; lower --dt or --n-times")
    if args.max_step is not None:
        if not (math.isfinite(args.max_step) and args.max_step > 0):
            raise UsageError("--max-step", f"must be a finite number > 0, got {args.max_step}")
        if args.integrator == "dop853":
            raise UsageError("--max-step", "dop853 chooses its own steps (tolerances 1e-11); drop --max-step, "
                                           "or use --integrator yoshida4 or leapfrog")
    if not (math.isfinite(args.lyapunov) and args.lyapunov >= 0):
        raise UsageError("--lyapunov", f"must be a time T > 0 (or 0: off), got {args.lyapunov}")
    if args.lyapunov / LYAPUNOV_STEP > MAX_STEPS:
        raise UsageError("--lyapunov", f"T = {args.lyapunov:g} takes {args.lyapunov / LYAPUNOV_STEP:.3g} RK4 steps "
                                       f"of {LYAPUNOV_STEP}, more than {MAX_STEPS:.0e}; use a shorter T")
    if args.regime != "regular" and not args.system.startswith("fput"):
        raise UsageError("--regime", f"only the FPUT chains have a chaotic regime, not {args.system}; drop it")


def _check_device(name: str) -> None:
    from ..run import UsageError, resolve_device

    if resolve_device(name).type != "cpu" and name != "auto":
        raise UsageError("--device", f"{name}: simulate integrates on the CPU (NumPy/SciPy and small torch "
                                     f"batches); use --device cpu or leave it out")


def _check_out(out: str) -> tuple[Path, Path]:
    """``(output path, its nearest existing folder)``, after checking that the file can be created there."""
    from ..run import UsageError

    path = Path(out)
    if path.is_dir():
        raise UsageError("--out", f"{path} is a directory; give a file path such as {path / 'traj.h5'}")
    if path.exists() and not path.is_file():
        raise UsageError("--out", f"{path} exists and is not a regular file; choose another path")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UsageError("--out", f"{folder} is a file, so {path} cannot be created inside it; choose another path")
    try:  # the one reliable test (permissions, read-only mounts, root): create a file and remove it
        fd, probe = tempfile.mkstemp(prefix=".sciml-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError("--out", f"cannot write in {folder} ({e.strerror or e}); choose a writable folder") from None
    return path, folder


def _check_size(args: argparse.Namespace, folder: Path) -> None:
    """The output's size and the memory the integration needs, from the state dimension alone (an absurd
    ``--n`` must not build its system first)."""
    from problems.systems import HAS_N, scratch_values, state_dim

    from ..run import UsageError
    from ..run.resources import available_memory, format_bytes

    d = state_dim(args.system, args.n)
    values = args.n_traj * args.n_times * d
    size = 8 * (values + args.n_times)
    # the integrator's list of samples and their stack, the energy's temporaries (pairwise for Calogero)
    need = 8 * args.n_traj * args.n_times * (3 * d + scratch_values(args.system, args.n))
    avail = available_memory()
    if avail is not None and need > avail:
        opts = "--n / --n-traj / --n-times" if args.system in HAS_N else "--n-traj / --n-times"
        raise UsageError(opts, f"{args.n_traj} trajectories x {args.n_times} samples x state dimension {d} = "
                               f"{values:.3g} float64 values ({format_bytes(size)}); integrating them needs about "
                               f"{format_bytes(need)} of memory and {format_bytes(avail)} are available; lower "
                               f"them (runs with other --seed values give more trajectories)")
    free = shutil.disk_usage(folder).free
    if size > free:
        raise UsageError("--out", f"the file would take {format_bytes(size)}; {folder} has {format_bytes(free)} "
                                  f"free; choose another disk or fewer trajectories or samples")


def _integrator(args: argparse.Namespace, system):
    from ..run import UsageError
    from .integrators import INTEGRATORS, default_integrator

    if args.integrator == "auto":
        integ = default_integrator(system)
        if args.max_step is not None and hasattr(integ, "max_step"):
            integ = type(integ)(max_step=args.max_step)
    else:
        kw = {} if args.max_step is None else {"max_step": args.max_step}
        integ = INTEGRATORS.resolve(args.integrator, **kw)
    if hasattr(integ, "max_step"):
        steps = (args.n_times - 1) * math.ceil(args.dt / integ.max_step - 1e-12)
        if steps > MAX_STEPS:
            raise UsageError("--max-step", f"{args.n_times - 1} intervals of {args.dt} in steps of at most "
                                           f"{integ.max_step:g} take {steps:.3g} steps, more than {MAX_STEPS:.0e}; "
                                           f"raise --max-step or lower --n-times")
    return integ


def _generator(seed: int | None):
    from ..run import UsageError, seed_everything

    try:
        return seed_everything(0 if seed is None else seed)
    except (ValueError, OverflowError, RuntimeError):
        raise UsageError("--seed", f"must be a whole number that fits in 64 bits, got {seed}") from None


def _run(args: argparse.Namespace, system, integ, gen):
    """Integrate (and measure Lyapunov exponents); refuse non-finite results before anything is written."""
    import json

    import numpy as np
    import torch

    from ..run import UsageError
    from . import lyapunov_exponent, simulate
    from .integrators import IntegrationError
    from .system import RegionError

    try:
        traj = simulate(system, args.n_traj, args.n_times, args.dt, integrator=integ, generator=gen)
    except RegionError as e:
        raise UsageError("--amplitude", f"{e}; change --amplitude") from None
    except IntegrationError as e:
        raise UsageError("--integrator", f"{e}; try --integrator yoshida4 or a smaller --amplitude") from None
    except ValueError as e:
        raise UsageError("--integrator", str(e)) from None
    bad = ~np.isfinite(traj.X).all(axis=(1, 2))
    drift = traj.attrs["energy_drift"]
    if bad.any() or (system.hamiltonian is not None and not math.isfinite(drift)):
        what = (f"{int(bad.sum())} of {len(bad)} trajectories reached NaN/inf" if bad.any()
                else f"the energy is not finite (relative drift {drift})")
        raise UsageError("--amplitude", f"{what}: the states escape or overflow float64; lower --amplitude (or "
                                        f"--max-step, --dt); nothing was written")
    lyap = None
    if args.lyapunov > 0:
        x0 = torch.from_numpy(traj.X[:32, 0])
        try:
            res = lyapunov_exponent(system, x0, args.lyapunov, generator=gen)
        except FloatingPointError as e:
            raise UsageError("--lyapunov", f"{e}; lower --amplitude or T; nothing was written") from None
        lyap = {**res.summary(), "n_traj": len(x0)}
        traj.attrs["lyapunov"] = json.dumps(lyap)
    return traj, lyap
