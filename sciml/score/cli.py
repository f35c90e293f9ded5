"""``sciml score train`` and ``sciml score sample``: thin wrappers over :mod:`sciml.score.train`.

    sciml score train --problem mixture2d --sde nonlinear --steps 3000 --out runs/ndsm
    sciml score train --data samples.h5 --sde linear --config my.toml --set train.lr=1e-3
    sciml score sample runs/ndsm -n 10000 --out samples.h5 --sampler heun
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import torch

__all__ = ["register", "PROBLEMS", "load_problem"]

SDE_CHOICES = {"linear": ("vp", "dsm"), "ve": ("ve", "dsm"), "nonlinear": ("langevin_gmm", "ndsm")}
PROBLEMS = ("mixture2d", "mixture10d", "latent10d", "digits", "digits_reflected")


def load_problem(name: str, n: int, generator: torch.Generator):
    """``(data, mixture or None, labels or None)`` for a named problem."""
    from problems import mixtures as pm

    if name in pm.MIXTURES:
        prob = pm.MIXTURES[name]()
        return prob.sample(n, generator=generator), prob, None
    if name == "digits":
        x, y = pm.digits(return_labels=True)
        return x, None, y
    if name == "digits_reflected":
        x, y = pm.digits_reflected()
        return x, None, y
    from ..run import ConfigError

    raise ConfigError("--problem", f"unknown problem {name!r}; choose one of {list(PROBLEMS)}")


def _file_keys(path: str | None) -> set[str]:
    """Dotted keys set in a TOML config file (empty if none or unreadable; load_config reports errors)."""
    if not path:
        return set()
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return set()
    out: set[str] = set()

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out.add(f"{prefix}{k}")

    walk(data)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from problems.mixtures import load_samples

    from ..metrics import mmd, sliced_wasserstein
    from ..run import ConfigError, RunDir, load_config, parse_overrides, resolve_device
    from .metrics import mode_coverage, mode_weights, weight_error
    from .train import ScoreConfig, train

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.data is None) == (args.problem is None):
        raise ConfigError("--data/--problem", "give exactly one of --data FILE or --problem NAME")
    overrides = parse_overrides(args.set)
    if args.sde:
        kind, objective = SDE_CHOICES[args.sde]
        overrides.setdefault("sde.kind", kind)
        overrides.setdefault("train.objective", objective)
    for flag, key in (("steps", "train.steps"), ("seed", "seed"), ("control_variates", "train.control_variates"),
                      ("batch_size", "train.batch_size")):
        if getattr(args, flag, None) is not None:
            overrides[key] = getattr(args, flag)
    mixture = labels = None
    if args.data:
        data = load_samples(args.data, dataset=args.dataset, min_rows=args.min_samples)
    else:
        gen = torch.Generator().manual_seed(overrides.get("seed", 0) + 12345)
        data, mixture, labels = load_problem(args.problem, args.n_data, gen)
    file_keys = _file_keys(args.config)

    def default(key, value):  # a problem-dependent default, unless the file or --set gives one
        if key not in file_keys:
            overrides.setdefault(key, value)

    if data.dim() == 4:
        default("model.arch", "unet")
        # images: near-constant pixels make full-covariance components singular and the drift stiff
        default("sde.covariance", "diag")
        default("sde.reg_covar", 0.05)
    if labels is not None:
        default("sde.n_components", int(labels.unique().numel()))
    if mixture is not None:  # one GMM component per true mode unless told otherwise
        default("sde.n_components", mixture.n_components)
    cfg = load_config(args.config if args.config else {}, ScoreConfig, overrides=overrides)
    run = RunDir(args.out)
    t0 = time.perf_counter()
    res = train(cfg, data, run=run, device=device, resume=args.resume)
    seconds = time.perf_counter() - t0
    print(f"{res.status.value}: {res.message} ({seconds:.1f} s) -> {run.path}")
    if not res.ok:
        return 1
    summary = {"train_seconds": seconds, **res.metrics}
    if args.eval > 0:
        srun = res.extra["run"]
        g = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        s = srun.generate(args.eval, generator=g).cpu()
        ref = data[torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(7))[: args.eval]].cpu()
        flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
        summary["mmd"] = float(mmd(flat(s), flat(ref)))
        summary["sliced_w2"] = float(sliced_wasserstein(flat(s), flat(ref), generator=torch.Generator().manual_seed(0)))
        arrays = {"samples": s}
        if mixture is not None:
            w, off = mode_weights(s, mixture.weights, mixture.means, mixture.covariances)
            summary.update(weight_error=weight_error(w, mixture.weights), off_mode=off,
                           coverage=mode_coverage(w, mixture.weights))
            arrays["mode_weights"] = w
            print("mode weights  true " + " ".join(f"{v:.4f}" for v in mixture.weights)
                  + "\n              model " + " ".join(f"{float(v):.4f}" for v in w))
        run.write_results(arrays, attrs=summary)
    print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ..io import DataError
    from ..run import atomic_h5, resolve_device
    from .train import load_run

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.n < 1:
        raise DataError(f"-n must be positive, got {args.n}")
    out = Path(args.out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise DataError(f"--out {out}: write samples to an .h5 file")
    srun = load_run(args.run, device=device)
    seed = args.seed if args.seed is not None else srun.cfg.seed + 1
    g = torch.Generator(device=device).manual_seed(seed)
    t0 = time.perf_counter()
    x = srun.generate(args.n, sampler=args.sampler, n_steps=args.n_steps, batch_size=args.batch_size, generator=g)
    seconds = time.perf_counter() - t0
    if not torch.isfinite(x).all():
        print(f"warning: {int((~torch.isfinite(x)).any(-1).sum())} samples are not finite; try more --n-steps")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(out) as fh:
        fh["samples"] = x.cpu().numpy()
        fh.attrs.update(run=str(args.run), sampler=args.sampler or srun.cfg.sample.sampler, seed=seed,
                        n_steps=args.n_steps or srun.cfg.sample.n_steps or 0, seconds=seconds)
    print(f"wrote {args.n} samples of shape {tuple(x.shape[1:])} to {out} ({seconds:.1f} s)")
    return 0


def register(subparsers) -> None:
    from ..cli import add_common
    from .samplers import SAMPLERS

    p = subparsers.add_parser("score", help="score-based generative models (DSM / nonlinear DSM)")
    sub = p.add_subparsers(dest="score_command", metavar="{train,sample}")
    p.set_defaults(single_process="the NDSM trainer and sampler are single-process; their batches fit one device")
    sub.required = True
    t = sub.add_parser("train", help="train a score model on a data file or a named problem")
    src = t.add_argument_group("data (one of)")
    src.add_argument("--data", help=".npy/.npz/.h5 file of samples (N, D) or images (N, [C,] H, W)")
    src.add_argument("--dataset", default="samples", help="dataset name inside .h5/.npz (default: samples)")
    src.add_argument("--problem", choices=PROBLEMS, help="a built-in problem")
    t.add_argument("--n-data", type=int, default=5000, help="samples drawn from a mixture problem")
    t.add_argument("--min-samples", type=int, default=10, help="refuse data files with fewer rows")
    t.add_argument("--sde", choices=tuple(SDE_CHOICES),
                   help="linear: VP + DSM; ve: VE + DSM; nonlinear: Langevin toward a fitted GMM + NDSM")
    t.add_argument("--config", help="TOML config (see docs/score.md for the keys)")
    t.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override config keys")
    t.add_argument("--steps", type=int, help="train.steps")
    t.add_argument("--batch-size", type=int, help="train.batch_size")
    t.add_argument("--control-variates", choices=("learned", "fixed", "none"), help="train.control_variates")
    t.add_argument("--out", default="runs/score", help="run directory")
    t.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    t.add_argument("--eval", type=int, default=2000, help="samples drawn after training for metrics (0: none)")
    add_common(t)
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run", help="run directory written by `sciml score train`")
    s.add_argument("-n", type=int, required=True, help="number of samples")
    s.add_argument("--out", required=True, help="output .h5 file (dataset 'samples')")
    s.add_argument("--sampler", choices=tuple(SAMPLERS), help="default: the run's sample.sampler")
    s.add_argument("--n-steps", type=int, help="default: the run's sample.n_steps")
    s.add_argument("--batch-size", type=int, help="samples integrated at once")
    add_common(s)
    s.set_defaults(func=cmd_sample)
