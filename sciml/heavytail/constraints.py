r"""Lipschitz constraints on the critic: small strategy objects.

* :class:`GradientPenalty` -- the soft one-sided penalty
  :math:`\beta\,\mathrm{mean}\big(\mathrm{relu}(|\nabla\phi(w)|^2/L^2 - 1)\big)` at interpolates
  :math:`w = t\,x_{data} + (1-t)\,x_{gen}`, :math:`t\sim U(0,1)` (``beta = 10``, ``L = 1`` in the authors'
  code). The input gradients come from the autodiff core (``batch(gradient(f))``, i.e. vmap of
  ``torch.func.grad``) and stay differentiable in the critic's parameters.
* :class:`SpectralNormalization` -- a hard constraint: every weight rescaled to spectral norm
  :math:`L^{1/n}` after each critic step.
* :class:`Unconstrained` -- no Lipschitz bound: the plain f-divergence (the unregularised baseline).

Interface: ``penalty(f, params, x_data, x_gen, t)`` (a scalar added to the critic's loss; ``t`` drawn
outside by ``draw``) and ``project_(critic)`` (called after every critic optimiser step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..autodiff import batch, gradient
from ..nn.lipschitz import spectral_normalize_
from ..registry import Registry

__all__ = ["LipschitzConstraint", "GradientPenalty", "SpectralNormalization", "Unconstrained", "CONSTRAINTS",
           "make_constraint"]


class LipschitzConstraint:
    """Base strategy: no penalty, no projection."""

    lipschitz: float = float("inf")

    def __post_init__(self):
        # one check for every bound: the dataclass subclasses' __init__ calls it
        if not self.lipschitz > 0:
            raise ValueError(f"lipschitz must be > 0, got {self.lipschitz}")

    def draw(self, n: int, *, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> Tensor | None:
        return None

    def penalty(self, f: Callable[..., Tensor], params: Any, x_data: Tensor, x_gen: Tensor,
                t: Tensor | None) -> Tensor:
        return x_data.new_zeros(())

    def project_(self, critic: nn.Module) -> None:
        return None

    @property
    def bounded(self) -> bool:
        return False


@dataclass(frozen=True)
class Unconstrained(LipschitzConstraint):
    """No Lipschitz bound (``L = inf``): the critic estimates the plain f-divergence."""


@dataclass(frozen=True)
class GradientPenalty(LipschitzConstraint):
    r"""One-sided gradient penalty :math:`\beta\,E_w[\mathrm{relu}(|\nabla\phi(w)|^2/L^2-1)]`.

    Args:
        lipschitz: L.
        weight: beta (10 in the authors' code).
        one_sided: False gives the two-sided WGAN-GP form :math:`\beta E(|\nabla\phi|/L - 1)^2`.
        chunk_size: vmap chunking for large batches.
    """

    lipschitz: float = 1.0
    weight: float = 10.0
    one_sided: bool = True
    chunk_size: int | None = None

    @property
    def bounded(self) -> bool:
        return True

    def draw(self, n, *, generator=None, device=None, dtype=torch.float32):
        return torch.rand(n, 1, generator=generator, device=device, dtype=dtype)

    def penalty(self, f, params, x_data, x_gen, t):
        n = min(x_data.shape[0], x_gen.shape[0])
        if t is None:
            t = torch.rand(n, 1, device=x_data.device, dtype=x_data.dtype)
        w = t[:n] * x_data[:n] + (1 - t[:n]) * x_gen[:n].detach()
        g2 = batch(gradient(f), chunk_size=self.chunk_size)(params, w).pow(2).sum(-1)
        L2 = self.lipschitz**2
        if self.one_sided:
            return self.weight * torch.relu(g2 / L2 - 1).mean()
        return self.weight * (g2.sqrt() / self.lipschitz - 1).pow(2).mean()


@dataclass(frozen=True)
class SpectralNormalization(LipschitzConstraint):
    r"""Hard constraint: weights rescaled to spectral norm :math:`L^{1/n}` after each critic step."""

    lipschitz: float = 1.0

    @property
    def bounded(self) -> bool:
        return True

    def project_(self, critic):
        spectral_normalize_(critic, self.lipschitz)


#: the Lipschitz constraints of the critic: the config key ``constraint`` and ``--constraint`` offer these names
CONSTRAINTS: Registry[LipschitzConstraint] = Registry("Lipschitz constraint", LipschitzConstraint)
CONSTRAINTS.register("gp", GradientPenalty, doc="one-sided gradient penalty (soft)")
CONSTRAINTS.register("spectral", SpectralNormalization, doc="spectral normalisation of every weight (hard)")
CONSTRAINTS.register("none", Unconstrained, doc="no bound: the plain f-divergence")


def make_constraint(kind: str | LipschitzConstraint, lipschitz: float = 1.0, weight: float = 10.0) -> LipschitzConstraint:
    """A constraint by name (``gp``, ``spectral``, ``none``: :data:`CONSTRAINTS`) built with ``lipschitz``
    and the penalty ``weight`` where it takes them; a constraint object is returned as it is."""
    return CONSTRAINTS.resolve(kind, lipschitz=lipschitz, weight=weight)
