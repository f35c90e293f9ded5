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
    "sciml.divergence.cli",    # sciml heavytail train / sample
)
# demo sections, run in this order by `sciml demo`
DEMO_MODULES = (
    "sciml.autodiff.demo",
    "sciml.pinn.demo",
    "sciml.conservation.demo",
    "sciml.score.demo",
    "sciml.divergence.demo",
)

def _user_errors() -> tuple[type[BaseException], ...]:
    from .run import ConfigError, DeviceError

    from .run.distributed import DistributedUnsupported

    errs: list[type[BaseException]] = [ConfigError, DeviceError, DistributedUnsupported]
    try:
        from .io import DataError

        errs.append(DataError)
    except ImportError:
        pass
    return tuple(errs)


def _optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            return None
        raise


def add_common(p: argparse.ArgumentParser) -> None:
    """Flags every training command shares."""
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto (default: cpu)")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"),
                   help="torch.distributed backend under torchrun (auto: nccl on cuda, gloo on cpu)")


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
    import torch

    from .run import resolve_device

    resolve_device(args.device)
    args.demo_config = _demo_config(args.config)
    if args.threads:
        torch.set_num_threads(args.threads)
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
    import tomllib
    from pathlib import Path

    from .run import ConfigError

    p = Path(path)
    if not p.is_file():
        raise ConfigError("<file>", f"config file {p} does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("<file>", f"not valid TOML ({e})", str(p)) from None
    sections = [m.split(".")[1] for m in DEMO_MODULES]
    for key, value in data.items():
        if key not in sections or not isinstance(value, dict):
            raise ConfigError(key, f"unknown demo section; use tables named {sections}", str(p))
    return data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml", description="Scientific machine learning on one torch.func core.")
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
