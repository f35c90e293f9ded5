"""``sciml heavytail train`` and ``sciml heavytail sample``.

Examples::

    sciml heavytail train --problem student_t --nu 1.5 --dim 2 --model particles --alpha 2 --lipschitz 1 --out runs/t15
    sciml heavytail train --data returns.npy --model gan --config gan.toml --out runs/returns
    sciml heavytail sample runs/t15 -n 5000 --out samples.h5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def register(subparsers) -> None:
    from ..cli import add_common

    p = subparsers.add_parser("heavytail", help="heavy-tailed generative models (W-proximal alpha-divergences)")
    sub = p.add_subparsers(dest="heavytail_command", metavar="ACTION")
    p.set_defaults(single_process="the generator/critic updates alternate in one process; their batches fit "
                                  "one device")
    pt = sub.add_parser("train", help="train a GAN, particle flow or normalising flow on heavy-tailed samples")
    src = pt.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="samples file: .npy, .npz or .h5 (dataset --dataset), shape (n,) or (n, D)")
    src.add_argument("--problem", choices=("student_t", "cauchy_power", "pareto", "mixed"), help="built-in target")
    pt.add_argument("--dataset", default="samples", help="HDF5/npz dataset name (default: samples)")
    pt.add_argument("--nu", type=float, default=1.5, help="tail index of the built-in problem (default 1.5)")
    pt.add_argument("--dim", type=int, default=2, help="dimension of the built-in problem (default 2)")
    pt.add_argument("--embed-dim", type=int, default=None, help="cauchy_power: ambient dimension")
    pt.add_argument("--n-data", type=int, default=10000, help="samples drawn from the built-in problem")
    pt.add_argument("--config", help="TOML config (keys of HeavyTailConfig; flags override it)")
    pt.add_argument("--model", choices=("gan", "particles", "flow"))
    pt.add_argument("--alpha", type=float, help="alpha of the divergence (1 = KL)")
    pt.add_argument("--lipschitz", type=float, help="L of the W1 proximal")
    pt.add_argument("--constraint", choices=("gp", "spectral", "none"))
    pt.add_argument("--steps", type=int)
    pt.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any config key, dotted for tables, e.g. --set particles.dt=2 (value parsed as TOML)")
    pt.add_argument("--out", required=True, help="run directory")
    pt.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    add_common(pt)
    pt.set_defaults(func=cmd_train)
    ps = sub.add_parser("sample", help="draw samples from a trained run into an HDF5 file")
    ps.add_argument("run", help="run directory written by 'heavytail train'")
    ps.add_argument("-n", type=int, default=10000, help="number of samples")
    ps.add_argument("--out", required=True, help="output .h5 (dataset 'samples')")
    add_common(ps)
    ps.set_defaults(func=cmd_sample)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from problems.heavy_tails import make_problem

    from ..io import load_array
    from ..run import ConfigError, load_config, parse_overrides
    from .config import HeavyTailConfig
    from .train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in ("model", "alpha", "lipschitz", "constraint", "steps")
                 if getattr(args, k) is not None}
    if args.seed is not None:
        overrides["seed"] = args.seed
    overrides.update(parse_overrides(args.set))
    cfg = load_config(args.config if args.config else {}, HeavyTailConfig, overrides=overrides)
    problem = None
    if args.data:
        data = load_array(args.data, dataset=args.dataset, ndim=(1, 2), min_rows=50)
    else:
        try:
            problem = make_problem(args.problem, nu=args.nu, dim=args.dim, embed_dim=args.embed_dim)
        except ValueError as e:
            raise ConfigError("problem", str(e)) from None
        data = problem.sample(args.n_data, np.random.default_rng(cfg.seed + 12345))
    res = train(cfg, data, run=args.out, device=args.device, problem=problem, resume=args.resume)
    print(f"{res.status.value}: {res.message}")
    keys = ("hill", "true_index", "hill_error", "ccdf_l1", "nonfinite", "sw_body", "seconds")
    print(json.dumps({k: round(res.metrics[k], 4) for k in keys if k in res.metrics}))
    print(f"run: {Path(args.out).resolve()}")
    return 0 if res.ok else 1


def cmd_sample(args: argparse.Namespace) -> int:
    from ..run import ConfigError, atomic_h5
    from .train import sample

    if args.n < 1:
        raise ConfigError("n", f"must be >= 1, got {args.n}")
    x = sample(args.run, args.n, seed=args.seed or 0, device=args.device)
    with atomic_h5(args.out) as fh:
        fh.create_dataset("samples", data=x)
        fh.attrs["run"] = str(Path(args.run).resolve())
    print(f"wrote {x.shape[0]} samples of dimension {x.shape[1]} to {args.out}")
    return 0
