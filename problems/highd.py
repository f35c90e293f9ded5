r"""High-dimensional PDE benchmarks with exact solutions (SDGD / STDE), in closed form and O(d) per point.

**The many-body solutions** on the unit ball :math:`B^d`, zero on the sphere (SDGD section 5.1; STDE
``twobody_sol`` / ``threebody_sol``):

.. math::
    u(x) = B(x)\, s(x),\qquad B(x) = 1 - \|x\|^2,

    s_2(x) = \sum_{i=1}^{d-1} c_i \sin(z_i),\quad z_i = x_i + \cos x_{i+1} + x_{i+1}\cos x_i
    \qquad\text{(two-body)},

    s_3(x) = \sum_{i=1}^{d-2} c_i \exp(x_i x_{i+1} x_{i+2})\qquad\text{(three-body)},

with :math:`c_1, \dots, c_d \sim N(0, 1)` drawn once from the seed (the first :math:`d-1` resp.
:math:`d-2` are used, as in the STDE code). Every term couples neighbouring coordinates, so the
solution is not a sum of one-dimensional functions ("inseparable").

**Derivatives in closed form.** With :math:`\nabla B = -2x` and :math:`\Delta B = -2d`,

.. math::
    \nabla u = -2x\, s + B\,\nabla s,\qquad
    \partial_{jj} u = -2 s - 4 x_j\,\partial_j s + B\,\partial_{jj} s,\qquad
    \Delta u = -2d\, s - 4\, x\cdot\nabla s + B\,\Delta s .

Two-body, with :math:`a = x_i`, :math:`b = x_{i+1}`, :math:`p_i = \partial_a z_i = 1 - b\sin a`,
:math:`q_i = \partial_b z_i = \cos a - \sin b`, :math:`\partial_{aa} z_i = -b\cos a`,
:math:`\partial_{bb} z_i = -\cos b`: term :math:`i` contributes :math:`c_i\cos z_i\,(p_i, q_i)` to
:math:`(\partial_a s, \partial_b s)` and

.. math::
    \Delta s = \sum_i c_i\big[-\sin z_i\,(p_i^2 + q_i^2) - \cos z_i\,(b\cos a + \cos b)\big],\qquad
    x\cdot\nabla s = \sum_i c_i \cos z_i\,(a\,p_i + b\,q_i).

Three-body, with :math:`w_i = x_i x_{i+1} x_{i+2}` and :math:`E_i = c_i e^{w_i}`: term :math:`i`
contributes :math:`E_i\,(x_{i+1}x_{i+2},\ x_i x_{i+2},\ x_i x_{i+1})` to the three partials,
:math:`E_i\,(x_{i+1}x_{i+2})^2` etc. to the second partials, and :math:`x\cdot\nabla s = \sum_i 3 w_i E_i`.
(The STDE code's ``threebody_lapl_analytical`` drops the factors :math:`x_{i+1}x_{i+2}` etc., so its
right-hand sides are not those of its ``threebody_sol``; the formulas here are checked against
``torch.func.hessian`` in ``tests/test_highd_problems.py``.)

**Equations** (:data:`OPERATORS`), each written as :math:`\mathcal{N}[u] = g` with the operator a
function of ``(u, grad_u, lap_u, x)`` and :math:`g = \mathcal{N}[u_{exact}]` in closed form:

* ``poisson``: :math:`-\Delta u = g` (the SDGD/STDE codes write :math:`\Delta u = g`: their g is minus ours);
* ``sine_gordon``: :math:`\Delta u + \sin u = g`;
* ``allen_cahn``: :math:`\Delta u + u - u^3 = g`.

:func:`highd_problem` pairs an equation with a solution as a :class:`HighDProblem` (plain data: the
operator, the exact solution, the closed-form right-hand side, zero Dirichlet data, the hard-constraint
factor B). :func:`affine_baseline` is the trivial reference every solver must beat: in high d the
coordinates of a ball point are :math:`O(1/\sqrt d)`, so :math:`u \approx B\,(a + b\cdot x)`
(``docs/highd_benchmarks.md``).

**A time-dependent inseparable case** (SDGD section 5.3, ``HJB_Rosenbrock.py``): :class:`HJBRosenbrock`,

.. math::
    u_t + \Delta u - \|\nabla u\|^2 = 0 \ \text{on } (0, T)\times\mathbb{R}^d,\qquad
    u(T, x) = g(x) = \log\Big(1 + \sum_{i=1}^{d-1} c_{1,i}(x_i - x_{i+1})^2 + c_{2,i}\,x_{i+1}^2\Big),

:math:`c_{k,i} \sim U(0.5, 1.5)`. It has no closed form; the Cole-Hopf transform :math:`v = e^{-u}`
turns it into the backward heat equation :math:`v_t + \Delta v = 0`, so
:math:`u(t, x) = -\log \mathbb{E}\,\exp\!\big(-g(x + \sqrt{2(T-t)}\,W)\big)`, :math:`W \sim N(0, I_d)`,
which :func:`cole_hopf_reference` evaluates by Monte Carlo with a standard error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from sciml.pinn.problem import Ball, DistanceAnsatz, StationaryProblem, ball_distance
from sciml.run.seeds import derived_generator

__all__ = ["ManyBodySolution", "Derivatives", "two_body", "three_body", "StationaryOperator", "OPERATORS",
           "HighDProblem", "highd_problem", "BENCHMARKS", "benchmark", "AffineBaseline", "affine_baseline",
           "HJBRosenbrock", "cole_hopf_reference"]

F64 = torch.float64


# ----------------------------------------------------------------------------------------------------
# The many-body exact solutions
class _Parts(NamedTuple):
    """The inner sum s and what the product rule needs of it (``grad``/``diag`` only when asked)."""

    s: Tensor
    x_dot_grad: Tensor
    lap: Tensor
    grad: Tensor | None
    diag: Tensor | None


def _scatter(parts: list[Tensor], d: int) -> Tensor:
    """Sum per-term contributions to the coordinates: ``parts[k][..., i]`` goes to coordinate ``i + k``."""
    m = parts[0].shape[-1]
    return sum(F.pad(p, (k, d - m - k)) for k, p in enumerate(parts))


def _two_body_parts(x: Tensor, c: Tensor, full: bool) -> _Parts:
    a, b = x[..., :-1], x[..., 1:]
    cos_a, sin_a, cos_b, sin_b = torch.cos(a), torch.sin(a), torch.cos(b), torch.sin(b)
    z = a + cos_b + b * cos_a
    p = 1 - b * sin_a                       # dz/da
    q = cos_a - sin_b                       # dz/db
    cz, sz = c * torch.cos(z), c * torch.sin(z)
    d2a = -sz * p**2 - cz * b * cos_a       # second derivative of the term in a
    d2b = -sz * q**2 - cz * cos_b           # ... in b
    s = sz.sum(-1)
    x_dot_grad = (cz * (a * p + b * q)).sum(-1)
    lap = (d2a + d2b).sum(-1)
    if not full:
        return _Parts(s, x_dot_grad, lap, None, None)
    d = x.shape[-1]
    return _Parts(s, x_dot_grad, lap, _scatter([cz * p, cz * q], d), _scatter([d2a, d2b], d))


def _three_body_parts(x: Tensor, c: Tensor, full: bool) -> _Parts:
    a, b, e = x[..., :-2], x[..., 1:-1], x[..., 2:]
    w = a * b * e
    E = c * torch.exp(w)
    be, ae, ab = b * e, a * e, a * b        # dw/da, dw/db, dw/de
    s = E.sum(-1)
    x_dot_grad = (3 * w * E).sum(-1)        # a*be + b*ae + e*ab = 3w
    lap = (E * (be**2 + ae**2 + ab**2)).sum(-1)
    if not full:
        return _Parts(s, x_dot_grad, lap, None, None)
    d = x.shape[-1]
    return _Parts(s, x_dot_grad, lap, _scatter([E * be, E * ae, E * ab], d),
                  _scatter([E * be**2, E * ae**2, E * ab**2], d))


_BODIES: dict[int, tuple[str, Callable[[Tensor, Tensor, bool], _Parts]]] = {
    2: ("two_body", _two_body_parts), 3: ("three_body", _three_body_parts)}


class Derivatives(NamedTuple):
    """``u (...)``, ``grad (..., d)`` (``None`` unless asked), ``lap (...)`` of the exact solution."""

    u: Tensor
    grad: Tensor | None
    lap: Tensor


@dataclass(frozen=True)
class ManyBodySolution:
    r"""The exact solution :math:`u = (1 - \|x\|^2)\, s(x)` (two- or three-body :math:`s`, module docstring).

    All methods take ``x`` of shape ``(..., d)`` (one point ``(d,)`` or a batch ``(N, d)``) and cost O(d)
    per point; coefficients follow ``x``'s dtype and device. Equality and hashing use ``(d, body, seed)``.

    Attributes:
        d: dimension (>= ``body``).
        body: 2 (sine of neighbouring pairs) or 3 (exponential of neighbouring triples).
        seed: fixes :math:`c \sim N(0, I_d)` (stream ``derive_seed(seed, "highd", "coefficients")``).
        coeffs: the ``d - body + 1`` coefficients in use (float64, derived from ``seed``).
    """

    d: int
    body: int = 2
    seed: int = 0
    coeffs: Tensor = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        if self.body not in _BODIES:
            raise ValueError(f"body must be one of {sorted(_BODIES)}, got {self.body}")
        if self.d < self.body:
            raise ValueError(f"a {self.body}-body solution needs d >= {self.body}, got d={self.d}")
        g = derived_generator(self.seed, "highd", "coefficients")
        c = torch.randn(self.d, generator=g, dtype=F64)[: self.d - self.body + 1]
        object.__setattr__(self, "coeffs", c)

    @property
    def name(self) -> str:
        return _BODIES[self.body][0]

    def _parts(self, x: Tensor, full: bool) -> _Parts:
        if x.shape[-1] != self.d:
            raise ValueError(f"points have {x.shape[-1]} coordinates, the solution has d={self.d}")
        return _BODIES[self.body][1](x, self.coeffs.to(device=x.device, dtype=x.dtype), full)

    @staticmethod
    def factor(x: Tensor) -> Tensor:
        r""":math:`B(x) = 1 - \|x\|^2`, zero on the unit sphere (the hard-constraint factor)."""
        return 1 - (x * x).sum(-1)

    def inner(self, x: Tensor) -> Tensor:
        """The sum :math:`s(x)`."""
        return self._parts(x, False).s

    def __call__(self, x: Tensor) -> Tensor:
        """:math:`u(x)`."""
        return self.factor(x) * self.inner(x)

    def grad(self, x: Tensor) -> Tensor:
        r""":math:`\nabla u = -2x\,s + B\,\nabla s`, shape ``(..., d)``."""
        p = self._parts(x, True)
        return -2 * x * p.s[..., None] + self.factor(x)[..., None] * p.grad

    def hessian_diagonal(self, x: Tensor) -> Tensor:
        r""":math:`\partial_{jj} u = -2s - 4x_j\,\partial_j s + B\,\partial_{jj} s`, shape ``(..., d)``."""
        p = self._parts(x, True)
        return -2 * p.s[..., None] - 4 * x * p.grad + self.factor(x)[..., None] * p.diag

    def laplacian(self, x: Tensor) -> Tensor:
        r""":math:`\Delta u = -2d\,s - 4\,x\cdot\nabla s + B\,\Delta s`."""
        return self.derivatives(x).lap

    def derivatives(self, x: Tensor, *, with_grad: bool = False) -> Derivatives:
        """``u``, ``grad u`` (if ``with_grad``) and ``lap u`` in one pass."""
        p = self._parts(x, with_grad)
        B = self.factor(x)
        lap = -2 * self.d * p.s - 4 * p.x_dot_grad + B * p.lap
        grad = -2 * x * p.s[..., None] + B[..., None] * p.grad if with_grad else None
        return Derivatives(B * p.s, grad, lap)


def two_body(d: int, seed: int = 0) -> ManyBodySolution:
    r""":math:`(1 - \|x\|^2)\sum_{i<d} c_i \sin(x_i + \cos x_{i+1} + x_{i+1}\cos x_i)` in R^d."""
    return ManyBodySolution(int(d), 2, int(seed))


def three_body(d: int, seed: int = 0) -> ManyBodySolution:
    r""":math:`(1 - \|x\|^2)\sum_{i<d-1} c_i \exp(x_i x_{i+1} x_{i+2})` in R^d."""
    return ManyBodySolution(int(d), 3, int(seed))


# ----------------------------------------------------------------------------------------------------
# Equations
@dataclass(frozen=True)
class StationaryOperator:
    r"""A semilinear operator :math:`\mathcal{N}[u](x)` from pointwise terms.

    ``apply(u, grad_u, lap_u, x)`` with ``u``, ``lap_u`` of shape ``(...)``, ``grad_u`` ``(..., d)`` or
    ``None`` when ``uses_grad`` is false (a solver then need not compute it), ``x`` ``(..., d)``.
    """

    name: str
    formula: str
    apply: Callable[[Tensor, Tensor | None, Tensor, Tensor], Tensor]
    uses_grad: bool = False

    def __call__(self, u: Tensor, grad_u: Tensor | None, lap_u: Tensor, x: Tensor) -> Tensor:
        return self.apply(u, grad_u, lap_u, x)


def _poisson(u, grad_u, lap_u, x):
    return -lap_u


def _sine_gordon(u, grad_u, lap_u, x):
    return lap_u + torch.sin(u)


def _allen_cahn(u, grad_u, lap_u, x):
    return lap_u + u - u**3


#: the equations by name
OPERATORS: dict[str, StationaryOperator] = {
    "poisson": StationaryOperator("poisson", "-Lap u = g", _poisson),
    "sine_gordon": StationaryOperator("sine_gordon", "Lap u + sin(u) = g", _sine_gordon),
    "allen_cahn": StationaryOperator("allen_cahn", "Lap u + u - u^3 = g", _allen_cahn),
}


@dataclass(frozen=True)
class HighDProblem:
    """:math:`\\mathcal{N}[u] = g` in the unit ball of R^d, :math:`u = 0` on the sphere, exact solution known.

    Plain data: every callable takes ``x`` of shape ``(..., d)`` and returns ``(...)``.

    Attributes:
        name: label, e.g. ``"sine_gordon/two_body(d=100, seed=0)"``.
        operator: the :class:`StationaryOperator`.
        solution: the exact :class:`ManyBodySolution` (also :meth:`exact`).
        params: the record: equation, body, d, seed.
    """

    name: str
    operator: StationaryOperator
    solution: ManyBodySolution
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def d(self) -> int:
        return self.solution.d

    @property
    def domain(self) -> Ball:
        return Ball(self.d)

    def exact(self, x: Tensor) -> Tensor:
        return self.solution(x)

    def rhs(self, x: Tensor) -> Tensor:
        """:math:`g = \\mathcal{N}[u_{exact}]` in closed form, O(d) per point, no autodiff."""
        du = self.solution.derivatives(x, with_grad=self.operator.uses_grad)
        return self.operator(du.u, du.grad, du.lap, x)

    def boundary(self, x: Tensor) -> Tensor:
        """Dirichlet data on the sphere: zero."""
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)

    def factor(self, x: Tensor) -> Tensor:
        """The hard-constraint factor :math:`1 - \\|x\\|^2` (ansatz :math:`u = (1 - \\|x\\|^2)\\,N(x)`)."""
        return self.solution.factor(x)

    def residual(self, u: Tensor, grad_u: Tensor | None, lap_u: Tensor, x: Tensor,
                 g: Tensor | None = None) -> Tensor:
        """:math:`\\mathcal{N}[u] - g` from a candidate's terms (``g`` precomputed or evaluated here)."""
        return self.operator(u, grad_u, lap_u, x) - (self.rhs(x) if g is None else g)

    def pinn_problem(self, *, hard: bool = False) -> StationaryProblem:
        """This benchmark as a :class:`~sciml.pinn.problem.StationaryProblem` for ``sciml.fit(PINN, ...)``
        (``hard``: with the ansatz :math:`u = (1 - \\|x\\|^2)\\,N(x)` built in; otherwise ``loss.hard``
        decides)."""
        return StationaryProblem(self.name, self.domain, self.operator, self.rhs, self.boundary, self.exact,
                                 dict(self.params), DistanceAnsatz(ball_distance(self.domain)) if hard else None)


def highd_problem(equation: str, d: int, body: int = 2, seed: int = 0) -> HighDProblem:
    """The benchmark ``equation`` (a key of :data:`OPERATORS`) with the ``body``-body solution in R^d."""
    try:
        op = OPERATORS[equation]
    except KeyError:
        raise ValueError(f"unknown equation {equation!r}; choose one of {sorted(OPERATORS)}") from None
    sol = ManyBodySolution(int(d), int(body), int(seed))
    return HighDProblem(f"{equation}/{sol.name}(d={sol.d}, seed={sol.seed})", op, sol,
                        {"equation": equation, "body": sol.body, "d": sol.d, "seed": sol.seed})


#: benchmark name -> (equation, body), e.g. ``"sine_gordon_two_body": ("sine_gordon", 2)``
BENCHMARKS: dict[str, tuple[str, int]] = {
    f"{eq}_{_BODIES[k][0]}": (eq, k) for eq in OPERATORS for k in _BODIES}


def benchmark(name: str, d: int, seed: int = 0) -> HighDProblem:
    """The benchmark ``name`` (a key of :data:`BENCHMARKS`) in R^d."""
    try:
        equation, body = BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}") from None
    return highd_problem(equation, d, body, seed)


# ----------------------------------------------------------------------------------------------------
# The trivial baseline
@dataclass(frozen=True, eq=False)
class AffineBaseline:
    r"""The fit :math:`\hat u(x) = (1 - \|x\|^2)(a + b\cdot x)`.

    ``a`` of shape ``()`` and ``b`` ``(d,)`` for one target; ``(k,)`` and ``(d, k)`` for k targets fitted
    together (then the prediction has shape ``(N, k)``).
    """

    a: Tensor
    b: Tensor

    def __call__(self, x: Tensor) -> Tensor:
        b = self.b.to(device=x.device, dtype=x.dtype)
        B = ManyBodySolution.factor(x)
        B = B.reshape(B.shape + (1,) * (b.ndim - 1))
        return B * (self.a.to(device=x.device, dtype=x.dtype) + x @ b)


def affine_baseline(x: Tensor, u: Tensor, *, chunk: int = 8192) -> AffineBaseline:
    r"""Least squares :math:`\min_{a,b} \sum_n \big(B(x_n)(a + b\cdot x_n) - u_n\big)^2` over points ``x (N, d)``.

    ``u`` is ``(N,)``, or ``(N, k)`` for k targets on the same points (one factorisation for all).
    Normal equations in float64, accumulated in chunks (memory O(d^2 + chunk d), time O(N d^2)), with
    the columns scaled to unit norm before the Cholesky solve (the constant column is O(1), the others
    O(1/sqrt(d))). Needs ``N > d``.
    """
    n, d = x.shape
    if n <= d:
        raise ValueError(f"the affine fit has d + 1 = {d + 1} unknowns; give more than {d} points, got {n}")
    if u.shape[0] != n or u.ndim not in (1, 2):
        raise ValueError(f"targets must have shape ({n},) or ({n}, k), got {tuple(u.shape)}")
    targets = u.reshape(n, -1).to(F64)
    gram = torch.zeros(d + 1, d + 1, dtype=F64, device=x.device)
    rhs = torch.zeros(d + 1, targets.shape[1], dtype=F64, device=x.device)
    for lo in range(0, n, chunk):
        xc = x[lo:lo + chunk].to(F64)
        phi = ManyBodySolution.factor(xc)[:, None] * torch.cat([torch.ones_like(xc[:, :1]), xc], dim=1)
        gram += phi.T @ phi
        rhs += phi.T @ targets[lo:lo + chunk]
    scale = gram.diagonal().clamp_min(1e-300).rsqrt()
    chol = torch.linalg.cholesky(gram * scale[:, None] * scale[None, :])
    theta = scale[:, None] * torch.cholesky_solve(rhs * scale[:, None], chol)
    if u.ndim == 1:
        theta = theta[:, 0]
    return AffineBaseline(theta[0], theta[1:])


# ----------------------------------------------------------------------------------------------------
# HJB with an inseparable terminal cost (time-dependent)
def cole_hopf_reference(terminal: Callable[[Tensor], Tensor], t: Tensor, x: Tensor, T: float, *,
                        n_mc: int = 10_000, generator: torch.Generator | None = None,
                        chunk_elements: int = 2**22) -> tuple[Tensor, Tensor]:
    r"""Monte Carlo solution of :math:`u_t + \Delta u - \|\nabla u\|^2 = 0`, :math:`u(T, \cdot) = g`.

    :math:`u(t, x) = -\log \mathbb{E}\, e^{-g(x + \sqrt{2(T-t)}W)}` with antithetic pairs :math:`\pm W`
    (shared by all points), ``n_mc`` samples in all. Returns ``(u, stderr)``, shapes ``(N,)``: the
    standard error is the delta method's, :math:`\mathrm{sd}/(\sqrt{n}\,\bar v)` over pair means. The
    estimator's bias (Jensen) is about ``stderr**2 / 2``.

    Args:
        terminal: batched :math:`g`, ``(..., d) -> (...)``, with :math:`e^{-g}` integrable.
        t: times ``(N,)`` in ``[t0, T]``; x: points ``(N, d)``.
        chunk_elements: bound on ``pairs x N x d`` held at once.
    """
    n, d = x.shape
    pairs = max(n_mc // 2, 1)
    sigma = torch.sqrt(2 * (T - t).clamp_min(0))[None, :, None]
    per = max(chunk_elements // max(n * d, 1), 1)
    mean = torch.zeros(n, dtype=x.dtype, device=x.device)
    m2 = torch.zeros_like(mean)                 # sum of squared deviations (Chan's pairwise update)
    done = 0
    while done < pairs:
        m = min(per, pairs - done)
        w = torch.randn(m, 1, d, generator=generator, dtype=x.dtype, device=x.device) * sigma
        v = 0.5 * (torch.exp(-terminal(x + w)) + torch.exp(-terminal(x - w)))   # (m, N) pair means
        v_mean = v.mean(0)
        delta = v_mean - mean
        m2 = m2 + ((v - v_mean) ** 2).sum(0) + delta**2 * (done * m / (done + m))
        mean = mean + delta * (m / (done + m))
        done += m
    var = m2 / max(pairs - 1, 1)
    return -torch.log(mean), torch.sqrt(var / pairs) / mean


@dataclass(frozen=True)
class HJBRosenbrock:
    r"""SDGD's HJB with a Rosenbrock-type terminal cost (module docstring), on :math:`(0, T) \times \mathbb{R}^d`.

    The released code trains on :math:`t \sim U(0, T)`, :math:`x \sim N(0, I_d)` (:meth:`sample`) with the
    ansatz :math:`u = g(x) + (T - t)\,N(t, x)`; its reference values are Monte Carlo (:meth:`reference`).

    Attributes:
        d: dimension (>= 2); seed: fixes :math:`c_{k,i} \sim U(0.5, 1.5)`; T: terminal time.
        coeffs: ``(2, d - 1)`` float64: rows :math:`c_{1,\cdot}`, :math:`c_{2,\cdot}`.
    """

    d: int
    seed: int = 0
    T: float = 1.0
    coeffs: Tensor = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        if self.d < 2 or not self.T > 0:
            raise ValueError(f"HJBRosenbrock needs d >= 2 and T > 0, got d={self.d}, T={self.T}")
        g = derived_generator(self.seed, "highd", "hjb_rosenbrock")
        object.__setattr__(self, "coeffs", 0.5 + torch.rand(2, self.d - 1, generator=g, dtype=F64))

    @property
    def name(self) -> str:
        return f"hjb_rosenbrock(d={self.d}, seed={self.seed})"

    def terminal(self, x: Tensor) -> Tensor:
        r""":math:`g(x) = \log(1 + \sum_i c_{1,i}(x_i - x_{i+1})^2 + c_{2,i} x_{i+1}^2)`, ``(..., d) -> (...)``."""
        c = self.coeffs.to(device=x.device, dtype=x.dtype)
        a, b = x[..., :-1], x[..., 1:]
        return torch.log1p((c[0] * (a - b) ** 2 + c[1] * b**2).sum(-1))

    @staticmethod
    def operator(u: Tensor, u_t: Tensor, grad_u: Tensor, lap_u: Tensor, t: Tensor, x: Tensor) -> Tensor:
        r""":math:`u_t + \Delta u - \|\nabla u\|^2` (the right-hand side is zero)."""
        return u_t + lap_u - (grad_u * grad_u).sum(-1)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """``(t (n,), x (n, d))`` with :math:`t \\sim U(0, T)`, :math:`x \\sim N(0, I_d)`."""
        t = self.T * torch.rand(n, generator=generator, dtype=dtype)
        return t, torch.randn(n, self.d, generator=generator, dtype=dtype)

    def reference(self, t: Tensor, x: Tensor, *, n_mc: int = 10_000,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Monte Carlo ``(u, stderr)`` at ``(t (N,), x (N, d))`` (:func:`cole_hopf_reference`)."""
        return cole_hopf_reference(self.terminal, t, x, self.T, n_mc=n_mc, generator=generator)

