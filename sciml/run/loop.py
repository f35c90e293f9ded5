"""A training loop that every method can reuse: progress, metrics, checkpoints, resume, divergence.

The method supplies a ``step(i) -> dict of scalar metrics`` closure (one optimiser step) and
``state()``/``load(state)`` for its checkpointable state (model, optimiser, RNG, ...). The loop:

* resumes from the run directory's latest checkpoint if ``resume`` is set;
* logs metrics every ``log_every`` steps, checkpoints every ``checkpoint_every`` steps;
* stops with ``Status.DIVERGED`` and a message at the first non-finite metric, leaving the last good
  checkpoint in place (no checkpoint is written after a bad step);
* writes a final checkpoint and returns a :class:`Result`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch

from .result import DivergenceError, Result, Status, check_finite
from .rundir import RunDir
from .runtime import get_logger, progress, tune_allocator

if TYPE_CHECKING:
    from .distributed import DistContext

__all__ = ["train_loop", "rng_state", "set_rng_state"]

log = get_logger("run.loop")


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Everything needed to continue the random stream exactly (torch CPU/CUDA, and ``generator``)."""
    st = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        st["generator"] = generator.get_state()
    return st


def set_rng_state(st: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if generator is not None and "generator" in st:
        generator.set_state(st["generator"])


def train_loop(step: Callable[[int], Mapping[str, float]], n_steps: int, *, run: RunDir | None = None,
               state: Callable[[], dict[str, Any]] | None = None,
               load: Callable[[dict[str, Any]], None] | None = None, resume: bool = False,
               log_every: int = 100, checkpoint_every: int = 1000, desc: str = "train",
               stop_at: int | None = None, max_seconds: float | None = None,
               done: Callable[[], bool] | None = None, dist: "DistContext | None" = None,
               loaded: Mapping[str, Any] | None = None) -> Result:
    """Run ``step(i)`` for ``i`` in ``[start, n_steps)``.

    Args:
        step: one optimiser step; returns scalar metrics (the first one is shown in the progress bar).
        n_steps: total steps of the run (an upper bound when ``done`` can end it earlier).
        run: run directory for metrics and checkpoints (``None``: nothing written).
        state: returns the checkpointable state; ``load`` restores it.
        resume: continue from the latest checkpoint in ``run``.
        stop_at: stop after this step (a planned interruption; the tests' stand-in for a kill).
        max_seconds: wall-clock budget over the whole run, resumed sessions included: when the elapsed
            training time reaches it, a checkpoint is written and the run stops with ``Status.BUDGET``.
        done: called after every step; ``True`` ends the run early with success (the method is finished).
        dist: the process's place in a data-parallel run (:mod:`sciml.run.distributed`). Then only rank
            0 passes a ``run`` and writes; on resume rank 0 reads the checkpoint and sends it to every
            rank; ``state()`` is called on every rank (it may gather) and ``step`` must return metrics
            that are equal on all ranks (already reduced), so that all stop together.
        loaded: the latest checkpoint, already loaded into the method by the caller (``fit`` checks it
            before writing anything); with ``resume`` it is not loaded again in a one-process run.

    Returns:
        Result with status, message, the last metrics, ``step`` (steps completed) and ``seconds``
        (elapsed training time, resumed sessions included). Every logged metrics row carries
        ``seconds`` too.
    """
    tune_allocator()  # keep the step's large buffers mapped between steps (see its docstring)
    ctx = dist if dist is not None and dist.distributed else None
    # every rank must take the same branches around collective calls: decide them on rank 0
    has_run = run is not None if ctx is None else bool(ctx.broadcast_object(run is not None))
    start, before = _restore(run, load, ctx, loaded) if resume and has_run and load is not None else (0, 0.0)
    save = has_run and state is not None
    clock, last, i, where = _Clock(before, ctx), {}, start, run.path if run is not None else None

    def stopped(status: Status, message: str, at: int, keep: bool = True) -> Result:
        if save and keep:
            st = state()  # on every rank: state() may gather
            if run is not None:
                run.save_checkpoint({**st, "elapsed": clock.elapsed()}, at)
        if run is not None:
            run.flush_metrics()
        return Result(status, message, last, where, step=at, seconds=clock.elapsed())

    bar = progress(range(start, n_steps), total=n_steps, initial=start, desc=desc,
                   disable=True if ctx is not None and not ctx.is_main else None)
    try:
        for i in bar:
            last = {k: float(v) for k, v in step(i).items()}
            check_finite(i, **last)
            finished = done is not None and done()
            if run is not None and (i % log_every == 0 or i == n_steps - 1 or finished):
                run.log_metrics(i, **last, seconds=clock.elapsed())
            if finished:
                return stopped(Status.SUCCESS, f"finished after {i + 1} steps in {clock.elapsed():.1f} s", i + 1)
            if save and checkpoint_every and (i + 1) % checkpoint_every == 0:
                stopped(Status.SUCCESS, "", i + 1)  # a checkpoint, and the metrics file up to date
            if stop_at is not None and i + 1 >= stop_at and i + 1 < n_steps:  # like a kill: no checkpoint
                return stopped(Status.INTERRUPTED, f"stopped at step {i + 1} of {n_steps}", i + 1, keep=False)
            if max_seconds is not None and i + 1 < n_steps and clock.over(max_seconds):
                return stopped(Status.BUDGET, f"wall-clock budget of {max_seconds:g} s used up at step {i + 1} "
                                              f"of {n_steps}", i + 1)
    except DivergenceError as e:
        good = run.latest_checkpoint() if run is not None else None
        msg = f"{e}; last good checkpoint: {good}" if good else f"{e}; no checkpoint was written before it"
        log.error(msg)
        res = stopped(Status.DIVERGED, msg, e.step, keep=False)
        res.artefacts = {"checkpoint": good} if good else {}
        return res
    except KeyboardInterrupt:
        good = run.latest_checkpoint() if run is not None else None
        return stopped(Status.INTERRUPTED, f"interrupted by the user during step {i + 1}; latest checkpoint: {good}",
                       i, keep=False)
    return stopped(Status.SUCCESS, f"finished {n_steps} steps in {clock.elapsed():.1f} s", n_steps)


def _restore(run: RunDir | None, load: Callable[[dict[str, Any]], None], ctx: "DistContext | None",
             loaded: Mapping[str, Any] | None = None) -> tuple[int, float]:
    """Load the latest checkpoint (rank 0 reads it and sends it to every rank); ``(step, elapsed seconds)``."""
    ck = loaded if loaded is not None else run.load_checkpoint() if run is not None else None
    if ctx is not None:
        ck = ctx.broadcast_object(ck)
    if ck is None:
        return 0, 0.0
    if loaded is None or ctx is not None:
        load(ck)
    start = int(ck["step"])
    if run is not None:
        run.truncate_metrics(start - 1)
        log.info("resumed from %s at step %d", run.latest_checkpoint(), start)
    return start, float(ck.get("elapsed", 0.0))


class _Clock:
    """Elapsed training seconds, earlier sessions included; in a data-parallel run rank 0's clock
    decides the budget for every rank (so all stop at the same step)."""

    def __init__(self, before: float, ctx: "DistContext | None"):
        self.before, self.ctx, self.t0 = before, ctx, time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def over(self, budget: float) -> bool:
        late = self.elapsed() >= budget
        return bool(self.ctx.broadcast_object(late)) if self.ctx is not None else late
