r"""PDE families of the SVD-PINN paper (Gao, Cheung, Ng, arXiv 2211.08760), dimension as a parameter.

**Allen-Cahn** on :math:`(0,1) \times B^d` (unit ball), family parameter :math:`\varepsilon`:

.. math::
    u_t - \Delta u - u + u^3 = f_\varepsilon,\qquad
    u_\varepsilon(t,x) = e^{-t}\big[\sin(\tfrac\pi2 (1-r)^{5/2}) + \varepsilon \sin(\tfrac\pi2(1-r))\big],
    \ r = \|x\|,

zero on the sphere. With :math:`u = e^{-t} g(r)`: :math:`u_t = -u`,
:math:`\Delta u = e^{-t}(g'' + \frac{d-1}{r} g')`, so :math:`f = -2u - \Delta u + u^3`.

**Linear parabolic** on :math:`(0, \tfrac12) \times B^d`, family parameter :math:`c`:

.. math::
    u_t - \nabla\cdot\big((1 + \tfrac{r}{2})\nabla u\big) = f_c,\qquad
    u_c(t,x) = \exp\big(r\,\phi(t)\big),\ \phi = \sqrt{1-t} + c(1-t).

For radial u, :math:`\nabla\cdot(a\nabla u) = a\,\Delta u + a'(r)\,u_r` with :math:`a = 1 + r/2`,
:math:`u_r = \phi u`, :math:`\Delta u = (\phi^2 + (d-1)\phi/r)\,u` and :math:`u_t = r\phi' u`,
:math:`\phi' = -\frac{1}{2\sqrt{1-t}} - c`. (The released helper uses :math:`-1/\sqrt{1-t}` for
:math:`\phi'`, off by a factor 2; we use the derivative, checked against autodiff in the tests.)
The solution has a cone at :math:`x = 0` (its Laplacian is :math:`O(1/r)`), so the interior sampler
keeps :math:`r \ge 10^{-3}` as the released code does.

Both right-hand sides are closed forms; ``tests/test_pinn_problems.py`` checks that the residual of
the exact solution, differentiated independently by ``torch.func`` in float64, is ~0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from sciml.pinn.problem import Ball, PDEProblem

__all__ = ["allen_cahn", "linear_parabolic", "RadialData", "FAMILIES", "family_member"]

_HALF_PI = math.pi / 2
_R_EPS = 1e-12  # r enters as (d-1)/r * g'(r) with g'(0) = 0; keep the division finite at the origin


def _norm(x: Tensor) -> Tensor:
    return x.norm(dim=-1)


@dataclass(frozen=True, eq=False)
class RadialData:
    r"""Radial data :math:`h(x) = g(\|x\|)` from its profile ``g(r) -> (g, g', g'')``, with the terms the
    hard-constraint lift takes (:class:`sciml.pinn.problem.InitialLift`) in closed form:
    :math:`\nabla h = g'(r)\, x / r`, :math:`\Delta h = g'' + (d - 1) g'/r`."""

    profile: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]

    def __call__(self, x: Tensor) -> Tensor:
        return self.profile(_norm(x))[0]

    def terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(h, grad h, lap h)`` at ``x (N, d)``."""
        r = _norm(x)
        g, g1, g2 = self.profile(r)
        inv = 1 / r.clamp_min(_R_EPS)
        return g, (g1 * inv)[:, None] * x, g2 + (x.shape[-1] - 1) * g1 * inv


# ----------------------------------------------------------------------------------------------------
# Allen-Cahn
def _ac_profile(r: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """g(r), g'(r), g''(r) of the radial profile."""
    s = (1 - r).clamp_min(0)
    a = _HALF_PI * s**2.5
    da = -_HALF_PI * 2.5 * s**1.5          # d a / d r
    d2a = _HALF_PI * 2.5 * 1.5 * s**0.5    # d^2 a / d r^2
    b = _HALF_PI * s
    db = -_HALF_PI
    g = torch.sin(a) + eps * torch.sin(b)
    g1 = torch.cos(a) * da + eps * torch.cos(b) * db
    g2 = -torch.sin(a) * da**2 + torch.cos(a) * d2a - eps * torch.sin(b) * db**2
    return g, g1, g2


def allen_cahn(eps: float = 0.0, d: int = 10) -> PDEProblem:
    r"""The Allen-Cahn member :math:`u_t - \Delta u - u + u^3 = f_\varepsilon` on (0,1) x unit ball in R^d."""
    d = int(d)

    def exact(t: Tensor, x: Tensor) -> Tensor:
        g, _, _ = _ac_profile(_norm(x), eps)
        return torch.exp(-t) * g

    def rhs(t: Tensor, x: Tensor) -> Tensor:
        r = _norm(x)
        g, g1, g2 = _ac_profile(r, eps)
        e = torch.exp(-t)
        u = e * g
        lap = e * (g2 + (d - 1) * g1 / r.clamp_min(_R_EPS))
        return -2 * u - lap + u**3

    def operator(du, t, x):
        return du.u_t - du.lap_x - du.u + du.u**3

    return PDEProblem(
        name=f"allen_cahn(eps={eps:g}, d={d})", domain=Ball(d), t_range=(0.0, 1.0), operator=operator,
        rhs=rhs, boundary=lambda t, x: torch.zeros_like(t), initial=RadialData(lambda r: _ac_profile(r, eps)),
        exact=exact, params={"family": "allen_cahn", "eps": float(eps), "d": d},
    )


# ----------------------------------------------------------------------------------------------------
# Linear parabolic
def _lp_profile(r: Tensor, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """g(r), g'(r), g''(r) of :math:`e^{p r}`."""
    g = torch.exp(r * p)
    return g, p * g, p * p * g


def linear_parabolic(c: float = 1.0, d: int = 10) -> PDEProblem:
    r"""The member :math:`u_t - \nabla\cdot((1 + |x|/2)\nabla u) = f_c` on (0, 1/2) x unit ball in R^d."""
    d = int(d)

    def phi(t):
        return torch.sqrt(1 - t) + c * (1 - t)

    def exact(t: Tensor, x: Tensor) -> Tensor:
        return torch.exp(_norm(x) * phi(t))

    def rhs(t: Tensor, x: Tensor) -> Tensor:
        r = _norm(x)
        p = phi(t)
        u = torch.exp(r * p)
        u_t = r * (-0.5 / torch.sqrt(1 - t) - c) * u
        lap = (p**2 + (d - 1) * p / r.clamp_min(_R_EPS)) * u
        return u_t - ((1 + r / 2) * lap + 0.5 * p * u)

    def operator(du, t, x):
        r = _norm(x)
        radial = (du.grad_x * x).sum(-1) / r.clamp_min(_R_EPS)  # u_r = grad u . x / |x|
        return du.u_t - ((1 + r / 2) * du.lap_x + 0.5 * radial)

    return PDEProblem(
        name=f"linear_parabolic(c={c:g}, d={d})", domain=Ball(d), t_range=(0.0, 0.5), operator=operator,
        rhs=rhs, boundary=exact, initial=RadialData(lambda r: _lp_profile(r, phi(r.new_zeros(())))), exact=exact,
        params={"family": "linear_parabolic", "c": float(c), "d": d},
    )


#: family name -> (factory(param, d), name of the family parameter)
FAMILIES = {"allen_cahn": (allen_cahn, "eps"), "linear_parabolic": (linear_parabolic, "c")}


def family_member(family: str, value: float, d: int = 10) -> PDEProblem:
    """The member of ``family`` (``"allen_cahn"`` or ``"linear_parabolic"``) at parameter ``value``."""
    try:
        factory, _ = FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown PDE family {family!r}; choose one of {sorted(FAMILIES)}") from None
    return factory(value, d)
