"""``sciml score train`` and ``sciml score sample``: thin wrappers over :class:`sciml.score.ScoreTraining`.

    sciml score train --problem mixture2d --sde langevin_gmm --steps 3000 --out runs/ndsm
    sciml score train --data samples.h5 --sde vp --config my.toml --out runs/vp --set train.lr=1e-3 model.width=64
    sciml score sample runs/ndsm -n 10000 --out samples.h5 --sampler heun

Problem names come from the catalogue (:data:`problems.mixtures.PROBLEMS`); ``--sde``, ``--objective``,
``--sampler`` choices from the registries. Every value that cannot work is refused with one line
naming the option before anything is written. ``score sample`` streams the samples into the file
batch by batch (memory of one batch, whatever ``-n``) and refuses up front a file larger than the
free space on its disk.
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from pathlib import Path

import torch

__all__ = ["register"]

_FLAGS = {"sde": "sde.kind", "objective": "train.objective", "steps": "train.steps",
          "batch_size": "train.batch_size", "control_variates": "train.control_variates"}


def _at_least(value: int | None, least: int, option: str) -> None:
    if value is not None and value < least:
        raise _usage(option, f"must be at least {least}, got {value}")


def _usage(option: str, message: str):
    from ..run import UsageError

    return UsageError(option, message)


def _check_train_flags(args: argparse.Namespace) -> None:
    """Refuse flag values that cannot work, naming the flag (before any data is drawn)."""
    from ..io import available_memory, format_bytes

    if (args.data is None) == (args.problem is None):
        raise _usage("--data/--problem", "give exactly one of --data FILE or --problem NAME")
    for value, least, option in ((args.steps, 1, "--steps"), (args.batch_size, 2, "--batch-size"),
                                 (args.n_data, 2, "--n-data"), (args.min_samples, 2, "--min-samples"),
                                 (args.eval, 0, "--eval")):
        _at_least(value, least, option)
    free = available_memory()
    if args.problem is not None and free is not None:
        from problems.mixtures import MIXTURES

        if args.problem in MIXTURES:  # drawing n samples holds a (D, D) Cholesky factor per sample, in float64
            d = MIXTURES[args.problem]().dim
            need = args.n_data * (d * d + 4 * d) * 8
            if need > free:
                raise _usage("--n-data", f"{args.n_data} samples of the {d}-d {args.problem} take about "
                                         f"{format_bytes(need)} to draw; {format_bytes(free)} of memory is free; "
                                         "ask for fewer")
    need = 3 * (2 * args.eval) ** 2 * 4  # MMD: the kernel matrix of samples and reference, a few copies
    if free is not None and need > free:
        raise _usage("--eval", f"{args.eval} evaluation samples need about {format_bytes(need)} for the MMD; "
                               f"{format_bytes(free)} is free; use fewer (2000 is plenty)")


def _file_keys(path: str | None) -> set[str]:
    """Dotted keys set in the TOML config file (empty without one)."""
    from ..run import read_toml

    if not path:
        return set()
    out: set[str] = set()

    def walk(d: dict, prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out.add(f"{prefix}{k}")

    walk(read_toml(path))
    return out


def _training_data(args: argparse.Namespace, seed: int):
    """``(data, true mixture or None, labels or None)`` from ``--data`` or the catalogue's ``--problem``."""
    from problems.mixtures import problem_samples

    from ..run import derived_generator
    from .data import load_samples

    if args.data is not None:
        return load_samples(args.data, dataset=args.dataset, min_rows=args.min_samples), None, None
    s = problem_samples(args.problem, args.n_data, generator=derived_generator(seed, "score problem data"))
    return s.data, s.mixture, s.labels


def _config(args: argparse.Namespace):
    """The config (file, flags, --set) with problem-dependent defaults where neither file nor flags set a
    key, and the training data."""
    from ..cli import config_overrides
    from ..run import load_config
    from .config import ScoreConfig, default_objective

    flags = {key: getattr(args, name) for name, key in _FLAGS.items()}
    over = config_overrides(args, **flags)
    source = args.config if args.config else {}
    given = _file_keys(args.config) | set(over)
    from .sde import SDES

    if over.get("sde.kind") in SDES and "train.objective" not in given:
        over["train.objective"] = default_objective(over["sde.kind"])
    seed = load_config(source, ScoreConfig, overrides=over).seed  # every key checked before data is drawn
    data, mixture, labels = _training_data(args, seed)
    defaults = {}
    if data.dim() == 4:
        # images: near-constant pixels make full-covariance components singular and the drift stiff
        defaults.update({"model.arch": "unet", "sde.covariance": "diag", "sde.reg_covar": 0.05})
    if labels is not None:
        defaults["sde.n_components"] = int(labels.unique().numel())
    if mixture is not None:  # one GMM component per true mode unless told otherwise
        defaults["sde.n_components"] = mixture.n_components
    over.update({k: v for k, v in defaults.items() if k not in given})
    return load_config(source, ScoreConfig, overrides=over), data, mixture


def _evaluate(res, data, mixture, cfg, args: argparse.Namespace) -> list[str]:
    """Draw ``--eval`` samples from the trained model: MMD^2, sliced W2 and, for mixtures, mode weights
    (printed, and written to ``RUN/results.h5``)."""
    from ..metrics import mmd, sliced_wasserstein
    from ..run import RunDir, derived_generator
    from .metrics import mode_coverage, mode_weights, weight_error

    srun = res.payload
    device = srun.shift.device
    s = srun.generate(args.eval, generator=derived_generator(cfg.seed, "score eval samples", device=device)).cpu()
    pick = torch.randperm(data.shape[0], generator=derived_generator(cfg.seed, "score eval reference"))
    ref = data[pick[: args.eval]].cpu()
    flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
    summary = {"train_seconds": res.seconds, "mmd": float(mmd(flat(s), flat(ref))),
               "sliced_w2": float(sliced_wasserstein(flat(s), flat(ref),
                                                     generator=derived_generator(cfg.seed, "score eval projections")))}
    lines = [f"MMD^2 {summary['mmd']:.3g}, sliced W2 {summary['sliced_w2']:.4g} ({args.eval} samples vs the data)"]
    arrays = {"samples": s}
    if mixture is not None:
        w, off = mode_weights(s, mixture.weights, mixture.means, mixture.covariances)
        summary.update(weight_error=weight_error(w, mixture.weights), off_mode=off,
                       coverage=mode_coverage(w, mixture.weights))
        arrays["mode_weights"] = w
        lines += ["mode weights  true  " + " ".join(f"{v:.4f}" for v in mixture.weights),
                  "              model " + " ".join(f"{float(v):.4f}" for v in w)
                  + f"  (max error {summary['weight_error']:.4f}, off-mode {off:.4f})"]
    if res.run_dir is not None:
        RunDir(res.run_dir).write_results(arrays, attrs=summary)
    return lines


def cmd_train(args: argparse.Namespace) -> int:
    import sciml

    from ..cli import fit_options, report
    from ..run import Status
    from .method import ScoreTraining

    _check_train_flags(args)
    cfg, data, mixture = _config(args)
    res = sciml.fit(ScoreTraining, cfg, data, **fit_options(args))
    lines = _evaluate(res, data, mixture, cfg, args) if res.status == Status.SUCCESS and args.eval > 0 else []
    return report(res, "score train", lines)


def _check_sample_flags(args: argparse.Namespace) -> Path:
    _at_least(args.n, 1, "-n")
    _at_least(args.n_steps, 1, "--n-steps")
    _at_least(args.batch_size, 1, "--batch-size")
    out = Path(args.out)
    if out.suffix.lower() not in (".h5", ".hdf5"):
        raise _usage("--out", f"{out}: write samples to an .h5 file")
    if out.is_dir():
        raise _usage("--out", f"{out} is a folder; give a file name ending in .h5")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise _usage("--out", f"{parent} is a file, not a folder; choose another path")
    return out


def _check_sample_size(srun, args: argparse.Namespace, out: Path, batch: int, device: torch.device) -> None:
    """Refuse, before sampling, a batch that does not fit in memory or a file that does not fit on disk."""
    from ..io import format_bytes
    from .build import check_memory, sampling_memory

    shape = tuple(srun.shift.shape)
    check_memory(sampling_memory(srun.cfg.model, shape, min(batch, args.n)), device, "sampling one batch",
                 option="--batch-size")
    size = args.n * math.prod(shape) * torch.empty((), dtype=torch.get_default_dtype()).element_size()
    disk = next(p for p in [out.parent, *out.parents] if p.exists())
    free = shutil.disk_usage(disk).free
    if size > free:
        raise _usage("-n", f"{args.n} samples of shape {shape} make a file of about {format_bytes(size)} but "
                           f"{disk} has {format_bytes(free)} free; ask for fewer or write elsewhere")


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def cmd_sample(args: argparse.Namespace) -> int:
    from ..io import format_bytes
    from ..run import atomic_h5, derive_seed, resolve_device, set_threads
    from .method import ScoreTraining

    out = _check_sample_flags(args)
    set_threads(args.threads)
    device = resolve_device(args.device)
    srun = ScoreTraining.load(args.run, device=device)
    steps = srun.sampling_steps(args.n_steps, option="--n-steps" if args.n_steps else None)
    sampler = args.sampler or srun.cfg.sample.sampler
    batch = args.batch_size or srun.cfg.sample.batch_size
    _check_sample_size(srun, args, out, batch, device)
    seed = args.seed if args.seed is not None else derive_seed(srun.cfg.seed, "score sample")
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = tuple(srun.shift.shape)
    n_batches = math.ceil(args.n / batch)
    print(f"sampling {args.n} samples of shape {shape} ({format_bytes(args.n * math.prod(shape) * 4)}) in "
          f"{n_batches} batch{'es' if n_batches > 1 else ''} of up to {batch}, {steps} {sampler} steps each",
          flush=True)
    bad, done, t0 = 0, 0, time.perf_counter()
    with atomic_h5(out) as fh:
        ds = fh.create_dataset("samples", shape=(args.n, *shape), dtype="f4", chunks=(min(batch, args.n), *shape))
        for x in srun.batches(args.n, sampler=sampler, n_steps=steps, batch_size=batch, generator=gen):
            bad += int((~torch.isfinite(x.reshape(x.shape[0], -1))).any(-1).sum())
            ds[done: done + x.shape[0]] = x.reshape(x.shape[0], *shape).cpu().numpy()
            done += x.shape[0]
            if done == x.shape[0] and n_batches > 1:  # the first batch times the rest
                eta = (time.perf_counter() - t0) * (n_batches - 1)
                print(f"first batch in {time.perf_counter() - t0:.1f} s: about {_duration(eta)} for the rest "
                      "(Ctrl-C stops it and leaves no file)", flush=True)
        fh.attrs.update(run=str(args.run), sampler=sampler, seed=seed, n_steps=steps, step=srun.step)
    if bad:
        print(f"warning: {bad} samples are not finite; try more --n-steps")
    print(f"wrote {args.n} samples of shape {shape} to {out}")
    return 0


def register(subparsers) -> None:
    from problems.mixtures import PROBLEMS

    from ..cli import add_common, add_training_args
    from .objectives import CONTROL_VARIATES, OBJECTIVES
    from .samplers import SAMPLERS
    from .sde import SDES

    p = subparsers.add_parser("score", help="score-based generative models (DSM / nonlinear DSM)")
    sub = p.add_subparsers(dest="score_command", metavar="{train,sample}")
    p.set_defaults(single_process="the NDSM trainer and sampler are single-process; their batches fit one device")
    sub.required = True
    t = sub.add_parser("train", help="train a score model on a data file or a named problem")
    src = t.add_argument_group("data (one of)")
    src.add_argument("--data", help=".npy/.npz/.h5 file of samples (N, D) or images (N, [C,] H, W)")
    src.add_argument("--dataset", default="samples", help="dataset name inside .h5/.npz (default: samples)")
    src.add_argument("--problem", choices=tuple(PROBLEMS), help="a problem of the catalogue (problems/mixtures.py)")
    t.add_argument("--n-data", type=int, default=5000, help="samples drawn from a mixture problem (default 5000)")
    t.add_argument("--min-samples", type=int, default=10, help="refuse data files with fewer rows")
    t.add_argument("--sde", choices=SDES.names(), help="sde.kind: vp, ve, or langevin_gmm (Langevin toward a GMM "
                                                       "fitted to the data)")
    t.add_argument("--objective", choices=OBJECTIVES.names(),
                   help="train.objective (default with --sde: dsm for vp/ve, ndsm for langevin_gmm)")
    t.add_argument("--config", help="TOML config (see docs/score.md for the keys)")
    t.add_argument("--steps", type=int, help="train.steps")
    t.add_argument("--batch-size", type=int, help="train.batch_size")
    t.add_argument("--control-variates", choices=CONTROL_VARIATES, help="train.control_variates")
    t.add_argument("--eval", type=int, default=2000, help="samples drawn after training for metrics (0: none)")
    add_training_args(t, out_required=True)
    t.set_defaults(func=cmd_train)
    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run", help="run directory written by `sciml score train`")
    s.add_argument("-n", type=int, required=True, help="number of samples (streamed to the file batch by batch)")
    s.add_argument("--out", required=True, help="output .h5 file (dataset 'samples')")
    s.add_argument("--sampler", choices=SAMPLERS.names(), help="default: the run's sample.sampler")
    s.add_argument("--n-steps", type=int, help="default: the run's sample.n_steps")
    s.add_argument("--batch-size", type=int, help="samples integrated at once (default: the run's sample.batch_size)")
    add_common(s)
    s.set_defaults(func=cmd_sample)
