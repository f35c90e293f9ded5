r"""Per-point derivative operators, torch.func style, and the lift to batches.

Convention: a *per-point function* is ``f(params, x)`` with ``params`` a dict of tensors (usable with
:func:`torch.func.functional_call`) and ``x`` one point of shape ``(D,)``; it returns a scalar (a
potential, a PDE solution) or a vector ``(M,)`` (a vector field). Every operator here maps a per-point
function to another per-point function; :func:`batch` lifts any of them over a leading batch axis of
``x`` (and of any extra per-point arguments such as random probes) with :func:`torch.func.vmap`.

Random numbers are never drawn inside these functions: estimators take their probes as arguments,
drawn outside vmap by :func:`rademacher` / :func:`gaussian` with an explicit generator.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, hessian as _hessian, jacfwd, jacrev, jvp, vmap

__all__ = [
    "PointFunction",
    "point_function",
    "batch",
    "gradient",
    "value_and_gradient",
    "jacobian",
    "hessian",
    "hvp",
    "divergence",
    "divergence_estimate",
    "rademacher",
    "gaussian",
]

PointFunction = Callable[..., Tensor]


def point_function(module: nn.Module, *, squeeze: bool = True) -> PointFunction:
    """Turn a batched module ``(N, D) -> (N, M)`` into a per-point function ``f(params, x)``.

    Args:
        module: any module applied to a batch of points; no BatchNorm (it cannot run under vmap).
        squeeze: return a scalar when ``M == 1`` (the usual case for potentials and PDE solutions).

    Returns:
        ``f(params, x)`` with ``x`` of shape ``(D,)``; ``params`` may hold parameters and buffers.
    """

    def f(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        out = functional_call(module, dict(params), (x.unsqueeze(0),))[0]
        return out.squeeze(-1) if squeeze and out.shape[-1] == 1 else out

    f.module = module  # lets the forward Laplacian see the structure behind the function
    return f


def batch(op: PointFunction, *, chunk_size: int | None = None, n_batched: int = 1) -> PointFunction:
    """Lift a per-point operator ``op(params, x, *extra)`` to batches: ``(params, X, *EXTRA)``.

    Args:
        op: per-point function or operator.
        chunk_size: evaluate at most this many points at once (peak memory falls, time rises a little).
        n_batched: how many arguments after ``params`` carry a leading batch axis (``x`` and, e.g.,
            per-point probes); later arguments are shared.
    """

    def lifted(params: Any, *args: Any) -> Tensor:
        in_dims = (None,) + tuple(0 if i < n_batched else None for i in range(len(args)))
        return vmap(op, in_dims=in_dims, chunk_size=chunk_size)(params, *args)

    return lifted


def gradient(f: PointFunction) -> PointFunction:
    r""":math:`\nabla_x f(x)`, shape ``(D,)``, by reverse mode."""
    return grad(f, argnums=1)


def value_and_gradient(f: PointFunction) -> PointFunction:
    r"""``(f(x), \nabla_x f(x))`` in one reverse pass."""
    gv = torch.func.grad_and_value(f, argnums=1)

    def op(params: Any, x: Tensor) -> tuple[Tensor, Tensor]:
        g, v = gv(params, x)
        return v, g

    return op


def jacobian(f: PointFunction, *, mode: str = "rev") -> PointFunction:
    r"""Jacobian :math:`\partial f_i / \partial x_j`, shape ``(M, D)``.

    Args:
        mode: ``"rev"`` (cheaper when M < D) or ``"fwd"`` (cheaper when M > D).
    """
    if mode == "rev":
        return jacrev(f, argnums=1)
    if mode == "fwd":
        return jacfwd(f, argnums=1)
    raise ValueError(f"mode must be 'rev' or 'fwd', got {mode!r}")


def hessian(f: PointFunction) -> PointFunction:
    r"""Hessian :math:`\nabla_x^2 f`, shape ``(D, D)`` (forward-over-reverse)."""
    return _hessian(f, argnums=1)


def hvp(f: PointFunction) -> PointFunction:
    r"""Hessian-vector product :math:`(\nabla_x^2 f)\,v` by forward-over-reverse: ``hvp(f)(params, x, v)``."""

    def op(params: Any, x: Tensor, v: Tensor) -> Tensor:
        return jvp(lambda y: grad(f, argnums=1)(params, y), (x,), (v,))[1]

    return op


def divergence(field: PointFunction) -> PointFunction:
    r"""Exact divergence :math:`\nabla\cdot F = \operatorname{tr} \partial F/\partial x` (forward mode)."""

    def op(params: Any, x: Tensor) -> Tensor:
        return torch.diagonal(jacfwd(field, argnums=1)(params, x)).sum()

    return op


def divergence_estimate(field: PointFunction) -> PointFunction:
    r"""Hutchinson estimate :math:`\frac1k\sum_j v_j^\top (\partial F/\partial x) v_j`, unbiased when
    :math:`E[vv^\top] = I`. Called as ``op(params, x, V)`` with probes ``V`` of shape ``(k, D)``; one
    Jacobian-vector product per probe, so cost is independent of D."""

    def op(params: Any, x: Tensor, probes: Tensor) -> Tensor:
        def one(v: Tensor) -> Tensor:
            return (jvp(lambda y: field(params, y), (x,), (v,))[1] * v).sum()

        return vmap(one)(probes).mean()

    return op


def rademacher(shape: tuple[int, ...], *, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Random signs +-1 (Rademacher probes: E[v v^T] = I, the lowest-variance Hutchinson choice)."""
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (2 * bits - 1).to(dtype)


def gaussian(shape: tuple[int, ...], *, generator: torch.Generator | None = None,
             device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal probes (E[v v^T] = I)."""
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)
