"""The ``sciml`` command line: thin wrappers over the library.

Each method contributes its commands from its own module, listed in ``COMMAND_MODULES``; a module
exposes ``register(subparsers)`` adding parsers whose ``func(args) -> int`` does the work. Demo
sections are listed in ``DEMO_MODULES``; each exposes ``demo(args) -> bool`` (True: passed).

A demo section reads its own table of ``sciml demo --config FILE`` from ``args.demo_config[name]``
with ``load_config(table, Cls, prefix=f"{name}.", source_name=args.config)``.

Errors a user can fix (bad config, bad data file, missing device) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

from . import __version__

# wing command modules, registered in this order; a missing module is skipped (not yet built)
COMMAND_MODULES = (
    "sciml.pinn.cli",          # sciml pinn train / transfer / family
    "sciml.dynamics.cli",      # sciml simulate
    "sciml.conservation.cli",  # sciml discover
    "sciml.score.cli",         # sciml score train / sample
    "sciml.heavytail.cli",     # sciml heavytail train / sample
)
# demo sections, run in this order by `sciml demo`
DEMO_MODULES = (
    "sciml.autodiff.demo",
    "sciml.pinn.demo",
    "sciml.conservation.demo",
    "sciml.score.demo",
    "sciml.heavytail.demo",
)

def _user_errors() -> tuple[type[BaseException], ...]:
    from .run.distributed import DistributedUnsupported
    from .run.errors import UserError

    return (UserError, DistributedUnsupported)


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            return None
        raise


def add_common(p: argparse.ArgumentParser, *, data_parallel: bool = False) -> None:
    """Runtime flags every command that computes shares: ``--device``, ``--seed``, ``--threads``
    (and ``--backend`` for the commands that run data-parallel under torchrun)."""
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    if data_parallel:
        p.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"),
                       help="torch.distributed backend under torchrun (auto: nccl on cuda, gloo on cpu)")


def add_training_args(p: argparse.ArgumentParser, *, out_required: bool = False, data_parallel: bool = False) -> None:
    """The flags of every training command, one syntax for all wings: :func:`add_common` plus
    ``--out``, ``--resume``, ``--max-seconds``, ``--stop-at`` and ``--set KEY=VALUE``."""
    add_common(p, data_parallel=data_parallel)
    p.add_argument("--out", required=out_required, default=None, help="run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its latest checkpoint (its config must match)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an --out that already holds a run")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="wall-clock budget of the training; a resumed run keeps what is left of it")
    p.add_argument("--stop-at", type=int, default=None, help=argparse.SUPPRESS)  # planned interruption (tests)
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="any config key, dotted for tables, e.g. --set optim.lr=1e-3 model.width=64 "
                        "(values are read as TOML; repeat --set or list several)")


def config_overrides(args: argparse.Namespace, **flags: object) -> dict:
    """Config overrides from a training command's arguments: the named ``flags`` (config key ->
    value, ``None`` skipped), then ``--seed``, then every ``--set`` (which wins)."""
    from .run import parse_overrides

    over = {k: v for k, v in flags.items() if v is not None}
    if getattr(args, "seed", None) is not None:
        over["seed"] = args.seed
    over.update(parse_overrides(getattr(args, "set", None)))
    return over


def fit_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`sciml.fit` that every training command takes from its flags."""
    return {"out": args.out, "resume": args.resume, "stop_at": args.stop_at, "max_seconds": args.max_seconds,
            "device": args.device, "threads": args.threads, "overwrite": getattr(args, "overwrite", False)}


def report(res, label: str, lines: list[str] | None = None) -> int:
    """Print a training result the same way for every wing; return the exit code of its status."""
    print(f"{label}: {res.status.value}: {res.message}")
    for line in lines or []:
        print(f"  {line}")
    if res.run_dir is not None:
        print(f"  run directory: {res.run_dir}")
    if res.remedy:
        print(f"  next: {res.remedy}")
    return res.exit_code


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    print(f"sciml {__version__}")
    print(f"python {platform.python_version()} ({sys.executable})")
    print(f"torch {torch.__version__}")
    cuda = torch.cuda.is_available()
    print(f"device: {'cuda (' + torch.cuda.get_device_name(0) + ')' if cuda else 'cpu'}"
          f"{' [cuda available]' if cuda else ' [no cuda]'}")
    print(f"threads: {torch.get_num_threads()} (cpu count {os.cpu_count()})")
    for mod in COMMAND_MODULES:
        print(f"  {mod:<24} {'available' if _optional(mod) else 'not built yet'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .run import resolve_device, set_threads

    resolve_device(args.device)
    args.demo_config = _demo_config(args.config)
    set_threads(args.threads)
    ok = True
    t_all = time.perf_counter()
    for name in DEMO_MODULES:
        if args.only and not any(o in name for o in args.only):
            continue  # before importing: a broken section must not stop the others
        mod = _optional(name)
        if mod is None:
            continue
        t0 = time.perf_counter()
        print(f"\n== {name.split('.')[1]} ==", flush=True)
        passed = bool(mod.demo(args))
        ok &= passed
        print(f"-- {'ok' if passed else 'FAILED'} in {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"\ndemo {'passed' if ok else 'FAILED'} in {time.perf_counter() - t_all:.1f} s")
    return 0 if ok else 1


def _demo_config(path: str | None) -> dict:
    """Read ``sciml demo --config FILE``: one [table] per demo section (e.g. [autodiff], [pinn])."""
    if path is None:
        return {}
    from .run import ConfigError, read_toml

    data = read_toml(path)
    sections = [m.split(".")[1] for m in DEMO_MODULES]
    for key, value in data.items():
        if key not in sections or not isinstance(value, dict):
            raise ConfigError(key, f"unknown demo section; use tables named {sections}", str(path))
    return data


class OneLineParser(argparse.ArgumentParser):
    """Argument errors are one line too (``error: ...; see 'sciml X --help'``), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="sciml", description="Scientific machine learning on one torch.func core.")
    p.add_argument("--version", action="version", version=f"sciml {__version__}")
    p.add_argument("--log-level", default="INFO", help="DEBUG | INFO | WARNING")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    pi = sub.add_parser("info", help="versions, device and threads")
    pi.set_defaults(func=cmd_info)
    pd = sub.add_parser("demo", help="a short tour of every method (a few minutes on CPU)")
    add_common(pd)
    pd.add_argument("--only", nargs="*", default=None, help="run only sections whose name contains these")
    pd.add_argument("--out", default="runs/demo", help="where demo runs are written")
    pd.add_argument("--config", default=None, help="TOML with one [table] per section, e.g. [autodiff] dim = 100")
    pd.set_defaults(func=cmd_demo, single_process="it is a tour of small single-process runs")
    for name in COMMAND_MODULES:
        mod = _optional(name)
        if mod is not None:
            mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .run import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    setup_logging(args.log_level)
    from .run import tune_allocator

    tune_allocator()
    try:
        if not getattr(args, "data_parallel", False):
            from .run.distributed import require_single_process

            name = " ".join(str(v) for k, v in vars(args).items() if (k == "command" or k.endswith("_command")) and v)
            require_single_process(name, getattr(args, "single_process", "it has no data-parallel mode"))
        return int(args.func(args) or 0)
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
