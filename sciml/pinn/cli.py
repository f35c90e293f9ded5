"""``sciml pinn train | transfer | family``: thin wrappers over ``sciml.fit`` with :class:`~sciml.pinn.PINN`,
:class:`~sciml.transfer.Transfer` and :class:`~sciml.transfer.Family`.

The command line is where catalogue names become problems: ``problem.family`` (and the pre-trained
run's family for ``transfer``/``family``) must name a family of ``problems/pdes.py``, or, with
``problem.kind = "stationary"``, a benchmark of ``problems/highd.py`` (``poisson_two_body``,
``sine_gordon_two_body``, ...; ``problem.value`` is then the seed of its coefficients). The config's
``optim.max_seconds`` is the budget unless ``--max-seconds`` is given.

All three run data-parallel under ``torchrun`` (see :mod:`sciml.run.distributed`): ``train`` and
``transfer`` shard the collocation points, ``family`` spreads the members over the ranks.
"""

from __future__ import annotations

import time
from pathlib import Path


def problem_from_config(family: str, value: float, d: int, kind: str = "evolution"):
    """The catalogue's member of ``family`` at ``value`` in dimension ``d``; for ``kind = "stationary"``
    the benchmark ``family`` of ``problems/highd.py`` in R^d with coefficient seed ``value``.

    Raises:
        ConfigError: ``family`` is not a family of ``problems/pdes.py`` (a benchmark of ``problems/highd.py``).
    """
    from problems.pdes import FAMILIES, family_member
    from sciml.run import ConfigError

    if kind == "stationary":
        from problems.highd import BENCHMARKS, benchmark

        if family not in BENCHMARKS:
            raise ConfigError("problem.family", f"unknown stationary benchmark {family!r}; choose one of "
                                                f"{sorted(BENCHMARKS)} (problems/highd.py), or train your own "
                                                "StationaryProblem with sciml.fit")
        if value != int(value) or value < 0:
            raise ConfigError("problem.value", f"is the seed of the benchmark's coefficients, a whole number >= 0; "
                                               f"got {value:g}")
        try:
            return benchmark(family, d, int(value)).pinn_problem()
        except ValueError as e:
            raise ConfigError("problem.d", str(e)) from None

    if family not in FAMILIES:
        raise ConfigError("problem.family", f"unknown PDE family {family!r}; choose one of {sorted(FAMILIES)} "
                                            "(problems/pdes.py), or train your own PDEProblem with sciml.fit")
    return family_member(family, value, d)


def _config(args, **flags):
    """The run config from the file, the named flags (config key -> value), ``--seed`` and ``--set``."""
    from sciml.cli import config_overrides
    from sciml.run import load_config
    from sciml.transfer import TransferRunConfig

    # one file serves every pinn command: `train` keeps the [transfer] table in its record, unused
    return load_config(args.config, TransferRunConfig, overrides=config_overrides(args, **flags))


def _fit(args, method, cfg, problem, default_out, **options) -> int:
    """Check the resumed checkpoint, start the process group, ``fit``, report on rank 0."""
    from sciml import fit
    from sciml.cli import fit_options, report
    from sciml.run import UsageError
    from sciml.run.distributed import init_distributed

    from .method import check_resume_checkpoint

    if args.resume and args.out is None:
        raise UsageError("--resume", "needs the run directory to continue: pass it with --out")
    if args.resume:
        check_resume_checkpoint(args.out, method.command)
    dist = init_distributed(args.device, args.backend)
    out = args.out if args.out is not None else default_out(dist)
    opts = {**fit_options(args), "out": out}
    if opts["max_seconds"] is None:  # the flag wins over the config's budget
        opts["max_seconds"] = cfg.optim.max_seconds
    res = fit(method, cfg, problem, dist=dist, **opts, **options)
    dist.close()  # not on an exception: torchrun stops the other ranks then
    if not dist.is_main:
        return res.exit_code
    return report(res, method.command, _lines(res, dist))


def _lines(res, dist) -> list[str]:
    m, p = res.metrics, res.payload
    lines = []
    if m.get("rel_l2") is not None:
        lines.append(f"test relative L2 ||e||/||u|| = {m['rel_l2']:.4g}   (squared, the paper code's 'relative "
                     f"error': {m.get('rel_l2_sq', float('nan')):.4g})")
    if p is not None:
        lines.append(f"trainable parameters {p.n_trainable}, training time {p.train_seconds:.1f} s")
        lines += [f"member {name}: relative L2 {e:.4g}" for name, e in getattr(p, "member_errors", {}).items()]
    if dist.distributed:
        lines.append(f"processes: {dist.world_size} ({dist.backend})")
    return lines


def _stamped(stem: str):
    """``stem_<time>``, rank 0's time on every rank (one run directory)."""
    return lambda dist: dist.broadcast_object(f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}")


def cmd_train(args) -> int:
    from .method import PINN

    cfg = _config(args, **{"optim.iters": args.iters})
    p = cfg.problem
    problem = problem_from_config(p.family, p.value, p.d, p.kind)
    return _fit(args, PINN, cfg, problem, _stamped(f"runs/pinn_{p.family}_{p.value:g}_d{p.d}"))


def _source_and_config(args, **flags):
    """The pre-trained network (``--from``) and the run config; the family and d are the source's."""
    from .method import PINN

    cfg = _config(args, **{"optim.iters": args.iters, "transfer.method": args.method, **flags})
    source = PINN.load(args.source)
    if source.stationary:
        from sciml.run import UsageError

        raise UsageError("--from", f"{args.source} is a stationary run ({source.problem}); transfer and family "
                                   "runs of stationary problems are not implemented: train each with `pinn train`")
    return source, cfg, source.config.problem


def cmd_transfer(args) -> int:
    from sciml.transfer import Transfer

    source, cfg, sp = _source_and_config(
        args, **{"transfer.targets": [args.target] if args.target is not None else None})
    target = cfg.transfer.targets[0]
    src = Path(args.source)
    default = src.parent / f"{src.name}_to_{target:g}_{cfg.transfer.method}"
    return _fit(args, Transfer, cfg, problem_from_config(sp.family, target, sp.d), lambda dist: str(default),
                source=source)


def cmd_family(args) -> int:
    from sciml.transfer import Family

    source, cfg, sp = _source_and_config(args, **{"transfer.targets": args.targets})
    members = [problem_from_config(sp.family, v, sp.d) for v in cfg.transfer.targets]
    src = Path(args.source)
    default = src.parent / f"{src.name}_family_{cfg.transfer.method}"
    return _fit(args, Family, cfg, members, lambda dist: str(default), source=source)


def register(subparsers) -> None:
    from sciml.cli import add_training_args
    from sciml.transfer import TRANSFER_STRATEGIES

    p = subparsers.add_parser("pinn", help="PINNs for evolution and stationary PDEs; SVD-PINN transfer; family runs")
    sub = p.add_subparsers(dest="pinn_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1], data_parallel=True)

    t = sub.add_parser("train", help="train a PINN from a TOML config (configs/pinn/*.toml)")
    t.add_argument("config", help="TOML config")
    t.add_argument("--iters", type=int, default=None, help="set optim.iters")
    add_training_args(t, data_parallel=True)
    t.set_defaults(func=cmd_train, data_parallel=True)

    for name, fn, helptext in (("transfer", cmd_transfer, "transfer a trained PINN to another family member"),
                               ("family", cmd_family, "transfer to K family members at once (vmapped)")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("--from", dest="source", required=True,
                       help="run directory of a finished `pinn train` (or `pinn transfer`)")
        q.add_argument("--config", required=True, help="TOML config (its [transfer] table, sampling, optim, loss)")
        q.add_argument("--method", default=None, choices=TRANSFER_STRATEGIES.names(), help="set transfer.method")
        if name == "transfer":
            q.add_argument("--target", type=float, default=None, help="set transfer.targets to this one value")
        else:
            q.add_argument("--targets", type=float, nargs="+", default=None, help="set transfer.targets")
        q.add_argument("--iters", type=int, default=None, help="set optim.iters")
        add_training_args(q, data_parallel=True)
        q.set_defaults(func=fn, data_parallel=True)
