r"""One method protocol and one driver: every wing is trained the same way.

A wing supplies a small class that follows :class:`Method`; :func:`fit` runs any of them::

    from sciml import fit
    from sciml.pinn import PINN, PINNConfig

    res = fit(PINN, PINNConfig(), problem, out="runs/ac")   # Result[TrainedPINN]
    model = PINN.load("runs/ac")                           # the same payload, read back
    print(res.status, res.metrics["rel_l2"])

The driver owns everything that is not the method: threads, device, the seed, the run directory
(``config.toml``, ``meta.json``, metrics, checkpoints), resume (after checking that the saved config
is the one given), ``stop_at``, the wall-clock budget, progress, the divergence stop, and the status
that decides the exit code. The method owns its model, optimisers and random streams.

Contract for a method class ``M`` (see ``docs/architecture.md`` for a worked fifth method):

* ``M.build(config, problem, *, device, dist, **options) -> M``: everything random is drawn from
  generators seeded by ``config.seed`` (via :func:`sciml.run.derive_seed`); raise a
  :class:`~sciml.run.errors.UserError` for inputs that cannot work, *before* any output exists.
* ``m.config`` (a frozen dataclass with ``seed``; the resolved config, e.g. with the problem's own name
  filled in: it is saved as ``config.toml`` and a resumed run must match it), ``m.n_steps`` (an upper
  bound when ``done`` can end early), ``m.log_every``, ``m.checkpoint_every``, ``m.command``.
* ``m.step(i) -> {name: float}``: one unit of work; the first metric is shown in the progress bar.
* ``m.state() -> dict`` and ``m.load_state(dict)``: *everything* that the remaining steps depend on
  (parameters, optimisers, schedules, RNG states, banks, particles, ...), so that a run killed at any
  checkpoint and resumed ends bit-identical to an uninterrupted one.
* ``m.done() -> bool``: the method finished before ``n_steps`` (default: never).
* ``m.meta() -> dict``: extra entries for ``meta.json``.
* ``m.finish(run, result) -> P``: write the results (``results.h5``, model files, plots) into ``run``
  (``None``: nothing to write) and return the payload. Called after success, budget stop or
  interruption, not after divergence.
* ``M.load(run_dir, *, device="cpu") -> P``: the payload of a finished run, read back.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Generic, Mapping, Protocol, TypeVar, runtime_checkable

import torch

from .config import ConfigError, config_to_dict, dump_toml, load_config
from .errors import CheckpointError, UsageError, UserError
from .loop import train_loop
from .result import Result, Status
from .rundir import RunDir, RunInUseError, RunLock
from .runtime import get_logger, resolve_device, seed_everything

__all__ = ["Method", "MethodBase", "fit", "set_threads", "open_run", "check_run_config"]

P = TypeVar("P")
log = get_logger("run.fit")


@runtime_checkable
class Method(Protocol[P]):
    """What :func:`fit` needs of a wing (see the module docstring for the contract)."""

    config: Any
    command: str
    n_steps: int
    log_every: int
    checkpoint_every: int

    @classmethod
    def build(cls, config: Any, problem: Any, *, device: torch.device, dist: Any = None, **options: Any) -> "Method[P]":
        ...

    def step(self, i: int) -> Mapping[str, float]: ...

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: Mapping[str, Any]) -> None: ...

    def done(self) -> bool: ...

    def meta(self) -> dict[str, Any]: ...

    def finish(self, run: RunDir | None, result: Result[P]) -> P: ...

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> P: ...


class MethodBase(Generic[P]):
    """Defaults for a :class:`Method`: ``log_every``/``checkpoint_every`` read from the config,
    ``done`` never, no extra meta. Subclasses set ``command`` and implement the rest."""

    command: ClassVar[str] = "method"
    config: Any

    @property
    def log_every(self) -> int:
        return int(getattr(self.config, "log_every", 100))

    @property
    def checkpoint_every(self) -> int:
        return int(getattr(self.config, "checkpoint_every", 1000))

    def done(self) -> bool:
        return False

    def meta(self) -> dict[str, Any]:
        return {}


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads (``None``: leave torch's default)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError("--threads", f"must be a whole number >= 1, got {threads!r}")
    torch.set_num_threads(threads)


def check_run_config(run_dir: Path, config: Any) -> None:
    """Refuse to resume ``run_dir`` with a config other than the one it was started with.

    Raises:
        ConfigError: naming the first keys that differ, or the missing ``config.toml``.
    """
    import tomllib

    path = run_dir / "config.toml"
    if not path.is_file():
        raise ConfigError("--resume", f"{run_dir} has no config.toml: it is not a run directory this command "
                                      "wrote; start a new run without --resume")
    try:
        saved = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError("--resume", f"{path} is unreadable ({e}); start a new run in another folder") from None
    given = tomllib.loads(dump_toml(config_to_dict(config)))
    try:  # keys added since the run was written compare at their defaults
        saved = tomllib.loads(dump_toml(config_to_dict(load_config(saved, type(config)))))
    except (UserError, TypeError):
        pass  # a key this version no longer knows: compare the files as they are
    diffs = _diff(saved, given)
    if diffs:
        shown = "; ".join(f"{k}: run has {a!r}, given {b!r}" for k, a, b in diffs[:3])
        raise ConfigError(diffs[0][0], f"does not match the run being resumed in {run_dir} ({shown}); resume with "
                                       "the run's own config, or start a new run in another folder")


def _diff(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            out += _diff(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append((f"{prefix}{k}", x, y))
    return out


def open_run(out: str | Path | None, config: Any, *, resume: bool, overwrite: bool = False) -> RunDir | None:
    """The run directory for ``out``, checked before anything is written.

    * ``resume``: ``out`` must hold a run started with the same config (nothing is written otherwise).
    * a fresh run: ``out`` must not already hold a run (its checkpoints would be mixed with the new
      ones) unless ``overwrite``, which clears the old checkpoints and metrics first.

    The folder's :class:`~sciml.run.rundir.RunLock` is taken before anything is removed or written and held
    as ``run.lock`` until the caller releases it (:func:`fit` does when it returns).

    Raises:
        UsageError: ``out`` is a file, sits under a file, cannot be created, or another live run writes it.
        ConfigError: resume with another config.
    """
    if out is None:
        return None
    path = Path(out)
    _precheck(path, config, resume, overwrite)
    lock = RunLock(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock.acquire()  # before anything is removed or written
        if not resume and overwrite:
            for f in [*(path / "checkpoints").glob("*"), path / "metrics.jsonl", path / "metrics.h5",
                      path / "meta.json"]:
                if f.is_file():
                    f.unlink()
        run = RunDir(path)
    except RunInUseError as e:
        raise UsageError("--out", str(e)) from None
    except OSError as e:
        lock.release()
        raise UsageError("--out", f"cannot create {path} ({e.strerror}); choose a writable folder") from None
    run.lock = lock
    run.clean_temporaries()
    return run


def fit(method: type, config: Any, problem: Any = None, /, *, out: str | Path | None = None, resume: bool = False,
        stop_at: int | None = None, max_seconds: float | None = None, device: str | torch.device = "cpu",
        threads: int | None = None, dist: Any = None, overwrite: bool = False, desc: str | None = None,
        **options: Any) -> Result:
    """Build ``method`` from ``config`` and ``problem`` and train it; the one entry point of every wing.

    Args:
        method: a class following :class:`Method` (``sciml.pinn.PINN``, ``sciml.conservation.Deflation``, ...).
        config: the method's config (a frozen dataclass; its ``seed`` seeds the run).
        problem: what the method is applied to (a PDE problem, trajectories, data samples, ...).
        out: run directory (``None``: nothing written).
        resume: continue ``out`` from its latest checkpoint (the config must match the run's).
        stop_at: stop after this many steps (``Status.INTERRUPTED``; resumable).
        max_seconds: wall-clock budget of the training, resumed sessions included (``Status.BUDGET``);
            ``None``: the method's own ``max_seconds`` attribute if it has one (from its config).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (a distributed context's device wins).
        threads: torch CPU threads (``None``: torch's default).
        dist: a :class:`sciml.run.distributed.DistContext` for data-parallel methods (only rank 0 writes).
        overwrite: start afresh in an ``out`` that already holds a run.
        options: passed to ``method.build`` (e.g. ``source=`` for a transfer).

    Returns:
        ``Result[P]`` whose ``payload`` is what ``method.load(out)`` returns for the finished run.
    """
    set_threads(threads)
    if max_seconds is not None and not max_seconds > 0:
        raise UsageError("--max-seconds", f"must be > 0, got {max_seconds!r}")
    dev = dist.device if dist is not None else resolve_device(str(device)) if not isinstance(device, torch.device) \
        else device
    main = dist is None or dist.is_main
    if main and out is not None:  # check the folder before any work
        _precheck(out, None, resume, overwrite)
    seed_everything(int(getattr(config, "seed", 0)))
    m = method.build(config, problem, device=dev, dist=dist, **options)
    if max_seconds is None:  # a budget in the method's config (e.g. optim.max_seconds)
        max_seconds = getattr(m, "max_seconds", None)
    if hasattr(m, "set_budget"):  # a method whose choices depend on the budget (the PINN's compile "auto")
        m.set_budget(max_seconds)
    # the method's config is the resolved one (e.g. the problem's own name filled in): that is what is
    # saved, and what a resumed run must match; nothing has been written yet
    run = open_run(out, m.config, resume=resume, overwrite=overwrite) if main else None
    try:
        return _fit_in(m, run, config, dev, resume=resume, stop_at=stop_at, max_seconds=max_seconds, desc=desc,
                       dist=dist)
    finally:
        if run is not None and run.lock is not None:
            run.lock.release()


def _fit_in(m: Any, run: RunDir | None, config: Any, dev: torch.device, *, resume: bool, stop_at: int | None,
            max_seconds: float | None, desc: str | None, dist: Any) -> Result:
    """:func:`fit` once the method is built and its run folder is open (and locked)."""
    loaded = _check_checkpoint(run, m) if run is not None and resume else None
    if run is not None and not resume:
        run.save_config(m.config)
    if run is not None:
        run.write_meta(command=m.command, device=str(dev), seed=int(getattr(config, "seed", 0)),
                       torch=torch.__version__, python=platform.python_version(), argv=" ".join(sys.argv),
                       started=time.strftime("%Y-%m-%dT%H:%M:%S"), status="running", **m.meta())
    res = train_loop(m.step, m.n_steps, run=run, state=m.state, load=m.load_state, resume=resume,
                     log_every=m.log_every, checkpoint_every=m.checkpoint_every, desc=desc or m.command,
                     stop_at=stop_at, max_seconds=max_seconds, done=m.done, dist=dist, loaded=loaded)
    if res.status != Status.DIVERGED:
        res.payload = m.finish(run, res)
    if run is not None:
        run.write_meta(status=res.status.value, message=res.message, remedy=res.remedy, step=res.step,
                       seconds=round(res.seconds, 3), **{k: v for k, v in res.metrics.items()})
    return res


def _check_checkpoint(run: RunDir, m: Any) -> dict[str, Any] | None:
    """Load the checkpoint a resume will continue from into ``m`` before anything is written, so that a
    truncated or foreign checkpoint is a one-line error that leaves the run as it was; return it (the
    loop then does not load it a second time)."""
    ck = run.load_checkpoint()
    if ck is None:
        return None
    try:
        m.load_state(ck)
    except UserError:  # the method's own one-line reason (e.g. other data than the run's)
        raise
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{run.latest_checkpoint()}: does not fit this run's model ({first}); the run "
                              f"directory was {run.describe()}; {run._fallback(run.latest_checkpoint())}") from None
    return ck


def _precheck(out: str | Path, config: Any, resume: bool, overwrite: bool) -> None:
    path = Path(out)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise UsageError("--out", f"{parent} is a file, not a folder; choose another run directory")
    if resume:
        if not (path / "config.toml").is_file():
            raise UsageError("--resume", f"{path} holds no run to resume; drop --resume to start a new run")
        if config is not None:
            check_run_config(path, config)
    elif not overwrite and ((path / "config.toml").exists() or any((path / "checkpoints").glob("ckpt_*.pt"))):
        raise UsageError("--out", f"{path} already holds a run; continue it with --resume, or choose another --out")
    probe = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError("--out", f"{probe} is not writable; choose another run directory")
