"""``sciml heavytail train`` and ``sciml heavytail sample``.

Examples::

    sciml heavytail train --problem student_t --nu 1.5 --dim 2 --model particles --alpha 2 --lipschitz 1 --out runs/t15
    sciml heavytail train --data returns.npy --model gan --config gan.toml --set critic.steps=3 --out runs/returns
    sciml heavytail sample runs/t15 -n 5000 --out samples.h5
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["register", "MAX_SAMPLE_BYTES"]

#: the most one ``sample`` call writes (float64): larger draws go into several files with different --seed
MAX_SAMPLE_BYTES = 4 * 2**30

_SUMMARY = ("hill", "true_index", "hill_error", "ccdf_l1", "nonfinite", "sw_body")


def register(subparsers) -> None:
    from problems.heavy_tails import PROBLEMS

    from ..cli import add_common, add_training_args
    from .constraints import CONSTRAINTS
    from .objectives import DIVERGENCES
    from .strategies import MODELS

    p = subparsers.add_parser("heavytail", help="heavy-tailed generative models (W-proximal alpha-divergences)")
    sub = p.add_subparsers(dest="heavytail_command", metavar="ACTION")
    p.set_defaults(single_process="the generator/critic updates alternate in one process; their batches fit "
                                  "one device")
    pt = sub.add_parser("train", help="train a GAN, particle flow or normalising flow on heavy-tailed samples")
    src = pt.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="samples file: .npy, .npz or .h5 (dataset --dataset), shape (n,) or (n, D)")
    src.add_argument("--problem", choices=PROBLEMS.names(), help="built-in target")
    pt.add_argument("--dataset", default="samples", help="HDF5/npz dataset name (default: samples)")
    pt.add_argument("--nu", type=float, default=1.5, help="tail index of the built-in problem (default 1.5)")
    pt.add_argument("--dim", type=int, default=2, help="dimension of the built-in problem (default 2)")
    pt.add_argument("--embed-dim", type=int, default=None, help="cauchy_power: ambient dimension")
    pt.add_argument("--n-data", type=int, default=10000, help="samples drawn from the built-in problem")
    pt.add_argument("--config", help="TOML config (keys of HeavyTailConfig; flags and --set override it)")
    pt.add_argument("--model", choices=MODELS.names(), help="the generator (config key model)")
    pt.add_argument("--divergence", choices=DIVERGENCES.names(), help="the critic's objective (config key divergence)")
    pt.add_argument("--alpha", type=float, help="alpha of the divergence (1 = KL)")
    pt.add_argument("--lipschitz", type=float, help="L of the W1 proximal")
    pt.add_argument("--constraint", choices=CONSTRAINTS.names(), help="how the critic is kept L-Lipschitz")
    pt.add_argument("--steps", type=int, help="generator / particle / flow steps")
    add_training_args(pt, out_required=True)
    pt.set_defaults(func=cmd_train)
    ps = sub.add_parser("sample", help="draw samples from a trained run into an HDF5 file")
    ps.add_argument("run", help="run directory written by 'heavytail train'")
    ps.add_argument("-n", type=int, default=10000, help="number of samples (default 10000)")
    ps.add_argument("--out", required=True, help="output .h5 (dataset 'samples')")
    add_common(ps)
    ps.set_defaults(func=cmd_sample)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])


def _problem_data(args: argparse.Namespace, cfg):
    """``(samples, problem)`` drawn from the catalogue, after checking that they fit in memory."""
    import numpy as np

    from problems.heavy_tails import make_problem

    from ..run import UsageError, derive_seed, require_memory, resolve_device
    from .data import MIN_ROWS, training_bytes

    if not (math.isfinite(args.nu) and args.nu > 0):
        raise UsageError("--nu", f"the tail index must be a finite number > 0, got {args.nu}")
    if args.dim < 1:
        raise UsageError("--dim", f"must be >= 1, got {args.dim}")
    if args.n_data < MIN_ROWS:
        raise UsageError("--n-data", f"must be >= {MIN_ROWS} (fewer samples cannot show a tail), got {args.n_data}")
    if args.embed_dim is not None and args.problem != "cauchy_power":
        raise UsageError("--embed-dim", "only cauchy_power has an ambient dimension; drop --embed-dim")
    if args.embed_dim is not None and args.embed_dim < args.dim:
        raise UsageError("--embed-dim", f"must be >= --dim ({args.dim}), got {args.embed_dim}")
    dim = args.embed_dim or args.dim
    # before the problem exists: its factory allocates per-dimension tables, the sampler n x D numbers
    require_memory(training_bytes(cfg, args.n_data, dim), resolve_device(args.device),
                   option="--n-data" if args.n_data > dim else "--embed-dim" if args.embed_dim else "--dim",
                   what=f"training a {cfg.model} on --n-data {args.n_data} samples of dimension {dim}",
                   fix="lower the dimension or --n-data")
    problem = make_problem(args.problem, nu=args.nu, dim=args.dim, embed_dim=args.embed_dim)
    rng = np.random.default_rng(derive_seed(cfg.seed, "heavytail", "data"))
    return problem.sample(args.n_data, rng), problem


def cmd_train(args: argparse.Namespace) -> int:
    from ..cli import config_overrides, fit_options, report
    from ..io import load_array
    from ..run import fit, load_config
    from .config import HeavyTailConfig
    from .data import MIN_ROWS, prepare_data
    from .method import HeavyTail

    over = config_overrides(args, model=args.model, divergence=args.divergence, alpha=args.alpha,
                            lipschitz=args.lipschitz, constraint=args.constraint, steps=args.steps)
    cfg = load_config(args.config if args.config else {}, HeavyTailConfig, overrides=over)
    if args.data:
        arr = load_array(args.data, dataset=args.dataset, ndim=(1, 2), min_rows=MIN_ROWS)
        data, problem = prepare_data(arr, source=args.data), None
    else:
        data, problem = _problem_data(args, cfg)
    res = fit(HeavyTail, cfg, data, problem=problem, **fit_options(args))
    m = res.metrics
    line = ", ".join(f"{k} {m[k]:.4g}" for k in _SUMMARY if k in m)
    return report(res, f"heavytail train ({cfg.model})", [line] if line else [])


def _check_out(out: Path) -> None:
    from ..run import UsageError

    if out.is_dir():
        raise UsageError("--out", f"{out} is a folder; give a file name such as {out / 'samples.h5'}")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError("--out", f"{parent} is a file, not a folder; choose another output path")


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..run import UsageError, atomic_h5, format_bytes, set_threads
    from .method import HeavyTail

    set_threads(args.threads)
    if args.n < 1:
        raise UsageError("-n", f"must be >= 1, got {args.n}")
    out = Path(args.out)
    _check_out(out)
    model = HeavyTail.load(args.run, device=args.device)
    if model.capacity is not None and args.n > model.capacity:
        raise UsageError("-n", f"the particle flow in {args.run} has {model.capacity} particles; ask for at most "
                               "that many (or train with more particles: --set particles.n_particles=...)")
    size = 8 * args.n * model.dim
    if size > MAX_SAMPLE_BYTES:
        raise UsageError("-n", f"{args.n} samples of dimension {model.dim} take {format_bytes(size)}, more than the "
                               f"{format_bytes(MAX_SAMPLE_BYTES)} one file holds; draw them into several files "
                               "with different --seed")
    g = torch.Generator(device=model.device).manual_seed(args.seed if args.seed is not None else 0)
    x = model.sample(args.n, generator=g).cpu().numpy().astype(np.float64)
    with atomic_h5(out) as fh:
        fh.create_dataset("samples", data=x)
        fh.attrs["run"] = str(Path(args.run).resolve())
    print(f"wrote {x.shape[0]} samples of dimension {x.shape[1]} to {out}")
    return 0
