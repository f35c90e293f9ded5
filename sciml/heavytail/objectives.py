r"""f-divergences in variational form: alpha-divergences, KL, and their Lipschitz-regularised (W1-proximal)
versions.

For a convex :math:`f` with :math:`f(1)=0`,

.. math::  D_f(P\|Q) = E_Q[f(dP/dQ)] = \sup_\phi\; E_P[\phi] - E_Q[f^*(\phi)],

with the convex conjugate :math:`f^*(y) = \sup_x\, xy - f(x)`; the optimiser is
:math:`\phi^* = f'(dP/dQ)`. Restricting :math:`\phi` to :math:`L`-Lipschitz functions :math:`\Gamma_L`
gives the (f, Gamma)-divergence, equal to the W1 proximal (infimal convolution)

.. math::  D_f^{\Gamma_L}(P\|Q) = \inf_R\; D_f(R\|Q) + L\,W_1(P, R) \;\le\; \min\{D_f(P\|Q),\, L\,W_1(P,Q)\},

which tends to :math:`D_f` as :math:`L\to\infty` and behaves as :math:`L\,W_1` as :math:`L\to0`. It is
finite whenever :math:`W_1(P,Q)` is, so it can compare distributions with disjoint supports or targets
with infinite variance. In the generative models :math:`P` is the generated law and :math:`Q` the data
(as in the authors' code: ``mean(phi(gen)) - mean(f*(phi(data)))``).

Alpha-divergences (Amari / Tsallis form): :math:`f_\alpha(x) = \frac{x^\alpha - 1}{\alpha(\alpha-1)}`,
:math:`x\ge0`. For :math:`\alpha>1` its conjugate is

.. math::  f_\alpha^*(y) = \frac{1}{\alpha}\big((\alpha-1)\,y_+\big)^{\alpha/(\alpha-1)} + \frac{1}{\alpha(\alpha-1)},

and for :math:`0<\alpha<1` it is the same expression on :math:`y<0` and :math:`+\infty` for
:math:`y\ge0`. As :math:`\alpha\to1` the divergence tends to KL (:math:`f_\alpha` differs from the
equivalent generator :math:`(x^\alpha-1-\alpha(x-1))/(\alpha(\alpha-1))\to x\log x - x + 1` by a
multiple of :math:`x-1`, which does not change :math:`D_f`). KL: :math:`f(x)=x\log x`,
:math:`f^*(y)=e^{y-1}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import Registry

__all__ = [
    "FDivergence", "AlphaDivergence", "KLDivergence", "WassersteinCritic", "DIVERGENCES", "make_divergence",
    "variational_objective", "discrete_divergence", "gaussian_alpha_divergence", "gaussian_kl",
]


class FDivergence:
    """Strategy interface: the generator ``f``, its conjugate ``f_star`` and the optimal-critic link
    :math:`f'` (so :math:`\\phi^* = f'(dP/dQ)`)."""

    name: str = "f"

    def f(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def f_star(self, y: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def f_prime(self, x: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class AlphaDivergence(FDivergence):
    r""":math:`f_\alpha(x) = (x^\alpha-1)/(\alpha(\alpha-1))`, ``alpha > 0``, ``alpha != 1``.

    The authors' runs use ``alpha = 2`` (then :math:`f^*(y) = y_+^2/2 + 1/2`).
    """

    alpha: float = 2.0

    def __post_init__(self):
        if not (self.alpha > 0 and self.alpha != 1):
            raise ValueError(f"alpha must be > 0 and != 1 (use KLDivergence for alpha = 1), got {self.alpha}")

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"alpha={self.alpha:g}"

    def f(self, x: Tensor) -> Tensor:
        a = self.alpha
        return (x.clamp_min(0) ** a - 1) / (a * (a - 1))

    def f_star(self, y: Tensor) -> Tensor:
        a = self.alpha
        c = 1.0 / (a * (a - 1))
        if a > 1:
            return ((a - 1) * torch.relu(y)) ** (a / (a - 1)) / a + c
        # 0 < alpha < 1: finite only for y < 0
        val = ((a - 1) * torch.clamp(y, max=0)) ** (a / (a - 1)) / a + c
        return torch.where(y < 0, val, torch.full_like(y, math.inf))

    def f_prime(self, x: Tensor) -> Tensor:
        a = self.alpha
        return x ** (a - 1) / (a - 1)


@dataclass(frozen=True)
class KLDivergence(FDivergence):
    r"""Kullback-Leibler: :math:`f(x)=x\log x`, :math:`f^*(y)=e^{y-1}`, :math:`f'(x)=1+\log x`."""

    name: str = "kl"

    def f(self, x: Tensor) -> Tensor:
        return torch.xlogy(x, x)

    def f_star(self, y: Tensor) -> Tensor:
        return torch.exp(y - 1)

    def f_prime(self, x: Tensor) -> Tensor:
        return 1 + torch.log(x)


def make_divergence(alpha: float = 2.0) -> FDivergence:
    """The alpha family: ``AlphaDivergence(alpha)``, or ``KLDivergence()`` for ``alpha == 1`` (the limit)."""
    return KLDivergence() if alpha == 1 else AlphaDivergence(alpha)


def variational_objective(div: FDivergence, phi_p: Tensor, phi_q: Tensor) -> Tensor:
    r"""Sample estimate of :math:`E_P[\phi] - E_Q[f^*(\phi)]` from critic values on P- and Q-samples.

    A lower bound on :math:`D_f(P\|Q)` for every :math:`\phi`; equal at :math:`\phi^* = f'(dP/dQ)`;
    over :math:`L`-Lipschitz :math:`\phi` its supremum is the W1-proximal divergence.
    """
    return phi_p.mean() - div.f_star(phi_q).mean()


def discrete_divergence(div: FDivergence, p: Tensor, q: Tensor) -> Tensor:
    r"""Exact :math:`D_f(P\|Q) = \sum_i q_i f(p_i/q_i)` for probability vectors with ``q > 0``."""
    return (q * div.f(p / q)).sum()


def gaussian_alpha_divergence(mu_p: float, mu_q: float, sigma: float, alpha: float) -> float:
    r"""Closed form :math:`D_{f_\alpha}(N(\mu_p,\sigma^2)\|N(\mu_q,\sigma^2))
    = \frac{\exp(\alpha(\alpha-1)\Delta^2/(2\sigma^2)) - 1}{\alpha(\alpha-1)}`, :math:`\Delta=\mu_p-\mu_q`."""
    if alpha == 1:
        return gaussian_kl(mu_p, mu_q, sigma)
    a = alpha
    return (math.exp(a * (a - 1) * (mu_p - mu_q) ** 2 / (2 * sigma**2)) - 1) / (a * (a - 1))


def gaussian_kl(mu_p: float, mu_q: float, sigma: float) -> float:
    r""":math:`KL(N(\mu_p,\sigma^2)\|N(\mu_q,\sigma^2)) = \Delta^2/(2\sigma^2)`."""
    return (mu_p - mu_q) ** 2 / (2 * sigma**2)


@dataclass(frozen=True)
class WassersteinCritic(FDivergence):
    r"""The Wasserstein-1 (IPM) objective :math:`E_P[\phi] - E_Q[\phi]` written as an f-divergence with
    :math:`f^*(y) = y` (:math:`f` the indicator of :math:`\{1\}`); with an L-Lipschitz critic its
    supremum is :math:`L\,W_1(P,Q)`: the WGAN baseline."""

    name: str = "wasserstein"

    def f(self, x: Tensor) -> Tensor:
        return torch.where(x == 1, torch.zeros_like(x), torch.full_like(x, math.inf))

    def f_star(self, y: Tensor) -> Tensor:
        return y

    def f_prime(self, x: Tensor) -> Tensor:  # pragma: no cover - not differentiable
        raise NotImplementedError("the Wasserstein critic has no f'")


#: the objectives a run can train on: the config key ``divergence`` and ``--divergence`` offer these names
DIVERGENCES: Registry[FDivergence] = Registry("divergence", FDivergence)
DIVERGENCES.register("alpha", make_divergence, doc="alpha-divergence f_alpha (alpha = 1: its limit, KL)")
DIVERGENCES.register("kl", KLDivergence, doc="Kullback-Leibler, f(x) = x log x")
DIVERGENCES.register("wasserstein", WassersteinCritic, doc="E_P phi - E_Q phi: L W1 with an L-Lipschitz critic (WGAN)")
