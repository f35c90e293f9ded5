r"""Natural-gradient steps with momentum in the dual form (SPRING) for PINN losses.

The loss is a sum of squares, :math:`L(\theta) = \|r(\theta)\|^2`, with the stacked residuals scaled by
:math:`\sqrt{w/n}` (the blocks of :mod:`sciml.pinn.gauss_newton`) and their Jacobian :math:`J = \partial r /
\partial\theta` (:math:`m` points by :math:`P` trainable numbers; in high dimension :math:`P \gg m`). The energy
natural gradient (Mueller & Zeinhofer, 2023) is the damped Gauss-Newton direction, an :math:`m \times m` solve
by the push-through identity:

.. math::
    \varphi = (J^\top J + \lambda I)^{-1} J^\top r = J^\top (J J^\top + \lambda I)^{-1} r .

With fresh points every step a batch constrains only :math:`m` of the :math:`P` directions, and the
minimum-norm :math:`\varphi` fits that batch alone: the next batch undoes part of it (the Levenberg-Marquardt
finish gained nothing at d = 100 for this reason, docs/pinn.md). SPRING (Goldshlager, Abrahamsen & Lin, 2024;
for PINNs Guzman-Cordero, Dangel, Goldshlager & Zeinhofer, 2025) keeps the last direction as the prior of the
next one:

.. math::
    \varphi_k = \arg\min_\varphi \|J\varphi - r\|^2 + \lambda\|\varphi - \mu\varphi_{k-1}\|^2
              = \mu\varphi_{k-1} + J^\top (J J^\top + \lambda I)^{-1} (r - \mu J \varphi_{k-1}),
    \qquad \theta_{k+1} = \theta_k - \eta_k \varphi_k,

so what earlier batches taught survives in the directions the current batch does not see (a Kaczmarz
projection with momentum). :math:`\lambda` is relative to the mean diagonal of :math:`J J^\top`, the
:math:`m \times m` system is factored in float64, and :math:`\eta_k` follows the run's learning-rate schedule
(:func:`sciml.pinn.solver.lr_factor`). One step costs the per-point Jacobian (1.6-2x a batch gradient with
the forward Laplacian, :func:`~sciml.pinn.gauss_newton.residual_jacobian`) and :math:`m^2 P` for
:math:`J J^\top`; its memory is :math:`m P` floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor

from .gauss_newton import dual_cholesky

__all__ = ["Spring"]


@dataclass
class Spring:
    r"""The SPRING direction (module docstring) and its state, the last direction :math:`\varphi`.

    Attributes:
        damping: :math:`\lambda` relative to the mean diagonal of :math:`J J^\top`.
        momentum: :math:`\mu \in [0, 1)`; 0 is the energy natural gradient of each batch alone.
        phi: the last direction (``None`` before the first step).
        steps: directions computed (a counter of work done).
    """

    damping: float = 1e-3
    momentum: float = 0.99
    phi: Tensor | None = None
    steps: int = 0

    def __post_init__(self):
        if not self.damping > 0:
            raise ValueError(f"damping must be > 0, got {self.damping}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")

    def direction(self, r: Tensor, J: Tensor) -> Tensor:
        r"""The direction :math:`\varphi_k` for the residuals ``r (m,)`` and their Jacobian ``J (m, P)``; the
        step is :math:`-\eta\varphi_k`. Raises ``FloatingPointError`` when ``r`` or ``J`` is not finite."""
        if not (torch.isfinite(r).all() and torch.isfinite(J).all()):
            raise FloatingPointError("the residuals or their Jacobian are not finite")
        p = J.shape[1]
        if self.phi is None or self.phi.shape[0] != p:
            self.phi = J.new_zeros(p)
        gram = J @ J.T
        lam = self.damping * max(float(gram.double().diagonal().mean()), 1e-300)
        L = dual_cholesky(J, lam, gram)
        if L is None:
            raise FloatingPointError("the damped Gram matrix J J^T + lambda I is not positive definite")
        zeta = r.double() - self.momentum * (J @ self.phi).double()
        y = torch.cholesky_solve(zeta[:, None], L)[:, 0]
        self.phi = self.momentum * self.phi + J.T @ y.to(J.dtype)
        self.steps += 1
        return self.phi

    def state(self) -> dict[str, Any]:
        return {"phi": None if self.phi is None else self.phi.detach().clone(), "steps": self.steps}

    def load(self, st: Mapping[str, Any]) -> None:
        self.phi = None if st["phi"] is None else st["phi"].clone()
        self.steps = int(st["steps"])
