r"""A Levenberg-Marquardt (damped Gauss-Newton) finish for PINN losses.

The PINN loss is a sum of squares, :math:`L(\theta) = \|r(\theta)\|^2` with the stacked, weighted residuals

.. math::
    r = \Big(\sqrt{w_r/n_r}\,(\mathcal{N}[u_\theta] - f)_i,\ \sqrt{w_b/n_b}\,(u_\theta - g)_j,\
    \sqrt{w_i/n_i}\,(u_\theta(t_0) - h)_k\Big),

so its curvature is, up to second-order terms in :math:`r`, the Gram matrix :math:`J^\top J` of the residual
Jacobian :math:`J = \partial r/\partial\theta` (an :math:`m \times P` matrix). A Levenberg-Marquardt step
solves

.. math::
    (J^\top J + \lambda I)\,\delta = -J^\top r,

in the parameter space when :math:`P \le m` (a :math:`P\times P` Cholesky) and through the identity
:math:`\delta = -J^\top (J J^\top + \lambda I)^{-1} r` when :math:`P > m` (an :math:`m \times m` one), factored in
float64. The damping follows the gain ratio :math:`\rho` = actual / predicted decrease of the loss on the step's
batch: a step with :math:`\rho > 0` is taken and :math:`\lambda` shrinks (more Gauss-Newton), a step that does
not decrease the loss is refused and :math:`\lambda` grows (more gradient descent), so a step never increases the
loss on its batch. With fresh points every step (``sampling.resample``) each step sees a new batch, the energy
natural gradient of Mueller & Zeinhofer (2023) with a trust region instead of a line search, and a second fresh
batch vetoes a step that lowers only its own batch's loss. A parametrisation's projection (singular values
:math:`s \ge 0`) is applied to each trial step before it is judged.

:math:`J` is built per point with ``torch.func`` (``vmap`` over points of ``jacrev`` over the trainable tensors
of the residual at one point), the residual's derivatives by the exact forward Laplacian on a batch of one
point when the network is an MLP (:class:`~sciml.autodiff.ForwardLaplacian`; at d = 100 about 1.6x a batch
gradient's cost), else by an exact ``hessian`` of the per-point network. Its memory is :math:`m \cdot P`
floats (built ``chunk`` points at a time: ``laplacian.chunk_size``, else 256).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, hessian, jacrev, vmap

from sciml.autodiff import EvolutionDerivatives, ForwardLaplacian
from sciml.autodiff.forward import UnsupportedModelError, mlp_structure

from .problem import PDEProblem, StationaryProblem, is_stationary

__all__ = ["LevenbergMarquardt", "residual_functions", "residual_jacobian", "residuals", "lm_step", "unflatten",
           "dual_cholesky", "block_shares"]


def unflatten(vec: Tensor, like: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vec[i:i + v.numel()].view_as(v)
        i += v.numel()
    return out


def residual_functions(module: nn.Module, problem: PDEProblem | StationaryProblem, build: Callable,
                       const: Mapping[str, Tensor], t_shift: float, *, forward: bool | None = None
                       ) -> tuple[Callable[..., Tensor], Callable[..., Tensor]]:
    r"""Per-point residuals: ``interior(theta, t, x, f)`` :math:`= \mathcal{N}[u](t, x) - f` and
    ``value(theta, t, x, g)`` :math:`= u(t, x) - g` (boundary and initial points), ``t`` a scalar (ignored for a
    stationary problem), ``x`` of shape ``(d,)``; ``u`` includes the problem's hard-constraint ansatz.

    ``forward``: the interior residual's derivatives by the forward Laplacian on one point (default: when the
    network is an MLP it handles), else by exact Hessians of the per-point network. Both are exact."""
    stationary = is_stationary(problem)
    hard = problem.hard
    if forward is None:
        try:
            mlp_structure(module)
            forward = True
        except UnsupportedModelError:
            forward = False

    def net(theta, t, x):
        # (dtype pinned: under hessian a 0-dim t minus a float promotes to float64)
        z = x if stationary else torch.cat([(t.reshape(1) - t_shift).to(x.dtype), x])
        return functional_call(module, build(theta, const), (z[None],)).reshape(())

    if stationary:
        def u_of(theta, t, x):
            if hard is None:
                return net(theta, t, x)
            return hard.lift_or_zero()(x) + hard.phi(x) * net(theta, t, x)
    else:
        def u_of(theta, t, x):
            if hard is None:
                return net(theta, t, x)
            return hard.lift(t, x) + hard.factor(t, x) * net(theta, t, x)

    def interior_forward(theta, t, x, f):
        from .solver import interior_residual, stationary_residual  # (solver imports this module)

        params = build(theta, const)
        if stationary:
            return stationary_residual(module, params, problem, x[None], f[None], ForwardLaplacian())[0]
        return interior_residual(module, params, problem, t.reshape(1).to(x.dtype), x[None], f[None],
                                 ForwardLaplacian(), t_shift=t_shift)[0]

    def interior(theta, t, x, f):
        if stationary:
            u = u_of(theta, t, x)
            g = jacrev(u_of, argnums=2)(theta, t, x)
            lap = torch.diagonal(hessian(u_of, argnums=2)(theta, t, x)).sum()
            lhs = problem.operator(u[None], g[None], lap[None], x[None])[0]
        else:
            def u_tx(tx):
                return u_of(theta, tx[0], tx[1:])
            tx = torch.cat([t.reshape(1), x])
            u = u_tx(tx)
            g = jacrev(u_tx)(tx)
            lap = torch.diagonal(hessian(u_tx)(tx))[1:].sum()
            du = EvolutionDerivatives(u[None], g[:1], g[None, 1:], lap[None])
            lhs = problem.operator(du, t[None], x[None])[0]
        return lhs - f

    def value(theta, t, x, g):
        return u_of(theta, t, x) - g

    return (interior_forward if forward else interior), value


def residual_jacobian(fns: tuple[Callable, Callable], theta: Mapping[str, Tensor], blocks: list[tuple],
                      *, chunk: int | None = None) -> tuple[Tensor, Tensor]:
    """The stacked residual ``r (m,)`` and its Jacobian ``J (m, P)`` over ``theta``'s tensors (flattened in
    their order). ``blocks``: ``(kind, scale, t, x, target)`` with ``kind`` ``"interior"`` or ``"value"``;
    each block's residuals are multiplied by ``scale`` (:math:`\\sqrt{w/n}`)."""
    interior, value = fns
    rs, js = [], []
    for kind, scale, t, x, target in blocks:
        if x.shape[0] == 0:
            continue
        fn = interior if kind == "interior" else value

        def with_value(th, ti, xi, yi, fn=fn):
            out = fn(th, ti, xi, yi)
            return out, out

        jac, r = vmap(jacrev(with_value, has_aux=True), in_dims=(None, 0, 0, 0), chunk_size=chunk)(
            dict(theta), t, x, target)
        rs.append(scale * r.detach())
        js.append(scale * torch.cat([jac[k].reshape(x.shape[0], -1) for k in theta], dim=1).detach())
    return torch.cat(rs), torch.cat(js)


def residuals(fns: tuple[Callable, Callable], theta: Mapping[str, Tensor], blocks: list[tuple], *,
              chunk: int | None = None) -> Tensor:
    """The stacked residual of :func:`residual_jacobian` without its Jacobian."""
    interior, value = fns
    out = [scale * vmap(interior if kind == "interior" else value, in_dims=(None, 0, 0, 0), chunk_size=chunk)(
        dict(theta), t, x, target) for kind, scale, t, x, target in blocks if x.shape[0]]
    return torch.cat(out)


def dual_cholesky(J: Tensor, lam: float, gram: Tensor | None = None) -> Tensor | None:
    r"""The float64 Cholesky factor of :math:`J J^\top + \lambda I` (``gram``: :math:`J J^\top` if already
    formed), or ``None`` when it is not positive definite. :math:`J J^\top` is formed in ``J``'s dtype (a float64
    copy of ``J`` would cost 2-4x), again in float64 only when rounding made the float32 one indefinite."""
    eye = lam * torch.eye(J.shape[0], dtype=torch.float64, device=J.device)
    L, info = torch.linalg.cholesky_ex((J @ J.T if gram is None else gram).double() + eye)
    if info and J.dtype != torch.float64:
        J64 = J.double()
        L, info = torch.linalg.cholesky_ex(J64 @ J64.T + eye)
    return None if info else L


def block_shares(r: Tensor, blocks: list[tuple]) -> list[float]:
    r"""Each non-empty block's share of :math:`\|r\|^2` (the sum of its squared scaled residuals), in order."""
    sizes = [x.shape[0] for _, _, _, x, _ in blocks if x.shape[0]]
    return [float((b.double() ** 2).sum()) for b in torch.split(r, sizes)]


def lm_step(r: Tensor, J: Tensor, damping: float) -> tuple[Tensor, float] | None:
    r"""The Levenberg-Marquardt step :math:`\delta` for ``damping`` :math:`\lambda` (relative to the mean
    diagonal of :math:`J^\top J`) and its predicted loss decrease :math:`\|r\|^2 - \|r + J\delta\|^2`;
    ``None`` when the damped Gram matrix is not positive definite in float64 (then raise :math:`\lambda`).

    The Gram matrix is factored in float64. :math:`J^\top J` (:math:`P \le m`) is formed in float64 too;
    the large :math:`J J^\top` (:math:`P > m`) first in ``J``'s dtype (float64 would copy ``J`` and take 2-4x
    longer), again in float64 only when the float32 one is not positive definite.
    """
    m, p = J.shape
    scale = float((J.double() ** 2).sum()) / p  # mean diagonal of J^T J
    lam = damping * max(scale, 1e-300)
    r64 = r.double()
    if p <= m:
        J64 = J.double()
        L, info = torch.linalg.cholesky_ex(J64.T @ J64 + lam * torch.eye(p, dtype=torch.float64, device=J.device))
        if info:
            return None
        delta = -torch.cholesky_solve((J64.T @ r64)[:, None], L)[:, 0]
        step = J64 @ delta
    else:
        L = dual_cholesky(J, lam)
        if L is None:
            return None
        y = torch.cholesky_solve(r64[:, None], L)[:, 0]
        delta = -(J.T @ y.to(J.dtype)).double()
        step = (J @ delta.to(J.dtype)).double()
    pred = float((r64 @ r64) - ((r64 + step) ** 2).sum())
    return delta, pred


@dataclass
class LevenbergMarquardt:
    r"""The damped Gauss-Newton step with its damping :math:`\lambda` (module docstring).

    Attributes:
        fns: the per-point residuals of :func:`residual_functions` (for :meth:`step`; :meth:`attempt` alone
            needs none).
        damping: :math:`\lambda` relative to the mean diagonal of :math:`J^\top J`; adapted every step.
        attempts: tries per step; each refused try multiplies :math:`\lambda` by ``up**2 / 2``.
        chunk: points per ``vmap`` chunk while :math:`J` is built (a memory cap).
        accepted, refused: counters of tries.
    """

    fns: tuple[Callable[..., Tensor], Callable[..., Tensor]] | None = None
    damping: float = 1e-3
    attempts: int = 8
    chunk: int | None = 256
    up: float = 4.0
    down: float = 3.0
    accepted: int = 0
    refused: int = 0

    def step(self, theta: Mapping[str, Tensor], blocks: list[tuple], check: list[tuple] | None = None,
             project: Callable[[], None] | None = None) -> tuple[float, float, list[float]]:
        r"""One step on ``blocks`` (:func:`residual_jacobian`), ``theta``'s tensors updated in place.

        ``check``: blocks of an independent batch (fresh points): a step that does not also lower the loss
        there is refused. Judged on its own batch alone a step can fit that batch and spoil the rest: a
        10-d linear parabolic network (:math:`P = 34{,}689 > m`) went from rel L2 0.13 to 1.1 in one step.
        ``project``: the parametrisation's projection onto its constraints (:math:`s \ge 0` for singular
        values), applied to every trial before it is judged, so the step taken is the one judged (applied
        after acceptance instead, it made the transfer to :math:`\varepsilon = 50` drift from 4.8e-3 to
        4.4e-2 in ten steps, each "accepted" on its batch).

        Returns:
            The loss :math:`\|r\|^2` of the batch before and after the step (equal when every try was
            refused), and each non-empty block's share of the first (the sum of its squared scaled residuals).
        """
        r, J = residual_jacobian(self.fns, theta, blocks, chunk=self.chunk)
        shares = block_shares(r, blocks)
        before = sum(shares)
        if not math.isfinite(before):
            raise FloatingPointError(f"the residuals are not finite (loss {before})")
        check_before = self._loss(theta, check) if check is not None else None
        old = [v.detach().clone() for v in theta.values()]

        def trial(delta: Tensor) -> float:
            with torch.no_grad():
                for v, o, dv in zip(theta.values(), old, unflatten(delta.to(r.dtype), theta).values()):
                    v.copy_(o + dv)
            if project is not None:
                project()
            return self._loss(theta, blocks)

        def undo() -> None:
            with torch.no_grad():
                for v, o in zip(theta.values(), old):
                    v.copy_(o)

        veto = None if check is None else (lambda: not self._loss(theta, check) < check_before)
        after = self.attempt(r, J, before, trial, undo, veto)
        return before, before if after is None else after, shares

    def attempt(self, r: Tensor, J: Tensor, before: float, trial: Callable[[Tensor], float],
                undo: Callable[[], None], veto: Callable[[], bool] | None = None) -> float | None:
        r"""The damped tries of one step: up to ``attempts`` solves of :func:`lm_step` at the current damping.
        ``trial(delta)`` takes the step and returns the loss after it; a try whose gain ratio is not positive,
        or that ``veto()`` refuses (asked only then), is undone (``undo()``) and the damping raised. Returns the
        loss after the accepted step, or ``None`` when every try was refused. Shared by the PINN step and the
        conservation finish (:func:`sciml.conservation.candidate.lm_finish`)."""
        for _ in range(self.attempts):
            solved = lm_step(r, J, self.damping)
            if solved is None:  # not positive definite in float64: more damping
                self._adapt(-1.0)
                self.refused += 1
                continue
            delta, predicted = solved
            after = trial(delta)
            rho = (before - after) / predicted if predicted > 0 and math.isfinite(after) else -1.0
            if rho > 0 and veto is not None and veto():
                rho = -1.0  # it fitted its own batch, not the problem
            self._adapt(rho)
            if rho > 0:
                self.accepted += 1
                return after
            self.refused += 1
            undo()
        return None

    def _loss(self, theta: Mapping[str, Tensor], blocks: list[tuple]) -> float:
        with torch.no_grad():
            r = residuals(self.fns, theta, blocks, chunk=self.chunk)
        return float(r.double() @ r.double())

    def _adapt(self, rho: float, lo: float = 1e-9, hi: float = 1e6) -> None:
        r"""Shrink :math:`\lambda` after a step that did what the model predicted, grow it otherwise."""
        if rho > 0.75:
            self.damping = max(self.damping / self.down, lo)
        elif rho < 0.25:
            self.damping = min(self.damping * (self.up if rho > 0 else self.up**2 / 2), hi)

    def state(self) -> dict[str, float]:
        return {"damping": self.damping, "accepted": self.accepted, "refused": self.refused}

    def load(self, st: Mapping[str, float]) -> None:
        self.damping, self.accepted, self.refused = float(st["damping"]), int(st["accepted"]), int(st["refused"])
