"""``torch.compile`` of a whole loss, with its derivatives inside, checked against eager once.

Double backward through a compiled graph fails (or, in older releases, was silently wrong), so the rule
is: compile the *whole* loss, derivative operators included, so that the parameter gradient is one
backward of the compiled graph, or compile nothing. The forward Laplacian is plain tensor code (no
nested autograd), so a forward-Laplacian loss compiles well; nested-autograd losses do not.

:func:`compile_loss` compiles, runs the compiled and the eager loss on example arguments, compares the
loss values and the parameter gradients, and returns the eager function (with a warning saying why)
if compiling fails or the two disagree.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

__all__ = ["compile_loss"]

log = logging.getLogger("sciml.autodiff.compile")


def compile_loss(loss_fn: Callable[..., Tensor], params: Mapping[str, Tensor], *example_args: Any,
                 rtol: float = 1e-3, atol: float = 1e-5, **compile_kwargs: Any) -> Callable[..., Tensor]:
    """Compile ``loss_fn(params, *args) -> scalar`` and cross-check it against eager.

    Args:
        loss_fn: the whole loss, derivatives inside. It may return a 1-D tensor whose first entry is the
            loss and the rest its parts (reported alongside, checked like the loss); gradients are checked
            for the first entry.
        params: parameter dict (tensors requiring grad) used for the check.
        example_args: the other arguments for the check (e.g. collocation points).
        rtol, atol: tolerance of the comparison, norm-wise per tensor (the loss vector, each gradient):
            ``||compiled - eager|| <= rtol * (||eager|| + atol)``.
        compile_kwargs: passed to ``torch.compile`` (e.g. ``mode``, ``dynamic``).

    Returns:
        The compiled function, or ``loss_fn`` itself if compilation failed or disagreed with eager.
        The returned function has ``.compiled`` (bool) and ``.compile_seconds``.
    """
    names = [k for k, v in params.items() if v.requires_grad]
    t0 = time.perf_counter()
    try:
        compiled = torch.compile(loss_fn, **compile_kwargs)
        lc = compiled(params, *example_args)
        gc = torch.autograd.grad(_first(lc), [params[k] for k in names], allow_unused=True)
    except Exception as e:  # a backend failure must not kill a training run
        log.warning("torch.compile failed (%s: %s); using eager", type(e).__name__, str(e).splitlines()[0])
        loss_fn.compiled, loss_fn.compile_seconds = False, time.perf_counter() - t0  # type: ignore[attr-defined]
        return loss_fn
    seconds = time.perf_counter() - t0
    le = loss_fn(params, *example_args)
    ge = torch.autograd.grad(_first(le), [params[k] for k in names], allow_unused=True)
    worst = {"loss": _rel_err(lc.detach(), le.detach(), atol)}
    for k, a, b in zip(names, gc, ge):
        worst[k] = float("inf") if (a is None) != (b is None) else 0.0 if a is None else _rel_err(a, b, atol)
    key = max(worst, key=worst.get)
    if worst[key] > rtol:
        log.warning("compiled loss disagrees with eager (%s: relative error %.2e > rtol=%g); using eager",
                    key, worst[key], rtol)
        loss_fn.compiled, loss_fn.compile_seconds = False, seconds  # type: ignore[attr-defined]
        return loss_fn
    log.info("compiled loss in %.1f s; matches eager (rtol=%g)", seconds, rtol)
    compiled.compiled, compiled.compile_seconds = True, seconds  # type: ignore[attr-defined]
    return compiled


def _rel_err(a: Tensor, b: Tensor, atol: float) -> float:
    """``||a - b|| / (||b|| + atol)``: norm-wise, because float32 fusion rounds each entry a little
    differently and a gradient's small entries carry the absolute error of its large ones."""
    return float((a - b).norm() / (b.norm() + atol))


def _first(out: Tensor) -> Tensor:
    return out if out.ndim == 0 else out.reshape(-1)[0]
