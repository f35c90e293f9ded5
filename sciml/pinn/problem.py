r"""The PDE problem API: a domain, a residual written with the autodiff core, boundary/initial data.

An evolution problem on :math:`(t_0, t_1) \times \Omega`, :math:`\Omega \subset \mathbb{R}^d` a ball or a box:

.. math::
    \mathcal{N}[u](t, x) = f(t, x) \ \text{in } \Omega,\qquad u = g \ \text{on } \partial\Omega,
    \qquad u(t_0, \cdot) = h .

The operator :math:`\mathcal{N}` is a function of the terms the core computes in one pass
(:func:`sciml.autodiff.evolution_terms`: ``u``, ``u_t``, ``grad_x``, ``lap_x``), so a new PDE is a few
lines::

    heat = PDEProblem(
        name="heat", domain=Ball(d=3), t_range=(0.0, 1.0),
        operator=lambda du, t, x: du.u_t - du.lap_x,      # u_t - Lap u
        rhs=lambda t, x: torch.zeros_like(t),
        boundary=lambda t, x: torch.zeros_like(t),
        initial=lambda x: torch.cos(torch.pi / 2 * x.norm(dim=-1)),
    )

A family (same operator, different data) is a list of problems that differ only in ``rhs``,
``boundary``, ``initial`` and ``exact``; :mod:`sciml.transfer` uses that to train members together.
Problems are data: frozen dataclasses with callables, knowing nothing of networks or trainers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from sciml.autodiff import EvolutionDerivatives

__all__ = ["Ball", "Box", "PDEProblem", "HardDirichlet", "Operator"]

#: ``operator(terms, t, x) -> (N,)``: the left-hand side :math:`\mathcal{N}[u]` from the core's terms.
Operator = Callable[[EvolutionDerivatives, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Ball:
    """The ball :math:`\\{x \\in \\mathbb{R}^d : \\|x - c\\| < R\\}` (centre at the origin unless given)."""

    d: int
    radius: float = 1.0
    center: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.d < 1 or self.radius <= 0:
            raise ValueError(f"Ball needs d >= 1 and radius > 0, got d={self.d}, radius={self.radius}")
        if self.center is not None and len(self.center) != self.d:
            raise ValueError(f"Ball center has {len(self.center)} coordinates, expected d={self.d}")

    def center_tensor(self, device=None, dtype=torch.float32) -> Tensor:
        c = self.center if self.center is not None else (0.0,) * self.d
        return torch.tensor(c, device=device, dtype=dtype)


@dataclass(frozen=True)
class Box:
    """The box :math:`\\prod_i (\\text{low}_i, \\text{high}_i)`."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self):
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError("Box low and high must be non-empty and of equal length")
        if any(h <= l for l, h in zip(self.low, self.high)):
            raise ValueError(f"Box needs low < high in every coordinate, got {self.low}, {self.high}")

    @property
    def d(self) -> int:
        return len(self.low)


@dataclass(frozen=True)
class HardDirichlet:
    r"""Hard constraints by the ansatz :math:`u = A(t, x) + B(t, x)\, N_\theta(t, x)`.

    ``A`` satisfies the boundary and initial data and ``B`` vanishes where they are imposed (e.g.
    :math:`B = (t - t_0)(1 - \|x\|^2)` on the unit ball), so the corresponding loss terms vanish
    identically. Both are per-point functions of ``(t, x)`` (scalar ``t``, ``x`` of shape ``(d,)``);
    their derivatives are taken by the core's exact Hessian trace and combined with the network's
    by the product rule, so any Laplacian method (also a stochastic one) still applies to the network.
    """

    lift: Callable[[Tensor, Tensor], Tensor]
    factor: Callable[[Tensor, Tensor], Tensor]
    enforces_boundary: bool = True
    enforces_initial: bool = True


@dataclass(frozen=True)
class PDEProblem:
    """An evolution PDE :math:`\\mathcal{N}[u] = f` on ``t_range`` x ``domain`` with Dirichlet data.

    Attributes:
        name: label for logs and results.
        domain: :class:`Ball` or :class:`Box`.
        t_range: ``(t0, t1)``.
        operator: ``operator(terms, t, x)`` with ``terms`` from :func:`sciml.autodiff.evolution_terms`.
        rhs: ``f(t, x)``, batched: ``t (N,)``, ``x (N, d)`` -> ``(N,)``.
        boundary: Dirichlet data ``g(t, x)`` on the lateral boundary (``None``: no boundary loss).
        initial: initial data ``h(x)`` at ``t0`` (``None``: no initial loss).
        exact: the exact solution ``u(t, x)`` if known (used for test metrics).
        params: the family parameter(s) of this member, for the record (e.g. ``{"eps": 50.0}``).
        hard: optional :class:`HardDirichlet` ansatz.
    """

    name: str
    domain: Ball | Box
    t_range: tuple[float, float]
    operator: Operator
    rhs: Callable[[Tensor, Tensor], Tensor]
    boundary: Callable[[Tensor, Tensor], Tensor] | None = None
    initial: Callable[[Tensor], Tensor] | None = None
    exact: Callable[[Tensor, Tensor], Tensor] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    hard: HardDirichlet | None = None

    def __post_init__(self):
        t0, t1 = self.t_range
        if not t1 > t0:
            raise ValueError(f"t_range must have t1 > t0, got {self.t_range}")

    @property
    def d(self) -> int:
        return self.domain.d

    def residual(self, terms: EvolutionDerivatives, t: Tensor, x: Tensor, f: Tensor | None = None) -> Tensor:
        """:math:`\\mathcal{N}[u] - f` at the points (``f`` precomputed or evaluated here)."""
        return self.operator(terms, t, x) - (self.rhs(t, x) if f is None else f)
