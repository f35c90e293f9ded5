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

A **stationary** problem has no time: :math:`\mathcal{N}[u](x) = f(x)` in :math:`\Omega`, :math:`u = g` on
:math:`\partial\Omega`, with the operator a function of :math:`(u, \nabla u, \Delta u, x)` (the signature of
``problems.highd.StationaryOperator``); the network sees :math:`x` only. Dirichlet data are imposed
exactly by a :class:`DistanceAnsatz`,

.. math::
    u(x) = g_\text{lift}(x) + \varphi(x)\, N_\theta(x),\qquad \varphi = 0 \text{ on } \partial\Omega,\
    \varphi > 0 \text{ in } \Omega,

with :math:`g_\text{lift}` any smooth extension of :math:`g` into :math:`\Omega`: then :math:`u = g` on the
boundary whatever the network, and only the residual is trained. :func:`ball_distance` and
:func:`box_distance` build :math:`\varphi` for the two domains; any smooth per-point callable will do::

    poisson = StationaryProblem(
        name="poisson", domain=Ball(d=5),
        operator=lambda u, grad_u, lap_u, x: -lap_u,                 # -Lap u = f
        rhs=lambda x: 2 * x.shape[-1] * torch.ones_like(x[..., 0]),  # u = 1 - |x|^2
        boundary=lambda x: torch.zeros_like(x[..., 0]),
        hard=DistanceAnsatz(ball_distance(Ball(d=5))),               # u = (1 - |x|^2) N(x)
    )
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import Tensor

from sciml.autodiff import EvolutionDerivatives, HessianTrace

__all__ = ["Ball", "Box", "PDEProblem", "HardDirichlet", "Operator", "StationaryProblem", "StationaryOperatorFn",
           "DistanceAnsatz", "BallDistance", "BallTimeFactor", "InitialLift", "ball_distance", "box_distance", "is_stationary"]

#: ``operator(terms, t, x) -> (N,)``: the left-hand side :math:`\mathcal{N}[u]` from the core's terms.
Operator = Callable[[EvolutionDerivatives, Tensor, Tensor], Tensor]

#: ``operator(u, grad_u, lap_u, x) -> (N,)``: the left-hand side of a stationary problem, from
#: ``u (N,)``, ``grad_u (N, d)``, ``lap_u (N,)`` and the points ``x (N, d)``.
StationaryOperatorFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


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
    their derivatives are taken in closed form where the callable has a batched ``terms(t, x) ->
    (value, d/dt, grad_x, lap_x)`` (:class:`BallTimeFactor`, :class:`InitialLift`), otherwise by the core's
    exact Hessian trace, and combined with the network's by the product rule, so any Laplacian method
    (also a stochastic one) still applies to the network.
    """

    lift: Callable[[Tensor, Tensor], Tensor]
    factor: Callable[[Tensor, Tensor], Tensor]
    enforces_boundary: bool = True
    enforces_initial: bool = True


@dataclass(frozen=True, eq=False)
class BallTimeFactor:
    r"""The factor :math:`B(t, x) = (t - t_0)(R^2 - \|x - c\|^2)` of ``loss.hard = "initial_boundary"``, with
    its terms in closed form (:meth:`terms`): :math:`B_t = R^2 - \|x - c\|^2`,
    :math:`\nabla_x B = -2(t - t_0)(x - c)`, :math:`\Delta_x B = -2d\,(t - t_0)`. A resampled run then takes
    no Hessian per point and step for it. Per point: scalar ``t``, ``x (d,)``."""

    t0: float
    r2: float
    center: Tensor

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        return (t - self.t0) * (self.r2 - ((x - self.center.to(x)) ** 2).sum(-1))

    def terms(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(B, B_t, grad_x B, lap_x B)`` at ``t (N,)``, ``x (N, d)``."""
        y = x - self.center.to(x)
        s, tau = self.r2 - (y * y).sum(-1), t - self.t0
        return tau * s, s, -2 * tau[:, None] * y, -2 * x.shape[1] * tau


@dataclass(frozen=True, eq=False)
class InitialLift:
    r"""The lift :math:`A(t, x) = h(x)` of the hard-constraint ansatz: the initial data, constant in time.

    Its terms are :math:`(h, 0, \nabla h, \Delta h)`: in closed form when ``h`` has a method
    ``terms(x) -> (h, grad h, lap h)`` (batched, as :class:`BallDistance`'s; the catalogue's radial data
    have one), otherwise by the exact Hessian trace over :math:`x` alone (``d x d``, not ``(d+1) x (d+1)``).
    """

    initial: Callable[[Tensor], Tensor]

    def __call__(self, t: Tensor, x: Tensor) -> Tensor:
        return self.initial(x[None])[0]

    def terms(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(h, 0, grad h, lap h)`` at ``t (N,)``, ``x (N, d)``."""
        closed = getattr(self.initial, "terms", None)
        if closed is not None:
            u, grad, lap = closed(x)
        else:
            out = HessianTrace()(lambda params, z: self.initial(z[None])[0], {}, x, with_gradient=True)
            u, grad, lap = out.value, out.gradient, out.laplacian
        return u, torch.zeros_like(u), grad, lap


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
    stationary: ClassVar[bool] = False

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


# ----------------------------------------------------------------------------------------------------
# Stationary problems
def ball_distance(ball: Ball, *, normalised: bool = True) -> Callable[[Tensor], Tensor]:
    r"""The factor :math:`\varphi(x) = 1 - \|x - c\|^2/R^2` (``normalised``) or :math:`R^2 - \|x - c\|^2`.

    Zero on the sphere, positive inside, smooth (:math:`\nabla\varphi = -2(x - c)/R^2`,
    :math:`\Delta\varphi = -2d/R^2` normalised). Per point: ``x (..., d) -> (...)``.
    """
    r2 = float(ball.radius) ** 2
    return BallDistance(r2, ball.center_tensor(dtype=torch.float64), 1.0 / r2 if normalised else 1.0)


@dataclass(frozen=True, eq=False)
class BallDistance:
    r""":math:`\varphi(x) = s\,(R^2 - \|x - c\|^2)` (:func:`ball_distance`), with its terms in closed form:
    :math:`\nabla\varphi = -2s(x - c)`, :math:`\Delta\varphi = -2sd` (:meth:`terms`, so a resampled run
    does not take a Hessian per point and step)."""

    r2: float
    center: Tensor
    scale: float

    def __call__(self, x: Tensor) -> Tensor:
        return self.scale * (self.r2 - ((x - self.center.to(x)) ** 2).sum(-1))

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(phi, grad phi, lap phi)`` at ``x (N, d)``: shapes ``(N,)``, ``(N, d)``, ``(N,)``."""
        y = x - self.center.to(x)
        return (self.scale * (self.r2 - (y * y).sum(-1)), -2 * self.scale * y,
                torch.full_like(x[:, 0], -2 * self.scale * x.shape[1]))


def box_distance(box: Box, *, kind: str = "product") -> Callable[[Tensor], Tensor]:
    r"""A factor vanishing on the faces of the box :math:`\prod_i (a_i, b_i)`, from
    :math:`\psi_i(x) = 4 (x_i - a_i)(b_i - x_i) / (b_i - a_i)^2 \in (0, 1]` (one at the centre):

    * ``"product"``: :math:`\varphi = \prod_i \psi_i` (a polynomial; at the centre 1, but
      :math:`O(4^{-d})` near the corners, so prefer ``"harmonic"`` in high d);
    * ``"harmonic"``: :math:`\varphi = \big(\sum_i 1/\psi_i\big)^{-1}`, smooth inside, behaving like the
      smallest :math:`\psi_i` (the distance to the nearest face, up to a factor) near a face, and
      :math:`1/d` at the centre.

    Per point: ``x (..., d) -> (...)``.
    """
    lo = torch.tensor(box.low, dtype=torch.float64)
    hi = torch.tensor(box.high, dtype=torch.float64)
    if kind not in ("product", "harmonic"):
        raise ValueError(f"box_distance kind must be 'product' or 'harmonic', got {kind!r}")

    def psi(x: Tensor) -> Tensor:
        a, b = lo.to(x), hi.to(x)
        return 4 * (x - a) * (b - x) / (b - a) ** 2

    if kind == "product":
        return lambda x: psi(x).prod(-1)
    return lambda x: 1 / (1 / psi(x)).sum(-1)


def _zero(x: Tensor) -> Tensor:
    return torch.zeros_like(x[..., 0])


@dataclass(frozen=True)
class DistanceAnsatz:
    r"""Exact Dirichlet data by :math:`u = g_\text{lift}(x) + \varphi(x)\,N_\theta(x)`.

    Attributes:
        phi: :math:`\varphi`, zero on the boundary and positive inside (:func:`ball_distance`,
            :func:`box_distance`, or any smooth function), per point ``x (d,) -> ()``.
        lift: :math:`g_\text{lift}`, a smooth function on the closed domain equal to the Dirichlet data on
            the boundary (``None``: zero data), per point ``x (d,) -> ()``.

    Both are differentiated exactly (Hessian trace) and combined with the network's terms by the product
    rule, :math:`\Delta u = \Delta g_\text{lift} + N\Delta\varphi + 2\nabla\varphi\cdot\nabla N + \varphi\Delta N`,
    so any Laplacian method (also a stochastic one) still applies to the network.
    """

    phi: Callable[[Tensor], Tensor]
    lift: Callable[[Tensor], Tensor] | None = None

    def lift_or_zero(self) -> Callable[[Tensor], Tensor]:
        return self.lift if self.lift is not None else _zero


@dataclass(frozen=True)
class StationaryProblem:
    r"""A stationary PDE :math:`\mathcal{N}[u] = f` in ``domain``, :math:`u = g` on its boundary.

    Attributes:
        name: label for logs and results.
        domain: :class:`Ball` or :class:`Box`.
        operator: ``operator(u, grad_u, lap_u, x)`` (:data:`StationaryOperatorFn`; a
            ``problems.highd.StationaryOperator`` is one).
        rhs: ``f(x)``, batched: ``x (N, d)`` -> ``(N,)``.
        boundary: Dirichlet data ``g(x)`` on the boundary (``None``: no boundary loss).
        exact: the exact solution ``u(x)`` if known (used for test metrics).
        params: the record of the problem (e.g. ``{"equation": "poisson", "d": 5}``).
        hard: optional :class:`DistanceAnsatz` imposing the Dirichlet data exactly.
    """

    name: str
    domain: Ball | Box
    operator: StationaryOperatorFn
    rhs: Callable[[Tensor], Tensor]
    boundary: Callable[[Tensor], Tensor] | None = None
    exact: Callable[[Tensor], Tensor] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    hard: DistanceAnsatz | None = None
    stationary: ClassVar[bool] = True

    @property
    def d(self) -> int:
        return self.domain.d

    def residual(self, u: Tensor, grad_u: Tensor, lap_u: Tensor, x: Tensor, f: Tensor | None = None) -> Tensor:
        r""":math:`\mathcal{N}[u] - f` at the points (``f`` precomputed or evaluated here)."""
        return self.operator(u, grad_u, lap_u, x) - (self.rhs(x) if f is None else f)


def is_stationary(problem: Any) -> bool:
    """Whether ``problem`` has no time (a :class:`StationaryProblem`): the network then sees ``x`` only."""
    return bool(getattr(problem, "stationary", False))
