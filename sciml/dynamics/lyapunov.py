r"""Largest Lyapunov exponent: is a data set chaotic enough to show that a system is not integrable?

Conservation-law discovery from finite trajectories counts the integrals that the *data* admit. On an
invariant torus (regular motion) a flow has smooth local integrals beyond the global ones, so a
non-integrable system sampled where its motion is regular looks integrable. The largest Lyapunov
exponent tells the two regimes apart:

* regular (quasi-periodic) motion: a small separation grows at most linearly,
  :math:`|\delta(T)| \approx a T |\delta_0|`, so the finite-time exponent
  :math:`\lambda_T = \tfrac1T \log |\delta(T)|/|\delta_0| \approx \log(aT)/T \to 0`;
* chaotic motion: :math:`\lambda_T \to \lambda > 0`.

Method (Benettin et al. 1980): integrate the state and one tangent vector together, the tangent by the
variational equation :math:`\dot\delta = Df(x)\,\delta` (a forward-mode ``torch.func.jvp`` of the vector
field, no Jacobian matrix), classical RK4 with a fixed step, renormalising the tangent every ``renorm``
time units and summing the logs of the growth factors. The initial tangents are drawn outside the
integration and passed in, so the run is reproducible for a generator.

A trajectory is classed **chaotic** when its tangent grew by more than :math:`T^2` (``log growth >
2 log T``): far faster than the linear growth of regular motion, for any sensible constant ``a``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import jvp

from .system import DynamicalSystem

__all__ = ["LyapunovResult", "lyapunov_exponent"]


@dataclass(frozen=True)
class LyapunovResult:
    """Finite-time largest Lyapunov exponents of a set of trajectories.

    Attributes:
        times: renormalisation times ``(m,)``.
        exponents: ``(n, m)`` finite-time exponents :math:`\\lambda_t` at each of those times.
        T: total time.
        steps: RK4 steps taken (each costs 4 vector-field jvps).
    """

    times: Tensor
    exponents: Tensor
    T: float
    steps: int

    @property
    def final(self) -> Tensor:
        """:math:`\\lambda_T` per trajectory, ``(n,)``."""
        return self.exponents[:, -1]

    @property
    def chaotic(self) -> Tensor:
        """Per trajectory: the tangent grew by more than ``T**2`` (``lambda_T * T > 2 log T``)."""
        return self.final * self.T > 2.0 * math.log(self.T)

    @property
    def chaotic_fraction(self) -> float:
        """Fraction of trajectories classed chaotic."""
        return float(self.chaotic.double().mean())

    def summary(self) -> dict[str, float]:
        """Median and quartiles of :math:`\\lambda_T`, the chaotic fraction and the regular reference
        :math:`\\log T / T` (the exponent a separation growing like ``T`` would show)."""
        lam = self.final.double()
        q = torch.quantile(lam, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
        return {"T": self.T, "median": float(q[1]), "q25": float(q[0]), "q75": float(q[2]),
                "chaotic_fraction": self.chaotic_fraction, "regular_reference": math.log(self.T) / self.T}


def lyapunov_exponent(system: DynamicalSystem, x0: Tensor, T: float, *, step: float = 0.01,
                      renorm: float = 1.0, generator: torch.Generator | None = None) -> LyapunovResult:
    r"""Finite-time largest Lyapunov exponents of the trajectories starting at ``x0``.

    Args:
        system: the dynamical system (its ``vector_field`` must broadcast over a leading batch axis and be
            differentiable by ``torch.func.jvp``).
        x0: initial states ``(n, d)``.
        T: integration time (> 0).
        step: RK4 step; ``renorm / step`` must be an integer.
        renorm: time between renormalisations of the tangent (keeps it far from overflow).
        generator: draws the random unit initial tangents.

    Returns:
        :class:`LyapunovResult`; ``exponents[:, k]`` is :math:`\frac{1}{t_k}\sum_{j\le k}\log g_j` with
        :math:`g_j` the tangent's growth over the ``j``-th interval.

    Raises:
        ValueError: non-positive ``T``/``step``/``renorm``, ``renorm`` not a multiple of ``step``, or a state
            of the wrong shape.
    """
    if not (T > 0 and step > 0 and renorm > 0):
        raise ValueError("lyapunov_exponent: T, step and renorm must be positive")
    per = renorm / step
    if abs(per - round(per)) > 1e-9:
        raise ValueError(f"lyapunov_exponent: renorm ({renorm}) must be a multiple of step ({step})")
    per = int(round(per))
    x = torch.as_tensor(x0, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != system.dim:
        raise ValueError(f"lyapunov_exponent: x0 must have shape (n, {system.dim}), got {tuple(x.shape)}")
    f = system.vector_field
    v = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    v = v / v.norm(dim=1, keepdim=True)

    def rhs(x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        # the variational equation's right-hand side Df(x) v by forward mode; tangents are detached
        return jvp(f, (x,), (v.detach(),))

    n_int = max(1, int(round(T / renorm)))
    logs = torch.zeros(x.shape[0], dtype=x.dtype)
    out, times = [], []
    h = step
    for k in range(1, n_int + 1):
        for _ in range(per):
            a1, b1 = rhs(x, v)
            a2, b2 = rhs(x + 0.5 * h * a1, v + 0.5 * h * b1)
            a3, b3 = rhs(x + 0.5 * h * a2, v + 0.5 * h * b2)
            a4, b4 = rhs(x + h * a3, v + h * b3)
            x = x + h / 6 * (a1 + 2 * a2 + 2 * a3 + a4)
            v = v + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4)
        g = v.norm(dim=1)
        if not torch.isfinite(g).all() or not torch.isfinite(x).all():
            raise FloatingPointError(f"lyapunov_exponent: non-finite state or tangent at t = {k * renorm:g} "
                                     "(escaping trajectory, or step too large)")
        logs = logs + torch.log(g)
        v = v / g[:, None]
        out.append(logs / (k * renorm))
        times.append(k * renorm)
    return LyapunovResult(times=torch.tensor(times, dtype=torch.float64), exponents=torch.stack(out, 1),
                          T=float(n_int * renorm), steps=n_int * per)
