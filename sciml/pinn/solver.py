r"""PINN training: loss, parametrisations, the trainer, test metrics.

The loss of a network :math:`u_\theta` on collocation points is

.. math::
    L(\theta) = w_r \frac{1}{n_r}\sum |\mathcal{N}[u_\theta] - f|^2
              + w_b \frac{1}{n_b}\sum |u_\theta - g|^2 + w_i \frac{1}{n_i}\sum |u_\theta(t_0,\cdot) - h|^2,

with the derivatives of :math:`u_\theta` from :func:`sciml.autodiff.evolution_terms` (exact forward
Laplacian by default, SDGD/Hutchinson at large d). The network sees :math:`(t - \bar t, x)`, with
:math:`\bar t` the middle of the time interval (the released code feeds :math:`t - 1/2`).

A :class:`Parametrisation` says how the MLP's parameter dict is built from the trainable tensors:
the identity for a plain PINN, :math:`W = U\,\mathrm{diag}(s)\,V^\top` for the SVD transfer
(:mod:`sciml.transfer`). Every method is then the same trainer with a different parametrisation. An
:class:`Objective` (the trainer's loss strategy) says what is trained: one problem
(:class:`MemberObjective`) or K family members at once (:class:`sciml.transfer.FamilyObjective`).

A :class:`~sciml.pinn.problem.StationaryProblem` (no time) is trained by the same trainer: the network
sees :math:`x` only, the Laplacian method runs over all of its inputs (:func:`stationary_terms`), the
operator gets :math:`(u, \nabla u, \Delta u, x)`, there are no initial points, and a
:class:`~sciml.pinn.problem.DistanceAnsatz` imposes the Dirichlet data exactly
(:func:`stationary_loss`).

Test metrics: ``rel_l2`` :math:`= \|u_\theta - u\| / \|u\|` on held-out points, and, labelled
separately, ``rel_l2_sq`` :math:`= \|u_\theta - u\|^2/\|u\|^2`, what the released SVD-PINN code calls
"relative error".
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from sciml.autodiff import (AbstractLaplacian, EvolutionDerivatives, ForwardLaplacian, HessianTrace, compile_loss,
                            evolution_terms)
from sciml.run import ConfigError, derived_generator, rng_state, set_rng_state
from sciml.run.distributed import DistContext

from .config import OptimConfig, PINNConfig
from . import gauss_newton
from .natural_gradient import Spring
from .network import laplacian_for
from .problem import (Ball, BallTimeFactor, DistanceAnsatz, HardDirichlet, InitialLift, PDEProblem, StationaryProblem,
                      ball_distance, box_distance, is_stationary)
from .sampling import SAMPLERS, Points, sample_domain, sample_points

log = logging.getLogger("sciml.pinn")

__all__ = ["Parametrisation", "identity_parametrisation", "Targets", "targets_for", "pinn_loss", "predict",
           "relative_l2", "ansatz_terms", "with_hard_constraints", "TestSet", "make_test_set", "Trainer", "sampler_of",
           "collocation", "shard_points", "flat_pinn_loss", "interior_residual", "stationary_residual", "PARTS",
           "Objective", "MemberObjective", "dtype_of",
           "StationaryDerivatives", "stationary_terms", "distance_terms", "stationary_loss", "flat_stationary_loss",
           "predict_stationary", "default_distance", "lr_factor",
           "compile_pays"]


# ----------------------------------------------------------------------------------------------------
@dataclass
class Parametrisation:
    """How the network's parameters are built from trainable tensors.

    Attributes:
        theta: trainable leaf tensors by name.
        const: frozen tensors (singular vectors, frozen weights) by name.
        build: ``build(theta, const) -> {mlp parameter name: tensor}``; pure, so it can be vmapped over
            stacked ``theta`` (the family run).
        s_keys: names in ``theta`` trained by the singular-value optimiser (plain SGD by default).
        nonneg_keys: names projected onto ``>= 0`` after every step.
        label: the method's name for tables.
    """

    theta: dict[str, Tensor]
    const: dict[str, Tensor]
    build: Callable[[Mapping[str, Tensor], Mapping[str, Tensor]], dict[str, Tensor]]
    s_keys: frozenset[str] = frozenset()
    nonneg_keys: frozenset[str] = frozenset()
    label: str = "pinn"

    def params(self, theta: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        return self.build(self.theta if theta is None else theta, self.const)

    @property
    def n_trainable(self) -> int:
        return sum(v.numel() for v in self.theta.values())

    @torch.no_grad()
    def project(self) -> None:
        """Keep the constrained entries feasible: :math:`s \\leftarrow \\max(s, 0)`."""
        for k in self.nonneg_keys:
            self.theta[k].clamp_(min=0)


def _merge(theta, const):
    return {**const, **theta}


def identity_parametrisation(module: nn.Module, params: Mapping[str, Tensor] | None = None) -> Parametrisation:
    """Every network parameter trainable (a PINN from scratch, or full fine-tuning)."""
    src = dict(module.named_parameters()) if params is None else params
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in src.items()}
    return Parametrisation(theta, {}, _merge, label="full")


# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Targets:
    """Data of the loss at the collocation points: ``f`` (interior), ``g`` (boundary), ``h`` (initial)."""

    f: Tensor
    g: Tensor
    h: Tensor


def targets_for(problem: PDEProblem | StationaryProblem, pts: Points) -> Targets:
    z = pts.t_in.new_zeros(0)
    if is_stationary(problem):
        g = problem.boundary(pts.x_bd) if problem.boundary is not None else z
        return Targets(problem.rhs(pts.x_in), g, z)
    g = problem.boundary(pts.t_bd, pts.x_bd) if problem.boundary is not None else z
    h = problem.initial(pts.x_ic) if problem.initial is not None else z
    return Targets(problem.rhs(pts.t_in, pts.x_in), g, h)


def _per_point(fn2):
    return lambda params, z: fn2(z[0], z[1:])


def ansatz_terms(hard: HardDirichlet, t: Tensor, x: Tensor) -> tuple[EvolutionDerivatives, EvolutionDerivatives]:
    """Exact terms of the lift ``A`` and the factor ``B`` (they do not depend on the parameters): in
    closed form where the callable has ``terms(t, x)``, else by a ``(d+1) x (d+1)`` Hessian per point."""
    return _evolution_exact(hard.lift, t, x), _evolution_exact(hard.factor, t, x)


def _evolution_exact(fn: Callable[[Tensor, Tensor], Tensor], t: Tensor, x: Tensor) -> EvolutionDerivatives:
    closed = getattr(fn, "terms", None)
    if closed is not None:
        return EvolutionDerivatives(*closed(t, x))
    return evolution_terms(_per_point(fn), {}, t, x, method=HessianTrace())


def _ansatz_terms(hard: HardDirichlet, n: EvolutionDerivatives, t: Tensor, x: Tensor,
                  ab: tuple[EvolutionDerivatives, EvolutionDerivatives] | None = None) -> EvolutionDerivatives:
    """Terms of :math:`u = A + B N` by the product rule from those of the network ``N``."""
    a, b = ansatz_terms(hard, t, x) if ab is None else ab
    return EvolutionDerivatives(
        a.u + b.u * n.u,
        a.u_t + b.u_t * n.u + b.u * n.u_t,
        a.grad_x + b.grad_x * n.u[:, None] + b.u[:, None] * n.grad_x,
        a.lap_x + b.lap_x * n.u + 2 * (b.grad_x * n.grad_x).sum(-1) + b.u * n.lap_x,
    )


def predict(module: nn.Module, params: Mapping[str, Tensor], t: Tensor, x: Tensor, *, t_shift: float = 0.0,
            hard: HardDirichlet | None = None) -> Tensor:
    """The solution at ``(t, x)``, shape ``(N,)`` (forward pass only)."""
    z = torch.cat([(t - t_shift)[:, None], x], dim=1)
    u = functional_call(module, dict(params), (z,)).squeeze(-1)
    if hard is not None:
        zz = torch.cat([t[:, None], x], dim=1)
        a = vmap(lambda p: hard.lift(p[0], p[1:]))(zz)
        b = vmap(lambda p: hard.factor(p[0], p[1:]))(zz)
        u = a + b * u
    return u


def interior_residual(module: nn.Module, params: Mapping[str, Tensor], problem: PDEProblem, t: Tensor, x: Tensor,
                      f: Tensor, method: AbstractLaplacian, *, noise: Tensor | None = None, t_shift: float = 0.0,
                      chunk_size: int | None = None,
                      ansatz: tuple[EvolutionDerivatives, EvolutionDerivatives] | None = None) -> Tensor:
    r"""The PDE residual :math:`\mathcal{N}[u](t, x) - f` at the points ``(t (N,), x (N, d))``, shape ``(N,)``,
    ``u`` including the problem's hard-constraint ansatz (``ansatz``: its precomputed terms at the points)."""
    terms = evolution_terms(module, params, t - t_shift, x, method=method, noise=noise, chunk_size=chunk_size)
    if problem.hard is not None:
        terms = _ansatz_terms(problem.hard, terms, t, x, ansatz)
    return problem.operator(terms, t, x) - f


def pinn_loss(module: nn.Module, params: Mapping[str, Tensor], problem: PDEProblem, pts: Points, tg: Targets,
              method: AbstractLaplacian, *, weights: tuple[float, float, float] = (1.0, 100.0, 100.0),
              noise: Tensor | None = None, t_shift: float = 0.0, chunk_size: int | None = None,
              ansatz: tuple[EvolutionDerivatives, EvolutionDerivatives] | None = None
              ) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted PINN loss and its parts (``res``, ``bc``, ``ic``, unweighted MSEs).

    ``ansatz``: precomputed :func:`ansatz_terms` at the interior points (hard constraints, fixed points).
    """
    res = interior_residual(module, params, problem, pts.t_in, pts.x_in, tg.f, method, noise=noise, t_shift=t_shift,
                            chunk_size=chunk_size, ansatz=ansatz)
    hard = problem.hard
    parts = {"res": (res**2).mean()}
    zero = res.new_zeros(())
    t0 = problem.t_range[0]
    use_bc = tg.g.numel() > 0 and not (hard is not None and hard.enforces_boundary)
    use_ic = tg.h.numel() > 0 and not (hard is not None and hard.enforces_initial)
    n_bd = pts.x_bd.shape[0] if use_bc else 0
    t_ic = torch.full_like(pts.x_ic[:, 0], t0)
    # one forward pass for boundary and initial points
    t_all = torch.cat([pts.t_bd[:n_bd], t_ic if use_ic else t_ic[:0]])
    x_all = torch.cat([pts.x_bd[:n_bd], pts.x_ic if use_ic else pts.x_ic[:0]])
    u_all = predict(module, params, t_all, x_all, t_shift=t_shift, hard=hard) if t_all.numel() else None
    parts["bc"] = ((u_all[:n_bd] - tg.g) ** 2).mean() if use_bc else zero
    parts["ic"] = ((u_all[n_bd:] - tg.h) ** 2).mean() if use_ic else zero
    loss = weights[0] * parts["res"] + weights[1] * parts["bc"] + weights[2] * parts["ic"]
    return loss, parts


PARTS = ("res", "bc", "ic")


def flat_pinn_loss(module: nn.Module, problem: PDEProblem, method: AbstractLaplacian, build: Callable, *,
                   weights: tuple[float, float, float], t_shift: float, chunk_size: int | None
                   ) -> Callable[..., Tensor]:
    """:func:`pinn_loss` as a pure function of tensors, the form ``torch.compile`` traces once and reuses.

    Returns ``fn(theta, const, t_in, x_in, t_bd, x_bd, x_ic, f, g, h, noise, ab) -> [loss, res, bc, ic]``:
    the parameters are ``build(theta, const)`` (the parametrisation, inside the graph), ``noise`` is the
    estimator's noise or ``None``, ``ab`` the 8 tensors of the ansatz terms (lift, then factor) or ``None``.
    Only tensors cross the boundary, so new points or noise of the same shape reuse the compiled graph.
    """

    def fn(theta, const, t_in, x_in, t_bd, x_bd, x_ic, f, g, h, noise, ab):
        ansatz = None if ab is None else (EvolutionDerivatives(*ab[:4]), EvolutionDerivatives(*ab[4:]))
        loss, parts = pinn_loss(module, build(theta, const), problem, Points(t_in, x_in, t_bd, x_bd, x_ic),
                                Targets(f, g, h), method, weights=weights, noise=noise, t_shift=t_shift,
                                chunk_size=chunk_size, ansatz=ansatz)
        return torch.stack([loss, *(parts[k] for k in PARTS)])

    return fn


def _fields(e) -> tuple[Tensor, ...]:
    """The tensors of an :class:`EvolutionDerivatives` or :class:`StationaryDerivatives`, in field order."""
    return tuple(getattr(e, f.name) for f in dataclasses.fields(e))


# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StationaryDerivatives:
    r"""The terms of a stationary PDE for :math:`u(x)`: value ``(N,)``, :math:`\nabla u` ``(N, d)``,
    :math:`\Delta u` ``(N,)``."""

    u: Tensor
    grad: Tensor
    lap: Tensor


def stationary_terms(f: Any, params: Mapping[str, Tensor] | None, x: Tensor, *, method: AbstractLaplacian,
                     noise: Tensor | None = None, chunk_size: int | None = None) -> StationaryDerivatives:
    r""":math:`u, \nabla u, \Delta u` of a network (or per-point function) of ``x (N, d)`` alone, in one call
    of ``method`` over all ``d`` inputs."""
    out = method(f, params, x, dims=None, noise=noise, with_gradient=True, chunk_size=chunk_size)
    return StationaryDerivatives(out.value, out.gradient, out.laplacian)


def distance_terms(hard: DistanceAnsatz, x: Tensor) -> tuple[StationaryDerivatives, StationaryDerivatives]:
    """Exact terms of the lift and of the distance factor at ``x`` (they do not depend on the parameters):
    in closed form where the callable has ``terms(x)`` (:class:`~sciml.pinn.problem.BallDistance`) or the
    lift is zero, else by the Hessian trace (a d x d Hessian per point)."""
    if hard.lift is None:
        z = x.new_zeros(x.shape[0])
        lift = StationaryDerivatives(z, torch.zeros_like(x), z)
    else:
        lift = _exact_terms(hard.lift, x)
    return lift, _exact_terms(hard.phi, x)


def _exact_terms(fn: Callable[[Tensor], Tensor], x: Tensor) -> StationaryDerivatives:
    closed = getattr(fn, "terms", None)
    if closed is not None:
        return StationaryDerivatives(*closed(x))
    return stationary_terms(lambda params, z: fn(z), {}, x, method=HessianTrace())


def _distance_product(n: StationaryDerivatives, ab: tuple[StationaryDerivatives, StationaryDerivatives]
                      ) -> StationaryDerivatives:
    """Terms of :math:`u = g_\text{lift} + \varphi N` by the product rule from those of the network ``N``."""
    a, b = ab
    return StationaryDerivatives(
        a.u + b.u * n.u,
        a.grad + b.grad * n.u[:, None] + b.u[:, None] * n.grad,
        a.lap + b.lap * n.u + 2 * (b.grad * n.grad).sum(-1) + b.u * n.lap,
    )


def predict_stationary(module: nn.Module, params: Mapping[str, Tensor], x: Tensor, *,
                       hard: DistanceAnsatz | None = None) -> Tensor:
    """The solution of a stationary problem at ``x (N, d)``, shape ``(N,)`` (forward pass only)."""
    u = functional_call(module, dict(params), (x,)).squeeze(-1)
    if hard is not None:
        u = vmap(hard.lift_or_zero())(x) + vmap(hard.phi)(x) * u
    return u


def stationary_residual(module: nn.Module, params: Mapping[str, Tensor], problem: StationaryProblem, x: Tensor,
                        f: Tensor, method: AbstractLaplacian, *, noise: Tensor | None = None,
                        chunk_size: int | None = None,
                        ansatz: tuple[StationaryDerivatives, StationaryDerivatives] | None = None) -> Tensor:
    r"""The residual :math:`\mathcal{N}[u](x) - f` of a stationary problem at ``x (N, d)``, shape ``(N,)``, ``u``
    including the distance ansatz (``ansatz``: its precomputed terms at the points)."""
    terms = stationary_terms(module, params, x, method=method, noise=noise, chunk_size=chunk_size)
    if problem.hard is not None:
        terms = _distance_product(terms, distance_terms(problem.hard, x) if ansatz is None else ansatz)
    return problem.operator(terms.u, terms.grad, terms.lap, x) - f


def stationary_loss(module: nn.Module, params: Mapping[str, Tensor], problem: StationaryProblem, pts: Points,
                    tg: Targets, method: AbstractLaplacian, *, weights: tuple[float, float, float] = (1.0, 100.0, 100.0),
                    noise: Tensor | None = None, chunk_size: int | None = None,
                    ansatz: tuple[StationaryDerivatives, StationaryDerivatives] | None = None
                    ) -> tuple[Tensor, dict[str, Tensor]]:
    r"""The loss of a stationary problem, :math:`w_r \overline{|\mathcal{N}[u] - f|^2} + w_b \overline{|u - g|^2}`,
    and its parts (``ic`` is zero). With a :class:`DistanceAnsatz` the boundary term is dropped: the data
    hold exactly. ``ansatz``: precomputed :func:`distance_terms` at the interior points."""
    hard = problem.hard
    res = stationary_residual(module, params, problem, pts.x_in, tg.f, method, noise=noise, chunk_size=chunk_size,
                              ansatz=ansatz)
    zero = res.new_zeros(())
    parts = {"res": (res**2).mean(), "bc": zero, "ic": zero}
    if tg.g.numel() > 0 and hard is None:
        parts["bc"] = ((predict_stationary(module, params, pts.x_bd) - tg.g) ** 2).mean()
    return weights[0] * parts["res"] + weights[1] * parts["bc"], parts


def flat_stationary_loss(module: nn.Module, problem: StationaryProblem, method: AbstractLaplacian, build: Callable,
                         *, weights: tuple[float, float, float], chunk_size: int | None) -> Callable[..., Tensor]:
    """:func:`stationary_loss` with the signature of :func:`flat_pinn_loss` (the times and initial points
    are accepted and unused; ``ab`` is the 6 tensors of the lift's and factor's terms or ``None``)."""

    def fn(theta, const, t_in, x_in, t_bd, x_bd, x_ic, f, g, h, noise, ab):
        ansatz = None if ab is None else (StationaryDerivatives(*ab[:3]), StationaryDerivatives(*ab[3:]))
        loss, parts = stationary_loss(module, build(theta, const), problem, Points(t_in, x_in, t_bd, x_bd, x_ic),
                                      Targets(f, g, h), method, weights=weights, noise=noise,
                                      chunk_size=chunk_size, ansatz=ansatz)
        return torch.stack([loss, *(parts[k] for k in PARTS)])

    return fn


def relative_l2(pred: Tensor, exact: Tensor) -> tuple[float, float]:
    """``(||e||/||u||, ||e||^2/||u||^2)``, the second being the released code's "relative error"."""
    pred, exact = pred.detach(), exact.detach()
    sq = float(((pred - exact) ** 2).sum() / (exact**2).sum())
    return math.sqrt(sq), sq


def default_distance(domain) -> Callable[[Tensor], Tensor]:
    """The built-in distance factor of ``domain``: :func:`~sciml.pinn.problem.ball_distance` (normalised)
    for a ball, :func:`~sciml.pinn.problem.box_distance` (product) for a box."""
    return ball_distance(domain) if isinstance(domain, Ball) else box_distance(domain)


def _stationary_hard(problem: StationaryProblem, mode: str) -> StationaryProblem:
    if mode != "boundary":
        raise ValueError(f"a stationary problem has no initial data: loss.hard must be 'none' or 'boundary', "
                         f"got {mode!r}")
    if problem.boundary is None:
        raise ValueError(f"loss.hard = 'boundary' needs the problem's Dirichlet data; {problem.name} has none")
    g = problem.boundary
    hard = DistanceAnsatz(default_distance(problem.domain), lambda x: g(x[None])[0])
    return dataclasses.replace(problem, hard=hard)


def with_hard_constraints(problem: PDEProblem | StationaryProblem, mode: str) -> PDEProblem | StationaryProblem:
    r"""``problem`` with the ansatz built from its own data (``mode`` = ``"none"``, ``"initial"``,
    ``"initial_boundary"`` or, for a stationary problem, ``"boundary"``).

    * ``"initial"``: :math:`u = h(x) + (t - t_0)\,N`; the boundary stays a soft constraint.
    * ``"initial_boundary"`` (ball only, needs :math:`g = 0` and :math:`h = 0` on the sphere, as for
      Allen-Cahn): :math:`u = h(x) + (t - t_0)(R^2 - \|x - c\|^2)\,N`.
    * ``"boundary"`` (stationary): :math:`u = g(x) + \varphi(x)\,N` with :math:`\varphi` the domain's
      :func:`default_distance`; the problem's ``boundary`` callable is the lift, so it must be defined
      (and smooth) in the whole domain, as a closed-form ``g`` is.
    """
    if mode == "none":
        return problem
    if is_stationary(problem):
        return _stationary_hard(problem, mode)
    if mode == "boundary":
        raise ValueError("loss.hard = 'boundary' is for stationary problems; an evolution problem takes 'initial' "
                         "or 'initial_boundary'")
    if problem.initial is None:
        raise ValueError(f"hard constraints need the problem's initial data; {problem.name} has none")
    t0 = problem.t_range[0]
    init = problem.initial

    lift = InitialLift(init)
    if mode == "initial":
        factor = lambda t, x: t - t0  # noqa: E731
        hard = HardDirichlet(lift, factor, enforces_boundary=False)
    elif mode == "initial_boundary":
        dom = problem.domain
        if not isinstance(dom, Ball):
            raise ValueError("loss.hard = 'initial_boundary' is implemented for balls only")
        hard = HardDirichlet(lift, BallTimeFactor(t0, float(dom.radius) ** 2, dom.center_tensor(dtype=torch.float64)))
    else:
        raise ValueError(f"hard must be 'none', 'initial' or 'initial_boundary', got {mode!r}")
    return dataclasses.replace(problem, hard=hard)


# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TestSet:
    t: Tensor
    x: Tensor
    u: Tensor


def sampler_of(cfg: PINNConfig):
    """The ball sampler named by ``sampling.sampler`` (:data:`~sciml.pinn.sampling.SAMPLERS`)."""
    return SAMPLERS.resolve(cfg.sampling.sampler, r_min=cfg.sampling.r_min)


def time_shift(problem: PDEProblem | StationaryProblem) -> float:
    """What the network's time input is shifted by: the middle of the time interval (0: stationary)."""
    return 0.0 if is_stationary(problem) else 0.5 * sum(problem.t_range)


def dtype_of(cfg: PINNConfig) -> torch.dtype:
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def collocation(problem: PDEProblem, cfg: PINNConfig, device, generator: torch.Generator | None = None, *,
                n_interior: int | None = None) -> Points:
    """The training points of a run; with no generator, drawn from ``cfg.seed`` (so a transfer run with
    the same seed and sampling trains on the pre-training points, as the paper does). ``n_interior``
    overrides ``sampling.n_interior`` (the L-BFGS finish's batch)."""
    gen = generator if generator is not None else torch.Generator(device).manual_seed(cfg.seed)
    s = cfg.sampling
    return sample_points(problem, s.n_interior if n_interior is None else n_interior, s.n_boundary, s.n_initial, sampler=sampler_of(cfg),
                         generator=gen, device=device, dtype=dtype_of(cfg))


def make_test_set(problem: PDEProblem, cfg: PINNConfig, device) -> TestSet:
    """Held-out points drawn like the interior points (seed-independent, so methods share one test set)."""
    if problem.exact is None:
        raise ValueError(f"problem {problem.name} has no exact solution: no test metrics")
    gen = torch.Generator(device).manual_seed(987654321)
    if is_stationary(problem):  # no times: t is zeros, nothing drawn for it
        x = sample_domain(problem.domain, cfg.sampling.n_test, sampler=sampler_of(cfg), generator=gen, device=device,
                          dtype=dtype_of(cfg))
        return TestSet(x.new_zeros(x.shape[0]), x, problem.exact(x))
    t0, t1 = problem.t_range
    n = cfg.sampling.n_test
    t = t0 + (t1 - t0) * torch.rand(n, generator=gen, device=device, dtype=dtype_of(cfg))
    x = sample_domain(problem.domain, n, sampler=sampler_of(cfg), generator=gen, device=device, dtype=dtype_of(cfg))
    return TestSet(t, x, problem.exact(t, x))


def shard_points(pts: Points, ctx: DistContext) -> Points:
    """This rank's equal share of every kind of collocation point (a config error names the count that
    does not divide by the number of processes)."""
    if not ctx.distributed:
        return pts
    out = []
    for key, t in (("n_interior", pts.t_in), ("n_interior", pts.x_in), ("n_boundary", pts.t_bd),
                   ("n_boundary", pts.x_bd), ("n_initial", pts.x_ic)):
        try:
            out.append(ctx.shard(t, f"sampling.{key} = {t.shape[0]}"))
        except ValueError as e:
            raise ConfigError(f"sampling.{key}", str(e)) from None
    return Points(*out)


# ----------------------------------------------------------------------------------------------------
class Objective(Protocol):
    """The loss strategy of a :class:`Trainer`: what is trained on the shared collocation points.

    :class:`MemberObjective` is one problem; :class:`sciml.transfer.FamilyObjective` is K members at
    once (parameters stacked on a leading axis, the loss vmapped, the K losses summed). The trainer
    (points, noise, optimisers, compile, checkpoints) is the same for both.
    """

    k: int  # members trained at once
    family: bool  # a family run (also of one member): member errors and histories are reported
    members: tuple[PDEProblem, ...]

    def targets(self, pts: Points) -> Targets:
        """The data ``f, g, h`` at ``pts`` (with a leading member axis for a family)."""

    def flat_loss(self, module: nn.Module, method: AbstractLaplacian, build: Callable, *,
                  weights: tuple[float, float, float], t_shift: float, chunk_size: int | None) -> Callable:
        """The loss as :func:`flat_pinn_loss` returns it: ``[total, res, bc, ic]`` from tensors only."""

    def predict(self, module: nn.Module, par: Parametrisation, t: Tensor, x: Tensor, *,
                t_shift: float, theta: Mapping[str, Tensor] | None = None) -> Tensor:
        """The solution of every member at ``(t, x)``, shape ``(k, N)``."""

    def exact(self, t: Tensor, x: Tensor) -> Tensor:
        """Every member's exact solution at ``(t, x)``, shape ``(k, N)``."""


class MemberObjective:
    """One problem: the loss of :func:`pinn_loss` (hard constraints included)."""

    k = 1
    family = False

    def __init__(self, problem: PDEProblem):
        self.problem = problem
        self.members = (problem,)

    def targets(self, pts: Points) -> Targets:
        return targets_for(self.problem, pts)

    def flat_loss(self, module, method, build, *, weights, t_shift, chunk_size):
        if is_stationary(self.problem):
            return flat_stationary_loss(module, self.problem, method, build, weights=weights, chunk_size=chunk_size)
        return flat_pinn_loss(module, self.problem, method, build, weights=weights, t_shift=t_shift,
                              chunk_size=chunk_size)

    def predict(self, module, par, t, x, *, t_shift, theta=None):
        if is_stationary(self.problem):
            return predict_stationary(module, par.params(theta), x, hard=self.problem.hard)[None]
        return predict(module, par.params(theta), t, x, t_shift=t_shift, hard=self.problem.hard)[None]

    def exact(self, t, x):
        return (self.problem.exact(x) if is_stationary(self.problem) else self.problem.exact(t, x))[None]


# ----------------------------------------------------------------------------------------------------
#: eager steps timed before ``laplacian.compile = "auto"`` decides
AUTO_PROBE_STEPS = 3
#: the one-off cost of ``torch.compile`` of a forward-Laplacian loss, seconds (measured 9-16 s on a quiet
#: 2-core Xeon, ~40 s on a loaded machine: experiments/bench_pinn_compile.py, docs/results/pinn_compile.json)
COMPILE_SECONDS = 30.0
#: the fraction of an eager step the compiled loss saves (measured 1.15-1.29x faster: 13-23 %)
COMPILE_GAIN = 0.13


def compile_pays(step_seconds: float, steps_left: int, seconds_left: float | None = None, *,
                 compile_seconds: float = COMPILE_SECONDS, gain: float = COMPILE_GAIN) -> bool:
    r"""Whether compiling the loss is repaid within the rest of the run.

    The eager rest of the run lasts :math:`T = \min(n\,t, \text{seconds\_left})` (``n`` steps of ``t``
    seconds, capped by the wall-clock budget); compiling saves :math:`\text{gain}\cdot T` and costs
    ``compile_seconds`` once, so it pays when :math:`\text{gain}\cdot T > \text{compile\_seconds}`.
    """
    run = step_seconds * max(steps_left, 0)
    if seconds_left is not None:
        run = min(run, seconds_left)
    return gain * run > compile_seconds


def lr_factor(o: OptimConfig, time_fraction: Callable[[], float] | None = None) -> Callable[[int], float]:
    r"""The learning-rate multiplier of Adam step ``i`` (``optim.schedule``), for ``LambdaLR``.

    With :math:`w` warm-up steps, :math:`k = i - w`, :math:`n = \text{iters} - w`, the floor
    :math:`\rho = \text{lr\_min}/\text{lr}` and the progress :math:`p = \max(k, \tau n)/n`, where
    :math:`\tau` is ``time_fraction()`` (the share of the wall-clock budget used so far; 0 without one):

    .. math::
        \lambda(i) = \frac{i + 1}{w} \ (i < w), \qquad
        \lambda = \rho + (1 - \rho)\,\tfrac12\bigl(1 + \cos(\pi \min(p, 1))\bigr) \ \text{(cosine)}, \qquad
        \lambda = \max(r^{p n/s}, \rho) \ \text{(exponential, rate } r \text{ per } s \text{ steps)}.

    After the warm-up :math:`\lambda` never increases (no spike when the warm-up ends: it reaches 1 there;
    :math:`\tau` only grows). With a budget the decay ends when the budget does if that comes first: a
    cosine cut off by the clock half-way would stop at half the peak rate, far from its floor.
    """
    if o.lr_min > o.lr:
        raise ConfigError("optim.lr_min", f"the floor {o.lr_min:g} is above optim.lr = {o.lr:g}; set lr_min <= lr")
    floor, w, n = o.lr_min / o.lr, o.warmup, max(o.iters - o.warmup, 1)

    def factor(i: int) -> float:
        if i < w:
            return (i + 1) / w
        k = i - w  # decay steps taken, or the steps the budget's used share stands for if that is more
        if time_fraction is not None:
            k = max(k, time_fraction() * n)
        if o.schedule == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(k / n, 1.0)))
        return max(o.decay_rate ** (k / o.decay_steps), floor)

    return factor


# ----------------------------------------------------------------------------------------------------
@dataclass
class Trainer:
    """Trains one parametrised network (or K stacked ones) on the collocation points: Adam (the lr
    schedule of :func:`lr_factor`), then L-BFGS polishing (on one batch when resampling), then
    Levenberg-Marquardt steps (:mod:`sciml.pinn.gauss_newton`; fresh points every step when resampling, one
    member only). One call of :meth:`step` is one optimiser step; :meth:`state` and
    :meth:`load` hold everything the remaining steps depend on. :class:`sciml.pinn.PINN` and the
    transfer methods drive it through :func:`sciml.fit`.

    ``history`` holds ``(step, rel_l2, rel_l2_sq)`` (the member means for a family; then
    ``member_history`` holds ``(step, [rel_l2 of every member])``).

    Args:
        problem: the PDE (the first member of a family: its domain, time interval and dimension).
        module: the network (its structure; the parameters come from ``par``).
        par: the parametrisation (trainable tensors on ``device``, stacked for a family).
        cfg: the run's config (sampling, loss, laplacian, optim).
        device: torch device.
        points: fixed collocation points (default: drawn from ``cfg.seed``).
        dist: data parallelism (:mod:`sciml.run.distributed`): every rank draws the *global* points and
            probes from the same seeds and keeps its equal shard; gradients are averaged over ranks, so
            N processes take the steps one process takes on the same global batch (up to reduction
            order), and a checkpoint (global points, one RNG state) resumes on any number of ranks.
        objective: the loss strategy (default: :class:`MemberObjective` of ``problem``).
        laplacian: a :data:`~sciml.autodiff.LAPLACIANS` name or object overriding ``cfg.laplacian.method``.
        s_optimizer: builds the optimiser of the parametrisation's singular values (``par.s_keys``) from
            their tensors (default: plain SGD, lr 1e-2, the SVD-PINN script's).
        clock: the timer of the steps (``time.perf_counter``; a test passes a fake one): training seconds
            and the ``laplacian.compile = "auto"`` decision (:func:`compile_pays`).
        budget_seconds: the run's wall-clock budget for that decision when it is not ``optim.max_seconds``
            (``fit(..., max_seconds=)`` / ``--max-seconds`` sets it through ``set_budget``).
    """

    problem: PDEProblem
    module: nn.Module
    par: Parametrisation
    cfg: PINNConfig
    device: torch.device = torch.device("cpu")
    points: Points | None = None
    history: list[tuple[int, float, float]] = field(default_factory=list)
    dist: DistContext = field(default_factory=DistContext)
    objective: Objective | None = None
    laplacian: AbstractLaplacian | str | None = None
    s_optimizer: Callable[[list[Tensor]], torch.optim.Optimizer] | None = None
    clock: Callable[[], float] = time.perf_counter
    budget_seconds: float | None = None

    def __post_init__(self):
        cfg, problem = self.cfg, self.problem
        self.objective = self.objective if self.objective is not None else MemberObjective(problem)
        # the noise / resampling stream; the initial points and the test set have their own seeds
        self.gen = derived_generator(cfg.seed, "pinn", "noise", device=self.device)
        if self.points is None:
            self.points = collocation(problem, cfg, self.device)
        self.global_points = self.points
        self.points = shard_points(self.points, self.dist)
        # identical starting parameters on every rank, whatever each rank loaded
        self.dist.broadcast_([*self.par.theta.values(), *self.par.const.values()])
        self.targets = self.objective.targets(self.points)
        self.test = make_test_set(problem, cfg, self.device) if problem.exact is not None else None
        self.test_u = self.objective.exact(self.test.t, self.test.x) if self.test is not None else None
        self.member_history: list[tuple[int, list[float]]] = []
        lap = cfg.laplacian.method if self.laplacian is None else self.laplacian
        self.method = laplacian_for(self.module, lap, problem.d, cfg.laplacian.probes)
        self.t_shift = time_shift(problem)
        self.weights = (cfg.loss.w_residual, cfg.loss.w_boundary, cfg.loss.w_initial)
        self.train_seconds = 0.0
        self.wall_seconds = 0.0  # from this session's first step to the last one's end, plus resumed sessions'
        self._last_end: float | None = None
        self._make_optimisers()
        self._step = 0  # the step being taken (loss() may be called before the first)
        self._ab = None
        self._flat = self.objective.flat_loss(self.module, self.method, self.par.build, weights=self.weights,
                                              t_shift=self.t_shift, chunk_size=cfg.laplacian.chunk_size)
        c = cfg.laplacian.compile
        self.use_compile = c == "on"
        # auto: only the exact forward Laplacian gains (1.15-1.3x, the fused tangent updates; SDGD/Hutchinson
        # batches are small and gain nothing, experiments/bench_pinn_compile.py); whether the gain repays the
        # compile is decided from the first eager steps' times and the run's length (compile_pays)
        o = cfg.optim
        spring = o.optimizer == "spring"
        self._probe: list[float] | None = ([] if c == "auto" and isinstance(self.method, ForwardLaplacian)
                                           and not spring else None)  # (spring steps run eager)
        self._loss_fn = None  # the compiled (or, after a failed check, the eager) flat loss, made on first use
        self.lm = self.spring = self._fns = None
        if o.gn_iters or spring:
            if self.objective.family and spring:
                raise ConfigError("optim.optimizer", "spring steps train one member: use adam for a family run, or "
                                                     "transfer to each member on its own")
            if self.objective.family:
                raise ConfigError("optim.gn_iters", "the Levenberg-Marquardt finish trains one member: set it to 0 "
                                                    "for a family run, or transfer to each member on its own")
            # per-point residuals with exact derivatives (the forward Laplacian on one point for an MLP)
            self._fns = gauss_newton.residual_functions(self.module, problem, self.par.build, self.par.const,
                                                        self.t_shift)
        if o.gn_iters:
            self.lm = gauss_newton.LevenbergMarquardt(self._fns, damping=o.gn_damping,
                                                      chunk=cfg.laplacian.chunk_size or 256)
        if spring:
            self.spring = Spring(damping=o.ng_damping, momentum=o.ng_momentum)

    def _make_optimisers(self) -> None:
        """Adam for every trainable tensor but the singular values, ``s_optimizer`` for those, one lr
        schedule each, and L-BFGS over everything for the polishing steps."""
        o = self.cfg.optim
        rest = [v for k, v in self.par.theta.items() if k not in self.par.s_keys]
        s = [v for k, v in self.par.theta.items() if k in self.par.s_keys]
        self.opts: list[torch.optim.Optimizer] = []
        self._decay = lr_factor(o, self._budget_fraction if o.schedule_budget else None)
        if o.optimizer == "spring":  # every trainable tensor takes the natural-gradient step (_spring_step)
            rest = s = []
        if rest:
            self.opts.append(torch.optim.Adam(rest, lr=o.lr))
        if s:
            self.opts.append(self.s_optimizer(s) if self.s_optimizer is not None else torch.optim.SGD(s, lr=1e-2))
        self.scheds = [torch.optim.lr_scheduler.LambdaLR(opt, self._decay) for opt in self.opts]
        self.lbfgs = (torch.optim.LBFGS(list(self.par.theta.values()), lr=o.lbfgs_lr, max_iter=1,
                                        history_size=50, line_search_fn="strong_wolfe")
                      if o.lbfgs_iters else None)

    @property
    def n_steps(self) -> int:
        o = self.cfg.optim
        return o.iters + o.lbfgs_iters + o.gn_iters

    @property
    def members(self) -> tuple[PDEProblem, ...]:
        return self.objective.members

    def loss(self, theta=None) -> tuple[Tensor, dict[str, Tensor]]:
        """The loss to minimise (the members' sum for a family) and its parts (member means)."""
        cfg = self.cfg
        if cfg.sampling.resample and self._step < cfg.optim.iters:  # L-BFGS: one fixed batch
            self._draw_points()
        noise = None
        if self.method.stochastic:  # drawn for the global batch, then sharded like the points
            noise = self.method.draw(self.global_points.x_in.shape[0], self.problem.d, generator=self.gen,
                                     device=self.device, dtype=self.points.x_in.dtype)
            if self.method.noise_per_point:
                noise = self.dist.shard(noise)
        p, tg, ab = self.points, self.targets, self.ansatz()
        args = (self.par.const, p.t_in, p.x_in, p.t_bd, p.x_bd, p.x_ic, tg.f, tg.g, tg.h, noise,
                None if ab is None else (*_fields(ab[0]), *_fields(ab[1])))
        theta = self.par.theta if theta is None else theta
        if not self.use_compile:
            out = self._flat(theta, *args)
        else:
            if self._loss_fn is None:
                log.info("compiling the loss (laplacian.compile = %s, %d iterations): a one-off 10-40 s",
                         self.cfg.laplacian.compile, self.cfg.optim.iters)
                self._loss_fn = compile_loss(self._flat, theta, *args)
            out = self._loss_fn(theta, *args)
        return out[0], dict(zip(PARTS, out[1:]))

    def _budget(self) -> float | None:
        """The wall-clock budget the run has (``--max-seconds`` / ``fit``'s, else ``optim.max_seconds``)."""
        return self.budget_seconds if self.budget_seconds is not None else self.cfg.optim.max_seconds

    def _budget_fraction(self) -> float:
        """The share of the budget used by the steps so far, the time between them included (evaluations,
        checkpoints), resumed sessions too: the clock of :func:`~sciml.run.loop.train_loop`'s budget. In a
        data-parallel run the ranks' clocks differ; the largest is taken so that all ranks agree."""
        budget = self._budget()
        if budget is None:
            return 0.0
        # every rank must set the same lr: the latest clock of all ranks (a no-op in one process)
        return self.dist.all_reduce({"w": self.wall_seconds}, op="max")["w"] / budget

    def _decide_compile(self, i: int, dt: float) -> None:
        """``laplacian.compile = "auto"``: after :data:`AUTO_PROBE_STEPS` eager steps, compile if
        :func:`compile_pays` for the rest of the run (the ranks' mean step time, so all ranks agree)."""
        self._probe.append(dt)
        if len(self._probe) < AUTO_PROBE_STEPS:
            return
        step_s = self.dist.all_reduce_mean({"s": min(self._probe)})["s"]  # the first step carries warm-up costs
        budget = self._budget()
        left = None if budget is None else max(budget - self.wall_seconds, 0.0)
        compiled_steps = self.n_steps - self.cfg.optim.gn_iters - i - 1  # the Levenberg-Marquardt steps are eager
        self.use_compile = compile_pays(step_s, compiled_steps, left)
        self._probe = None
        log.info("laplacian.compile = auto: eager step %.3g s, %d steps left, budget %s: %s", step_s,
                 compiled_steps, "none" if left is None else f"{left:.0f} s left",
                 "compiling" if self.use_compile else "staying eager (the compile would not be repaid)")

    def _draw_points(self, n_interior: int | None = None) -> None:
        """Fresh collocation points from the run's noise stream (``n_interior`` overrides the config's)."""
        self.global_points = collocation(self.problem, self.cfg, self.device, self.gen, n_interior=n_interior)
        self.points = shard_points(self.global_points, self.dist)
        self.targets = self.objective.targets(self.points)

    @property
    def compiled(self) -> bool:
        """Whether the loss runs compiled (``laplacian.compile`` asked for it and the check passed)."""
        return bool(getattr(self._loss_fn, "compiled", False))

    def ansatz(self):
        """The hard-constraint lift/factor terms at the interior points (cached while the points are fixed)."""
        if self.problem.hard is None:
            return None
        if self._ab is None or self._ab[0] is not self.points:
            hard, p = self.problem.hard, self.points
            with torch.no_grad():
                self._ab = (p, distance_terms(hard, p.x_in) if is_stationary(self.problem)
                            else ansatz_terms(hard, p.t_in, p.x_in))
        return self._ab[1]

    @torch.no_grad()
    def member_errors(self) -> tuple[list[float], list[float]]:
        """``([rel_l2], [rel_l2_sq])`` of every member on the test set."""
        u = self.objective.predict(self.module, self.par, self.test.t, self.test.x, t_shift=self.t_shift)
        pairs = [relative_l2(u[k], self.test_u[k]) for k in range(u.shape[0])]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        """``(rel_l2, rel_l2_sq)`` on the test set (the means over the members of a family)."""
        rel, sq = self.member_errors()
        self._last_members = rel
        return sum(rel) / len(rel), sum(sq) / len(sq)

    def _optimiser_step(self) -> tuple[Tensor, dict[str, Tensor]]:
        if self._step < self.cfg.optim.iters and self.spring is not None:
            return self._spring_step()
        if self._step < self.cfg.optim.iters:
            for opt in self.opts:
                opt.zero_grad(set_to_none=True)
            loss, parts = self.loss()
            loss.backward()
            self.dist.average_gradients(self.par.theta.values())
            for opt in self.opts:
                opt.step()
            for sch in self.scheds:
                sch.step()
            return loss, parts
        o = self.cfg.optim
        if self.lm is not None and self._step >= o.iters + o.lbfgs_iters:
            return self._lm_step()
        box = {}
        if self.cfg.sampling.resample and self._step == o.iters:
            # a line search needs one loss: the finish trains on one fresh batch, drawn when it starts
            self._draw_points(o.lbfgs_points or None)

        def closure():
            self.lbfgs.zero_grad(set_to_none=True)
            lo, pa = self.loss()
            lo.backward()
            if self.dist.distributed:  # the line search must see the global loss and gradient
                self.dist.average_gradients(self.par.theta.values())
                lo = lo.detach().new_tensor(self.dist.all_reduce_mean({"v": float(lo)})["v"])
            box["v"] = (lo, pa)
            return lo

        self.lbfgs.step(closure)
        return box["v"]

    def _lm_step(self) -> tuple[Tensor, dict[str, Tensor]]:
        """One Levenberg-Marquardt step on all the global points (every rank takes the same step): fresh
        ``optim.gn_points`` interior points when resampling, and a second fresh batch the step must also
        improve. Reports the batch's loss before the step."""
        check = None
        if self.cfg.sampling.resample:
            self._draw_points(self.cfg.optim.gn_points)
            check = self._lm_blocks(self.global_points)
            self._draw_points(self.cfg.optim.gn_points)
        blocks = self._lm_blocks(self.global_points)
        before, _, shares = self.lm.step(self.par.theta, blocks, check, project=self.par.project)
        return self._block_parts(before, shares, blocks)

    def _block_parts(self, before: float, shares: list[float], blocks: list[tuple]
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        """The batch loss and its unweighted parts (as :func:`pinn_loss`'s) from each non-empty block's share."""
        shares = iter(shares)  # one per non-empty block
        parts, zeros = {}, self.global_points.x_in.new_zeros
        for name, (_, _, _, x, _), wk in zip(PARTS, blocks, self.weights):
            share = next(shares) if x.shape[0] else 0.0
            parts[name] = zeros(()) + (share / wk if wk > 0 else 0.0)
        return zeros(()) + before, parts

    def _spring_step(self) -> tuple[Tensor, dict[str, Tensor]]:
        """One natural-gradient step with momentum (:mod:`sciml.pinn.natural_gradient`) on all the global points
        (every rank takes the same step), fresh ones when resampling; the step is ``ng_lr`` times the
        schedule's factor. Reports the batch's loss before the step."""
        if self.cfg.sampling.resample:
            self._draw_points()
        blocks = self._lm_blocks(self.global_points)
        r, J = gauss_newton.residual_jacobian(self._fns, self.par.theta, blocks,
                                              chunk=self.cfg.laplacian.chunk_size)
        shares = gauss_newton.block_shares(r, blocks)
        phi = self.spring.direction(r, J)
        eta = self.cfg.optim.ng_lr * self._decay(self._step)
        with torch.no_grad():
            for v, dv in zip(self.par.theta.values(), gauss_newton.unflatten(phi, self.par.theta).values()):
                v.sub_(eta * dv)
        return self._block_parts(sum(shares), shares, blocks)

    def _lm_blocks(self, pts: Points) -> list[tuple]:
        """The residual blocks of :mod:`~sciml.pinn.gauss_newton` at ``pts``: interior, boundary, initial
        (empty where the ansatz holds the data or the weight is 0), scaled by sqrt(weight / count)."""
        hard, w = self.problem.hard, self.weights
        tg = self.objective.targets(pts)
        stationary = is_stationary(self.problem)
        zeros = pts.x_in.new_zeros
        t_in = zeros(pts.x_in.shape[0]) if stationary else pts.t_in
        blocks = [("interior", math.sqrt(w[0] / max(pts.x_in.shape[0], 1)), t_in, pts.x_in, tg.f)]
        use_bc = w[1] > 0 and tg.g.numel() > 0 and (hard is None or (not stationary and not hard.enforces_boundary))
        use_ic = (w[2] > 0 and not stationary and tg.h.numel() > 0
                  and not (hard is not None and hard.enforces_initial))
        n_bd = pts.x_bd.shape[0] if use_bc else 0
        blocks.append(("value", math.sqrt(w[1] / max(n_bd, 1)), zeros(n_bd) if stationary else pts.t_bd[:n_bd],
                       pts.x_bd[:n_bd], tg.g[:n_bd]))
        n_ic = pts.x_ic.shape[0] if use_ic else 0
        t0 = 0.0 if stationary else self.problem.t_range[0]
        blocks.append(("value", math.sqrt(w[2] / max(n_ic, 1)), pts.x_ic.new_full((n_ic,), t0), pts.x_ic[:n_ic],
                       tg.h[:n_ic]))
        return blocks

    def step(self, i: int) -> dict[str, float]:
        """Optimiser step ``i``; the metrics: the loss (per member) and its parts, and every
        ``log_every`` steps the test errors."""
        t0 = self.clock()
        if self._last_end is not None:  # evaluations and checkpoints since the last step use the budget too
            self.wall_seconds += t0 - self._last_end
        self._step = i
        loss, parts = self._optimiser_step()
        self.par.project()
        self._last_end = self.clock()
        dt = self._last_end - t0
        self.train_seconds += dt
        self.wall_seconds += dt
        if self._probe is not None and i < self.cfg.optim.iters:  # Adam steps only: the rest run eager
            self._decide_compile(i, dt)
        k = self.objective.k
        # the optimised loss of a family is the members' sum: report the mean member loss
        out = {"loss": float(loss.detach()) / k, **{f"loss_{n}": float(v.detach()) for n, v in parts.items()}}
        out = self.dist.all_reduce_mean(out)  # the global means (equal shards), the same on every rank
        if self.test is not None and (i % self.cfg.log_every == 0 or i == self.n_steps - 1):
            out.update(self.record_evaluation(i + 1))
        return out

    def record_evaluation(self, steps_done: int) -> dict[str, float]:
        """Evaluate on the test set, append the errors to ``history`` (and ``member_history``) at
        ``steps_done``, and return them as metrics (``rel_l2``, ``rel_l2_sq``, ``rel_l2_max`` for a family)."""
        rel, sq = self.evaluate()
        out = {"rel_l2": rel, "rel_l2_sq": sq}
        self.history.append((steps_done, rel, sq))
        if self.objective.family:
            self.member_history.append((steps_done, list(self._last_members)))
            out["rel_l2_max"] = max(self._last_members)
        return out

    def state(self) -> dict[str, Any]:
        """Everything the remaining steps depend on: trainable tensors, optimisers, schedules, L-BFGS,
        the noise generator and torch's RNG, the error histories, the step timer, resampled points."""
        return {"theta": {k: v.detach().clone() for k, v in self.par.theta.items()},
                "opts": [o.state_dict() for o in self.opts], "scheds": [s.state_dict() for s in self.scheds],
                "lbfgs": self.lbfgs.state_dict() if self.lbfgs else None, "rng": rng_state(self.gen),
                "lm": self.lm.state() if self.lm is not None else None,
                "spring": self.spring.state() if self.spring is not None else None,
                "history": list(self.history), "member_history": list(self.member_history),
                "train_seconds": self.train_seconds, "wall_seconds": self.wall_seconds,
                "points": self.global_points if self.cfg.sampling.resample else None}

    def load(self, st: Mapping[str, Any]) -> None:
        """Restore :meth:`state` (shapes are checked by the caller, :meth:`sciml.pinn.PINN.load_state`)."""
        with torch.no_grad():
            for k, v in st["theta"].items():
                self.par.theta[k].copy_(v)
        for o, s in zip(self.opts, st["opts"]):
            o.load_state_dict(s)
        for o, s in zip(self.scheds, st["scheds"]):
            o.load_state_dict(s)
        if self.lbfgs is not None and st.get("lbfgs"):
            self.lbfgs.load_state_dict(st["lbfgs"])
        if self.lm is not None and st.get("lm"):
            self.lm.load(st["lm"])
        if self.spring is not None and st.get("spring"):
            self.spring.load(st["spring"])
        set_rng_state(st["rng"], self.gen)
        self.history = list(st["history"])
        self.member_history = list(st.get("member_history", []))
        self.train_seconds = float(st["train_seconds"])
        self.wall_seconds = float(st.get("wall_seconds", st["train_seconds"]))
        self._last_end = None  # the gap between sessions is not the run's time
        if st.get("points") is not None:
            self.global_points = st["points"].to(self.device)
            self.points = shard_points(self.global_points, self.dist)
            self.targets = self.objective.targets(self.points)
