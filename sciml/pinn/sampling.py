r"""Collocation samplers for balls and boxes, times a time interval.

Three ball samplers, all :math:`x = c + r\,\omega` with :math:`\omega` a uniform direction
(a normalised Gaussian):

* :class:`UniformBall` (the default) is uniform in volume: :math:`r = R\,U^{1/d}`. In d = 10 this puts
  only :math:`0.5^{10} \approx 0.1\%` of the points within half the radius.
* :class:`RadialUniformBall` is the SVD-PINN / SDGD / HTE codes' sampler: :math:`r \sim U(r_{min}, R)`,
  uniform in the radius, so the centre is heavily over-sampled relative to volume. Use it to
  reproduce those papers (their test sets are drawn the same way), and when the solution's mass
  sits near the centre, as for the Allen-Cahn family.
* :class:`MixedBall` draws half its radii each way: accurate at the centre and near the sphere.

Samplers are small strategy objects registered by name in :data:`SAMPLERS` (the choices of the config
key ``sampling.sampler``); all randomness comes from the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sciml.registry import Registry

from .problem import Ball, Box, PDEProblem, StationaryProblem, is_stationary

__all__ = ["SAMPLERS", "UniformBall", "RadialUniformBall", "MixedBall", "Points", "sample_points", "sample_domain",
           "sample_boundary"]


def _directions(n: int, d: int, generator, device, dtype) -> Tensor:
    g = torch.randn(n, d, generator=generator, device=device, dtype=dtype)
    return g / g.norm(dim=1, keepdim=True).clamp_min(1e-30)


def _open_unit(u: Tensor) -> Tensor:
    """``torch.rand``'s ``[0, 1)`` made ``(0, 1]``: an exact 0 (about one float32 draw in 2^24, so once in a
    few thousand steps of 256 points) would put a point at the centre, where a solution with a cone there
    (the linear parabolic family: ``Lap u ~ 1/|x|``) has an infinite right-hand side; one such point gave a
    loss of 1e24 and froze Adam (its second moments at 1e19) for the rest of the run. Zeros become 1; every
    other draw, and so every run that never drew a zero, is unchanged."""
    return torch.where(u > 0, u, torch.ones_like(u))


@dataclass(frozen=True)
class UniformBall:
    """Uniform in the ball's volume: :math:`r = R\\,U^{1/d}` (the correct default)."""

    def radii(self, n: int, ball: Ball, generator, device, dtype) -> Tensor:
        u = _open_unit(torch.rand(n, generator=generator, device=device, dtype=dtype))
        return ball.radius * u ** (1.0 / ball.d)


@dataclass(frozen=True)
class RadialUniformBall:
    """Uniform in the radius, :math:`r \\sim U(r_{min}, R)` (the SVD-PINN code's ``gen_ball``).

    Attributes:
        r_min: smallest radius as a fraction of R (the released linear-parabolic code uses 1e-3 to stay
            away from the cone of the exact solution at the origin).
    """

    r_min: float = 0.0

    def __post_init__(self):
        if not 0 <= self.r_min < 1:
            raise ValueError(f"r_min must be in [0, 1), got {self.r_min}")

    def radii(self, n: int, ball: Ball, generator, device, dtype) -> Tensor:
        u = _open_unit(torch.rand(n, generator=generator, device=device, dtype=dtype))
        return ball.radius * (self.r_min + (1 - self.r_min) * u)


@dataclass(frozen=True)
class MixedBall:
    """Half the points of each: the first ``n // 2`` radii uniform in the radius (:class:`RadialUniformBall`,
    the centre, where the papers test), the rest uniform in volume (:class:`UniformBall`, the shell near
    the sphere, where most of the ball's volume is). A network trained on either alone is 2-3x worse on
    the other's test set (docs/highd_benchmarks.md)."""

    r_min: float = 0.0

    def radii(self, n: int, ball: Ball, generator, device, dtype) -> Tensor:
        k = n // 2
        return torch.cat([RadialUniformBall(self.r_min).radii(k, ball, generator, device, dtype),
                          UniformBall().radii(n - k, ball, generator, device, dtype)])


BallSampler = UniformBall | RadialUniformBall | MixedBall

#: collocation samplers of a ball by name; ``SAMPLERS.resolve("radial", r_min=1e-3)``
SAMPLERS: Registry[BallSampler] = Registry("collocation sampler", (UniformBall, RadialUniformBall, MixedBall))
SAMPLERS.register("volume", UniformBall)
SAMPLERS.register("radial", RadialUniformBall)
SAMPLERS.register("mixed", MixedBall)


def sample_domain(domain: Ball | Box, n: int, *, sampler: BallSampler = UniformBall(), generator=None,
                  device=None, dtype=torch.float32) -> Tensor:
    """``n`` points in the domain, shape ``(n, d)``."""
    if isinstance(domain, Ball):
        r = sampler.radii(n, domain, generator, device, dtype)
        return domain.center_tensor(device, dtype) + r[:, None] * _directions(n, domain.d, generator, device, dtype)
    low = torch.tensor(domain.low, device=device, dtype=dtype)
    high = torch.tensor(domain.high, device=device, dtype=dtype)
    return low + (high - low) * torch.rand(n, domain.d, generator=generator, device=device, dtype=dtype)


def sample_boundary(domain: Ball | Box, n: int, *, generator=None, device=None, dtype=torch.float32) -> Tensor:
    """``n`` points on the boundary (uniform on the sphere; on the box, a random face per point)."""
    if isinstance(domain, Ball):
        return domain.center_tensor(device, dtype) + domain.radius * _directions(n, domain.d, generator, device, dtype)
    x = sample_domain(domain, n, generator=generator, device=device, dtype=dtype)
    low = torch.tensor(domain.low, device=device, dtype=dtype)
    high = torch.tensor(domain.high, device=device, dtype=dtype)
    # faces weighted equally (fine for near-cubic boxes); pick the coordinate and the side
    coord = torch.randint(domain.d, (n,), generator=generator, device=device)
    side = torch.randint(2, (n,), generator=generator, device=device).bool()
    rows = torch.arange(n, device=device)
    x[rows, coord] = torch.where(side, high[coord], low[coord])
    return x


@dataclass(frozen=True)
class Points:
    """One set of collocation points: interior ``(t_in, x_in)``, lateral boundary ``(t_bd, x_bd)``,
    initial ``x_ic`` (at ``t0``)."""

    t_in: Tensor
    x_in: Tensor
    t_bd: Tensor
    x_bd: Tensor
    x_ic: Tensor

    def to(self, device=None, dtype=None) -> "Points":
        return Points(*(v.to(device=device, dtype=dtype) for v in (self.t_in, self.x_in, self.t_bd, self.x_bd, self.x_ic)))


def sample_points(problem: PDEProblem | StationaryProblem, n_interior: int, n_boundary: int, n_initial: int, *,
                  sampler: BallSampler = UniformBall(), generator=None, device=None,
                  dtype=torch.float32) -> Points:
    """Interior, boundary and initial collocation points for ``problem`` (times uniform in ``t_range``).

    A stationary problem has no times and no initial points: ``t_in`` and ``t_bd`` are zeros (unused,
    nothing drawn for them) and ``x_ic`` is empty, whatever ``n_initial``.
    """
    if is_stationary(problem):
        dom = problem.domain
        x_in = sample_domain(dom, n_interior, sampler=sampler, generator=generator, device=device, dtype=dtype)
        x_bd = sample_boundary(dom, n_boundary, generator=generator, device=device, dtype=dtype)
        return Points(x_in.new_zeros(n_interior), x_in, x_bd.new_zeros(n_boundary), x_bd,
                      x_in.new_zeros(0, dom.d))
    t0, t1 = problem.t_range

    def times(n):
        return t0 + (t1 - t0) * torch.rand(n, generator=generator, device=device, dtype=dtype)

    dom = problem.domain
    return Points(
        times(n_interior), sample_domain(dom, n_interior, sampler=sampler, generator=generator, device=device, dtype=dtype),
        times(n_boundary), sample_boundary(dom, n_boundary, generator=generator, device=device, dtype=dtype),
        sample_domain(dom, n_initial, sampler=sampler, generator=generator, device=device, dtype=dtype),
    )
