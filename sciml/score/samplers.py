r"""Samplers from a learned score: the reverse-time SDE and the probability-flow ODE.

Reverse SDE (Anderson 1982), integrated from :math:`t=T` down to :math:`t_{min}`:

.. math:: dX = \big[b(X,t) - g(t)^2 s_\theta(X,t)\big]\,dt + g(t)\, d\bar W .

Probability-flow ODE (same marginals, deterministic):
:math:`\dot X = b(X,t) - \tfrac12 g(t)^2 s_\theta(X,t)`.

Steppers (small strategy objects, one ``step`` each; ``h > 0`` is the size of the backward step):

* :class:`EulerMaruyama` -- first order.
* :class:`StochasticHeun` -- predictor-corrector average of the drift at both ends with the same
  Brownian increment; strong order 1 (vs 1/2) for additive noise, weak order 2 for the drift part.
* :class:`ProbabilityFlow` -- the ODE with Heun (2nd order) or classical RK4.

The last step of the SDE samplers adds no noise (returns the mean of the final transition).
:data:`SAMPLERS` names them for configs and the command line: ``em``, ``heun``, ``ode`` (Heun) and
``ode_rk4``. :func:`sample_batches` yields the samples batch by batch (memory of one batch, whatever
``n``); :func:`sample` concatenates them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from ..registry import Registry
from ..run import progress
from .sde import SDE, bc

__all__ = ["Sampler", "EulerMaruyama", "StochasticHeun", "ProbabilityFlow", "sample", "sample_batches", "SAMPLERS"]

ScoreFn = Callable[[Tensor, Tensor], Tensor]


def _rev_drift(sde: SDE, score: ScoreFn, x: Tensor, t: Tensor, ode: bool) -> Tensor:
    g2 = bc(sde.diffusion(t) ** 2, x)
    return sde.drift(x, t) - (0.5 if ode else 1.0) * g2 * score(x, t)


class Sampler(ABC):
    """One backward step of the reverse dynamics; ``noise`` is ``None`` for a deterministic step."""

    #: whether the step integrates the probability-flow ODE (it takes no noise)
    deterministic: bool = False

    @abstractmethod
    def step(self, sde: SDE, score: ScoreFn, x: Tensor, t: float, h: float, noise: Tensor | None) -> Tensor:
        """``x`` at time ``t - h`` from ``x`` at time ``t``."""


SAMPLERS: Registry[Sampler] = Registry("sampler", Sampler)


@SAMPLERS.register("em", doc="reverse SDE, Euler-Maruyama")
@dataclass(frozen=True)
class EulerMaruyama(Sampler):
    """Reverse-SDE Euler-Maruyama step."""

    def step(self, sde: SDE, score: ScoreFn, x: Tensor, t: float, h: float, noise: Tensor | None) -> Tensor:
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
        x_new = x - h * _rev_drift(sde, score, x, tt, ode=False)
        if noise is not None:
            x_new = x_new + bc(sde.diffusion(tt), x) * math.sqrt(h) * noise
        return x_new


@SAMPLERS.register("heun", doc="reverse SDE, stochastic Heun")
@dataclass(frozen=True)
class StochasticHeun(Sampler):
    """Reverse-SDE stochastic Heun step (drift averaged at both ends, one shared Brownian increment)."""

    def step(self, sde, score, x, t, h, noise):
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype)
        t2 = torch.full_like(tt, t - h)
        # the increment's variance is int g^2 over the step (trapezoid)
        g_eff = ((sde.diffusion(tt) ** 2 + sde.diffusion(t2) ** 2) / 2).sqrt()
        dw = bc(g_eff, x) * math.sqrt(h) * noise if noise is not None else 0.0
        f1 = _rev_drift(sde, score, x, tt, ode=False)
        x_pred = x - h * f1 + dw
        f2 = _rev_drift(sde, score, x_pred, t2, ode=False)
        return x - 0.5 * h * (f1 + f2) + dw


@SAMPLERS.register("ode", doc="probability-flow ODE, Heun")
@dataclass(frozen=True)
class ProbabilityFlow(Sampler):
    """Probability-flow ODE step, ``method`` ``heun`` or ``rk4``."""

    method: str = "heun"
    deterministic = True

    def __post_init__(self):
        if self.method not in ("heun", "rk4"):
            raise ValueError(f"ProbabilityFlow method must be 'heun' or 'rk4', got {self.method!r}")

    def step(self, sde, score, x, t, h, noise):
        def f(y, s):
            return _rev_drift(sde, score, y, torch.full((y.shape[0],), s, device=y.device, dtype=y.dtype), ode=True)

        if self.method == "heun":
            k1 = f(x, t)
            k2 = f(x - h * k1, t - h)
            return x - 0.5 * h * (k1 + k2)
        k1 = f(x, t)
        k2 = f(x - 0.5 * h * k1, t - 0.5 * h)
        k3 = f(x - 0.5 * h * k2, t - 0.5 * h)
        k4 = f(x - h * k3, t - h)
        return x - h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


@SAMPLERS.register("ode_rk4", doc="probability-flow ODE, classical Runge-Kutta 4")
def _ode_rk4() -> ProbabilityFlow:
    return ProbabilityFlow("rk4")


def sample_batches(score: ScoreFn, sde: SDE, n: int, *, sampler: Sampler | str = "em", n_steps: int = 500,
                   t_min: float = 1e-3, batch_size: int = 4096, generator: torch.Generator | None = None,
                   x_T: Tensor | None = None, show_progress: bool = True) -> Iterator[Tensor]:
    """Yield ``n`` samples in batches of ``batch_size`` (the last may be smaller), integrating the reverse
    dynamics from the prior at T down to ``t_min``; memory holds one batch at a time.

    Args:
        score: ``s(x, t)`` (e.g. a :class:`~sciml.score.model.ScoreModel` in eval mode).
        sde: the forward SDE the score was trained for (prior, drift, diffusion).
        sampler: a :class:`Sampler` or a name in :data:`SAMPLERS`.
        n_steps: uniform steps from T to t_min.
        batch_size: samples integrated at once (memory bound).
        generator: explicit randomness for the prior draw and the noise, drawn batch by batch, so the
            samples are the same however the batches are consumed.
        x_T: start states instead of prior samples (e.g. to test a sampler from exact prior draws).

    Yields:
        Tensors ``(m, *event_shape)``, ``m <= batch_size``.
    """
    if n < 1 or n_steps < 1 or batch_size < 1:
        raise ValueError(f"n, n_steps and batch_size must be positive, got {n}, {n_steps}, {batch_size}")
    sampler = SAMPLERS.resolve(sampler)
    h = (sde.T - t_min) / n_steps
    n_batches = math.ceil(n / batch_size)
    bar = progress(range(n_batches * n_steps), total=n_batches * n_steps, desc="sample",
                   disable=None if show_progress else True)
    for b in range(n_batches):
        m = min(batch_size, n - b * batch_size)
        with torch.no_grad():
            x = sde.prior_sample(m, generator=generator) if x_T is None else x_T[b * batch_size: b * batch_size + m]
            for i in range(n_steps):
                last = i == n_steps - 1
                noise = None if (sampler.deterministic or last) else torch.randn(
                    x.shape, generator=generator, device=x.device, dtype=x.dtype)
                x = sampler.step(sde, score, x, sde.T - i * h, h, noise)
                next(bar, None)
        yield x


def sample(score: ScoreFn, sde: SDE, n: int, *, sampler: Sampler | str = "em", n_steps: int = 500,
           t_min: float = 1e-3, batch_size: int = 4096, generator: torch.Generator | None = None,
           x_T: Tensor | None = None, show_progress: bool = True) -> Tensor:
    """All ``n`` samples of :func:`sample_batches` as one tensor ``(n, *event_shape)``."""
    return torch.cat(list(sample_batches(score, sde, n, sampler=sampler, n_steps=n_steps, t_min=t_min,
                                         batch_size=batch_size, generator=generator, x_T=x_T,
                                         show_progress=show_progress)))
