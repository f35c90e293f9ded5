"""``sciml pinn train | transfer | family``: thin wrappers over :mod:`sciml.pinn` and :mod:`sciml.transfer`.

All three run data-parallel under ``torchrun`` (see :mod:`sciml.run.distributed`): ``train`` and
``transfer`` shard the collocation points, ``family`` spreads the members over the ranks.
"""

from __future__ import annotations

import time
from pathlib import Path


def _setup(args):
    """Threads, then the process group (a one-process context without torchrun)."""
    import torch

    from sciml.run.distributed import init_distributed

    if args.threads:
        torch.set_num_threads(args.threads)
    return init_distributed(args.device, args.backend)


def _load(args):
    from sciml.run import load_config

    from .config import PINNConfig

    over = {}
    if args.seed is not None:
        over["seed"] = args.seed
    if getattr(args, "iters", None) is not None:
        over["optim.iters"] = args.iters
    if getattr(args, "method", None):
        over["transfer.method"] = args.method
    targets = getattr(args, "targets", None) or ([args.target] if getattr(args, "target", None) is not None else None)
    if targets:
        over["transfer.targets"] = list(targets)
    return load_config(args.config, PINNConfig, overrides=over)


def _report(res, label: str, dist) -> int:
    code = 0 if res.ok or res.status.value == "interrupted" else 1
    if not dist.is_main:
        return code
    m = res.metrics
    tr = res.extra.get("trainer")
    rel = m.get("rel_l2")
    print(f"{label}: {res.status.value}: {res.message}")
    if rel is not None:
        print(f"  test relative L2 ||e||/||u|| = {rel:.4g}   (squared, the paper code's 'relative error': "
              f"{m.get('rel_l2_sq', float('nan')):.4g})")
    if tr is not None:
        print(f"  trainable parameters {tr.par.n_trainable}, training time {tr.train_seconds:.1f} s")
    if "member_errors" in res.extra:
        for v, e in res.extra["member_errors"].items():
            print(f"  member {v:g}: relative L2 {e:.4g}")
    if dist.distributed:
        print(f"  processes: {dist.world_size} ({dist.backend})")
    if res.run_dir is not None:
        print(f"  run directory: {res.run_dir}")
    return code


def cmd_train(args) -> int:
    from .api import train

    cfg = _load(args)
    dist = _setup(args)
    out = args.out or _stamped(dist, f"runs/pinn_{cfg.problem.family}_{cfg.problem.value:g}_d{cfg.problem.d}")
    res = train(cfg, run_dir=out, resume=args.resume, dist=dist)
    dist.close()  # not on an exception: torchrun stops the other ranks then
    return _report(res, "pinn train", dist)


def _stamped(dist, stem: str) -> str:
    """``stem_<time>``, rank 0's time on every rank (one run directory)."""
    return dist.broadcast_object(f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}")


def _from_pretrained(args, solve, suffix: str, label: str) -> int:
    """Shared body of ``transfer`` and ``family``: load the pre-trained run, solve, report."""
    from .api import load_pretrained

    cfg = _load(args)
    dist = _setup(args)
    pre = load_pretrained(args.source, device=dist.device)
    out = args.out or str(Path(args.source).parent / f"{Path(args.source).name}_{suffix(cfg)}_{cfg.transfer.method}")
    res = solve(pre, cfg, run_dir=out, resume=args.resume, dist=dist)
    dist.close()
    return _report(res, label, dist)


def cmd_transfer(args) -> int:
    from sciml.transfer import transfer

    return _from_pretrained(args, transfer, lambda cfg: f"to_{cfg.transfer.targets[0]:g}", "pinn transfer")


def cmd_family(args) -> int:
    from sciml.transfer import solve_family

    return _from_pretrained(args, solve_family, lambda cfg: "family", "pinn family")


def register(subparsers) -> None:
    from sciml.cli import add_common

    p = subparsers.add_parser("pinn", help="PINNs for evolution PDEs; SVD-PINN transfer; family runs")
    sub = p.add_subparsers(dest="pinn_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1], data_parallel=True)

    t = sub.add_parser("train", help="train a PINN from a TOML config (configs/pinn/*.toml)")
    t.add_argument("config", help="TOML config")
    t.add_argument("--out", default=None, help="run directory (default: runs/pinn_<family>_<value>_d<d>_<time>)")
    t.add_argument("--iters", type=int, default=None, help="override optim.iters")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    add_common(t)
    t.set_defaults(func=cmd_train)

    for name, fn, helptext in (("transfer", cmd_transfer, "transfer a trained PINN to another family member"),
                               ("family", cmd_family, "transfer to K family members at once (vmapped)")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--from", dest="source", required=True, help="run directory of a finished `pinn train`")
        q.add_argument("--config", required=True, help="TOML config (its [transfer] table, sampling, optim, loss)")
        q.add_argument("--method", default=None,
                       help="override transfer.method: svd | sigma_only | full | last_layer | frozen_hidden | scratch")
        if name == "transfer":
            q.add_argument("--target", type=float, default=None, help="override transfer.targets with one value")
        else:
            q.add_argument("--targets", type=float, nargs="+", default=None, help="override transfer.targets")
        q.add_argument("--out", default=None, help="run directory")
        q.add_argument("--iters", type=int, default=None, help="override optim.iters")
        q.add_argument("--resume", action="store_true")
        add_common(q)
        q.set_defaults(func=fn)
