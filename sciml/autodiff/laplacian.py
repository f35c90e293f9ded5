r"""Laplacian methods behind one interface.

Every method is a small frozen object; call it as

    out = method(f, params, x, dims=None, noise=None, with_gradient=False, chunk_size=None)

with ``f`` an ``nn.Module`` or a per-point function ``f(params, x)``, ``x`` of shape ``(N, D)``, and
``dims`` the input dimensions the Laplacian runs over (``None``: all; for ``u(t, x)`` with the time
first, ``dims=range(1, D)``). It returns :class:`Derivatives` with the value, the (estimated) Laplacian
:math:`\sum_{i \in \text{dims}} \partial_{ii} f` and, when asked, the full input gradient.

Methods:

========================  =====================================================  ==========
``HessianTrace()``        trace of ``torch.func.hessian`` (the oracle)            exact
``ForwardLaplacian()``    one forward + one adjoint sweep through an MLP          exact
``NestedAutograd()``      a loop of ``torch.autograd.grad`` over dimensions       exact
``Hutchinson(k)``         :math:`\frac1k\sum_j v_j^\top \nabla^2 f\, v_j`         unbiased
``SDGD(m)``               :math:`\frac{d}{m}\sum_{i\in S}\partial_{ii} f`, |S|=m   unbiased
========================  =====================================================  ==========

Methods by name: :data:`LAPLACIANS` (``forward``, ``hessian``, ``nested``, ``hutchinson``, ``sdgd``), a
:class:`sciml.registry.Registry` whose names are the choices of every config key and CLI flag that
picks a Laplacian; ``LAPLACIANS.resolve(name_or_object, probes=k, d=d)`` builds one (an object passes
through unchanged).

Implementer's contract (for a new method): subclass :class:`AbstractLaplacian`; set ``stochastic``;
if stochastic, implement :meth:`AbstractLaplacian.draw` (all randomness is drawn there, outside any
vmap, from the caller's generator) and accept the drawn tensor as ``noise``; override
``noise_per_point`` if one draw serves the whole batch; return a
:class:`Derivatives` whose shapes follow the table in its docstring; keep everything differentiable
with respect to ``params``. Register it in :data:`LAPLACIANS`; ``tests/test_autodiff_registry.py``
then checks it against a float64 ``torch.func.hessian`` trace (an exact method to 1e-10; a stochastic
one needs its exact expectation over all its probes added there). Add it also to the oracle tests of
``tests/test_autodiff_oracle.py`` (partial dims, chunks, parameter gradients of a Laplacian loss) and,
if stochastic, to ``tests/test_autodiff_stochastic.py`` (unbiased, with the estimator's exact variance).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, hessian as _hessian, jacrev, jvp, vmap

from .forward import UnsupportedModelError, forward_quadratic_trace, mlp_structure
from .operators import gaussian, point_function, rademacher
from ..registry import Registry

__all__ = [
    "Derivatives",
    "AbstractLaplacian",
    "HessianTrace",
    "ForwardLaplacian",
    "NestedAutograd",
    "Hutchinson",
    "SDGD",
    "default_laplacian",
    "LAPLACIANS",
    "EvolutionDerivatives",
    "evolution_terms",
]

Dims = Sequence[int] | range | slice | None


@dataclass(frozen=True)
class Derivatives:
    """What a Laplacian method returns.

    Attributes:
        value: ``f`` at the points, ``(N,)`` for scalar ``f`` or ``(N, M)``.
        laplacian: the (estimated) Laplacian over the chosen dims, same shape as ``value``.
        gradient: the input gradient over all ``D`` inputs, ``(N, D)`` or ``(N, M, D)``; ``None``
            unless ``with_gradient=True``.
    """

    value: Tensor
    laplacian: Tensor
    gradient: Tensor | None = None


def _dims_index(dims: Dims, d: int, device: torch.device) -> Tensor:
    if dims is None:
        return torch.arange(d, device=device)
    if isinstance(dims, slice):
        return torch.arange(d, device=device)[dims]
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    dims = [int(i) for i in dims]  # checked as Python ints: no tensor-to-scalar sync (a graph break when compiled)
    if not dims or min(dims) < 0 or max(dims) >= d:
        raise ValueError(f"dims must be non-empty indices in [0, {d}), got {dims}")
    return torch.tensor(dims, dtype=torch.long, device=device)


def _selector(idx: Tensor, d: int, dtype: torch.dtype) -> Tensor:
    """One-hot columns ``E`` of shape ``(D, len(idx))``: ``E[idx[c], c] = 1``."""
    e = torch.zeros(d, idx.numel(), dtype=dtype, device=idx.device)
    e[idx, torch.arange(idx.numel(), device=idx.device)] = 1
    return e


def _resolve(f: Any) -> tuple[nn.Module | None, Any]:
    """``(module or None, per-point function)`` for a module or a per-point function."""
    if isinstance(f, nn.Module):
        return f, point_function(f)
    return getattr(f, "module", None), f


def _params_of(module: nn.Module | None, params: Mapping[str, Tensor] | None) -> Mapping[str, Tensor]:
    if params is not None:
        return params
    if module is None:
        raise ValueError("params is None; pass the parameter dict of the per-point function")
    return dict(module.named_parameters())


def _chunked(fn, x: Tensor, noise: Tensor | None, chunk_size: int | None, shared_noise: bool):
    """Apply ``fn(x_chunk, noise_chunk)`` over chunks of the batch and concatenate the results."""
    if chunk_size is None or x.shape[0] <= chunk_size:
        return fn(x, noise)
    outs = []
    for s in range(0, x.shape[0], chunk_size):
        nz = noise if (noise is None or shared_noise) else noise[s : s + chunk_size]
        outs.append(fn(x[s : s + chunk_size], nz))
    return Derivatives(
        torch.cat([o.value for o in outs]),
        torch.cat([o.laplacian for o in outs]),
        None if outs[0].gradient is None else torch.cat([o.gradient for o in outs]),
    )


class AbstractLaplacian(ABC):
    """A way to compute (or estimate) the Laplacian of a function at a batch of points."""

    stochastic: ClassVar[bool] = False

    @property
    def noise_per_point(self) -> bool:
        """Whether :meth:`draw` returns one row per point (leading axis ``n``), so that a data-parallel
        run shards it with the points; otherwise one draw serves the whole batch and every rank keeps it."""
        return self.stochastic

    def draw(self, n: int, d: int, *, generator: torch.Generator | None = None,
             device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor | None:
        """Draw the randomness for ``n`` points and a ``d``-dimensional Laplacian (``None`` if exact)."""
        return None

    @abstractmethod
    def __call__(self, f: Any, params: Mapping[str, Tensor] | None, x: Tensor, *, dims: Dims = None,
                 noise: Tensor | None = None, generator: torch.Generator | None = None,
                 with_gradient: bool = False, chunk_size: int | None = None) -> Derivatives:
        """Evaluate; see the module docstring for the arguments."""

    def _noise(self, noise, n, d, generator, x) -> Tensor | None:
        if not self.stochastic or noise is not None:
            return noise
        return self.draw(n, d, generator=generator, device=x.device, dtype=x.dtype)


@dataclass(frozen=True)
class HessianTrace(AbstractLaplacian):
    """Exact Laplacian as the trace of ``torch.func.hessian`` (forward over reverse).

    The reference every other method is tested against. Memory is ``O(d^2)`` per point; use
    ``chunk_size`` at large d. Works for any per-point function, scalar or vector valued.
    """

    def __call__(self, f, params, x, *, dims=None, noise=None, generator=None, with_gradient=False,
                 chunk_size=None) -> Derivatives:
        module, fn = _resolve(f)
        params = _params_of(module, params)
        d = x.shape[-1]
        idx = _dims_index(dims, d, x.device)

        def per_point(xp):
            y0 = xp[idx]
            # the chosen coordinates replaced by y: a scatter, not a (D x len(idx)) selector product,
            # which under the Hessian's vmap became a batched matrix-vector product (90% of a d = 100 step)
            h = _hessian(lambda y: fn(params, xp.index_copy(0, idx, y)))(y0)
            lap = torch.diagonal(h, dim1=-2, dim2=-1).sum(-1)
            if with_gradient:
                return fn(params, xp), lap, jacrev(fn, argnums=1)(params, xp)
            return fn(params, xp), lap

        def run(xc, _):
            out = vmap(per_point)(xc)
            return Derivatives(out[0], out[1], out[2] if with_gradient else None)

        return _chunked(run, x, None, chunk_size, True)


@dataclass(frozen=True)
class NestedAutograd(AbstractLaplacian):
    """Exact Laplacian by a loop of ``torch.autograd.grad`` over dimensions (DeepXDE's way).

    One reverse pass for the gradient, then one reverse pass with ``create_graph=True`` per dimension.
    Kept as the baseline of the benchmark and as a second oracle; scalar functions only.
    """

    def __call__(self, f, params, x, *, dims=None, noise=None, generator=None, with_gradient=False,
                 chunk_size=None) -> Derivatives:
        module, fn = _resolve(f)
        params = _params_of(module, params)
        idx = _dims_index(dims, x.shape[-1], x.device).tolist()

        def run(xc, _):
            xr = xc.detach().requires_grad_(True)
            if module is not None:
                u = functional_call(module, dict(params), (xr,)).squeeze(-1)
            else:
                u = vmap(fn, in_dims=(None, 0))(params, xr)
            if u.dim() != 1:
                raise ValueError("NestedAutograd supports scalar functions only")
            g = torch.autograd.grad(u.sum(), xr, create_graph=True)[0]
            lap = u.new_zeros(u.shape)
            for i in idx:
                lap = lap + torch.autograd.grad(g[:, i].sum(), xr, create_graph=True)[0][:, i]
            return Derivatives(u, lap, g if with_gradient else None)

        return _chunked(run, x, None, chunk_size, True)


@dataclass(frozen=True)
class ForwardLaplacian(AbstractLaplacian):
    """Exact Laplacian of an MLP in one forward sweep plus one adjoint sweep (see ``forward.py``).

    The default exact method for ``sciml.nn.MLP`` and any ``nn.Sequential`` of ``nn.Linear`` and
    elementwise activations: 2.5-8x faster than nested autograd on CPU (``docs/benchmarks.md``).

    Attributes:
        mode: ``"auto"`` | ``"jacobian"`` | ``"gram"`` (how tangent row norms are propagated).
        fallback: method used when ``f`` is not such an MLP; ``None`` raises
            :class:`UnsupportedModelError` instead.
    """

    mode: str = "auto"
    fallback: AbstractLaplacian | None = None

    def __call__(self, f, params, x, *, dims=None, noise=None, generator=None, with_gradient=False,
                 chunk_size=None) -> Derivatives:
        module, fn = _resolve(f)
        try:
            if module is None:
                raise UnsupportedModelError(
                    "ForwardLaplacian needs the network module: pass the nn.Module itself or a function "
                    "made by sciml.autodiff.point_function(module); for other functions use HessianTrace()."
                )
            structure = mlp_structure(module)
        except UnsupportedModelError:
            if self.fallback is None:
                raise
            return self.fallback(f, params, x, dims=dims, noise=noise, generator=generator,
                                 with_gradient=with_gradient, chunk_size=chunk_size)
        params = _params_of(module, params)
        d = x.shape[-1]
        tangents = _selector(_dims_index(dims, d, x.device), d, x.dtype)
        return _chunked(
            lambda xc, _: _forward(structure, params, xc, tangents, with_gradient, self.mode),
            x, None, chunk_size, True,
        )


def _forward(structure, params, x, tangents, with_gradient, mode) -> Derivatives:
    value, lap, grad_x = forward_quadratic_trace(structure, params, x, tangents,
                                                 with_gradient=with_gradient, mode=mode)
    if value.shape[-1] == 1:
        value, lap = value.squeeze(-1), lap.squeeze(-1)
        grad_x = None if grad_x is None else grad_x.squeeze(-2)
    return Derivatives(value, lap, grad_x)


def _stochastic_eval(module, fn, params, x, idx, tangents, with_gradient, chunk_size, shared, mode="auto"):
    """Evaluate ``sum_c t_c^T H t_c`` with tangents over ``idx``: shared ``(len(idx), C)`` or per point
    ``(N, len(idx), C)``; forward sweep for MLPs, Hessian-vector products otherwise."""
    d = x.shape[-1]
    e = _selector(idx, d, x.dtype)
    try:
        structure = mlp_structure(module) if module is not None else None
    except UnsupportedModelError:
        structure = None
    if structure is not None:
        full = e @ tangents  # (D, C) or (N, D, C)
        return _chunked(lambda xc, tc: _forward(structure, params, xc, tc if tc is not None else full,
                                                with_gradient, mode),
                        x, None if shared else full, chunk_size, shared)

    def per_point(xp, tp):
        y0 = xp[idx]

        def g(y):
            return torch.func.grad(lambda z: fn(params, xp + e @ (z - y0)))(y)

        quad = vmap(lambda t: (jvp(g, (y0,), (t,))[1] * t).sum())(tp.transpose(0, 1)).sum()
        if with_gradient:
            grad_x, value = grad_and_value(fn, argnums=1)(params, xp)
            return value, quad, grad_x
        return fn(params, xp), quad

    def run(xc, tc):
        tc = tangents if shared else tc
        out = vmap(per_point, in_dims=(0, None if shared else 0))(xc, tc)
        return Derivatives(out[0], out[1], out[2] if with_gradient else None)

    return _chunked(run, x, None if shared else tangents, chunk_size, shared)


@dataclass(frozen=True)
class Hutchinson(AbstractLaplacian):
    r"""Hutchinson estimate :math:`\frac1k \sum_{j=1}^k v_j^\top \nabla^2 f\, v_j`, :math:`E[vv^\top]=I`.

    Unbiased for any k; variance falls as 1/k. Rademacher probes give the smallest variance
    (:math:`2\sum_{i\neq j} H_{ij}^2 / k`); Gaussian adds :math:`2\sum_i H_{ii}^2 / k`.

    Attributes:
        num_probes: k.
        distribution: ``"rademacher"`` or ``"gaussian"``.
    """

    num_probes: int = 16
    distribution: str = "rademacher"
    stochastic: ClassVar[bool] = True

    def __post_init__(self):
        if self.num_probes < 1:
            raise ValueError(f"num_probes must be >= 1, got {self.num_probes}")
        if self.distribution not in ("rademacher", "gaussian"):
            raise ValueError(f"distribution must be 'rademacher' or 'gaussian', got {self.distribution!r}")

    def draw(self, n, d, *, generator=None, device=None, dtype=torch.float32) -> Tensor:
        """Probes of shape ``(n, d, k)``: one independent set per point."""
        sampler = rademacher if self.distribution == "rademacher" else gaussian
        return sampler((n, d, self.num_probes), generator=generator, device=device, dtype=dtype)

    def __call__(self, f, params, x, *, dims=None, noise=None, generator=None, with_gradient=False,
                 chunk_size=None) -> Derivatives:
        module, fn = _resolve(f)
        params = _params_of(module, params)
        idx = _dims_index(dims, x.shape[-1], x.device)
        probes = self._noise(noise, x.shape[0], idx.numel(), generator, x)
        tangents = probes / self.num_probes ** 0.5
        return _stochastic_eval(module, fn, params, x, idx, tangents, with_gradient, chunk_size, shared=False)


@dataclass(frozen=True)
class SDGD(AbstractLaplacian):
    r"""Stochastic dimension sampling: :math:`\frac{d}{m}\sum_{i\in S}\partial_{ii} f` with S a uniform
    random subset of m of the d dimensions (without replacement), unbiased.

    With ``per_point=False`` (the SDGD paper's choice) one subset serves the whole batch, which for an
    MLP makes the first layer's tangent Jacobian a constant: the cost scales with m, not d.

    Attributes:
        num_dims: m, the subset size.
        per_point: draw an independent subset for each point.
    """

    num_dims: int = 16
    per_point: bool = False
    stochastic: ClassVar[bool] = True

    @property
    def noise_per_point(self) -> bool:
        return self.per_point

    def __post_init__(self):
        if self.num_dims < 1:
            raise ValueError(f"num_dims must be >= 1, got {self.num_dims}")

    def draw(self, n, d, *, generator=None, device=None, dtype=torch.float32) -> Tensor:
        """Subset indices: ``(m,)`` shared, or ``(n, m)`` per point (positions within the Laplacian dims)."""
        m = min(self.num_dims, d)
        if not self.per_point:
            return torch.randperm(d, generator=generator, device=device)[:m]
        keys = torch.rand((n, d), generator=generator, device=device)
        return keys.argsort(dim=1)[:, :m]

    def __call__(self, f, params, x, *, dims=None, noise=None, generator=None, with_gradient=False,
                 chunk_size=None) -> Derivatives:
        module, fn = _resolve(f)
        params = _params_of(module, params)
        idx = _dims_index(dims, x.shape[-1], x.device)
        d = idx.numel()
        subset = self._noise(noise, x.shape[0], d, generator, x)
        m = subset.shape[-1]
        scale = (d / m) ** 0.5
        if subset.dim() == 1:
            tangents = _selector(subset, d, x.dtype) * scale  # (d, m)
            shared = True
        else:
            eye = torch.eye(d, dtype=x.dtype, device=x.device)
            tangents = eye[subset].transpose(1, 2) * scale  # (N, d, m)
            shared = False
        return _stochastic_eval(module, fn, params, x, idx, tangents, with_gradient, chunk_size, shared)


LAPLACIANS: Registry[AbstractLaplacian] = Registry("laplacian method", AbstractLaplacian)
"""Laplacian methods by name; factories take ``probes`` (Hutchinson probes / SDGD dimensions) and ``d``."""
LAPLACIANS.register("forward", lambda: ForwardLaplacian(), doc="exact: one forward + one adjoint sweep (MLPs)")
LAPLACIANS.register("hessian", lambda: HessianTrace(), doc="exact: trace of torch.func.hessian (the oracle)")
LAPLACIANS.register("nested", lambda: NestedAutograd(), doc="exact: a loop of autograd over dimensions")
LAPLACIANS.register("hutchinson", lambda probes=16: Hutchinson(probes), doc="unbiased: Rademacher probes")
LAPLACIANS.register("sdgd", lambda probes=16, d=None: SDGD(probes if d is None else min(probes, d)),
                    doc="unbiased: sampled dimensions")


def default_laplacian() -> AbstractLaplacian:
    """The default exact method: the forward Laplacian for MLPs, the Hessian trace for anything else."""
    return ForwardLaplacian(fallback=HessianTrace())


@dataclass(frozen=True)
class EvolutionDerivatives:
    r"""The terms of an evolution PDE for :math:`u(t, x)`: value, :math:`u_t`, :math:`\nabla_x u`,
    :math:`\Delta_x u`, each with a leading batch axis."""

    u: Tensor
    u_t: Tensor
    grad_x: Tensor
    lap_x: Tensor


def evolution_terms(f: Any, params: Mapping[str, Tensor] | None, t: Tensor, x: Tensor, *,
                    method: AbstractLaplacian | None = None, noise: Tensor | None = None,
                    generator: torch.Generator | None = None, chunk_size: int | None = None
                    ) -> EvolutionDerivatives:
    r"""Time/space split for a network of the input :math:`(t, x_1..x_d)` (time first).

    Computes :math:`u`, :math:`u_t`, :math:`\nabla_x u` and the *spatial* Laplacian
    :math:`\Delta_x u = \sum_{i=1}^d \partial_{x_i x_i} u` in one call of ``method`` (default: the
    forward Laplacian, which gets the gradient from its adjoint sweep at no extra cost).

    Args:
        f: network (module) or per-point function of ``z = (t, x)``, shape ``(d + 1,)``.
        t: times, shape ``(N,)``.
        x: positions, shape ``(N, d)``.
    """
    method = default_laplacian() if method is None else method
    z = torch.cat([t.reshape(-1, 1), x], dim=1)
    out = method(f, params, z, dims=range(1, z.shape[1]), noise=noise, generator=generator,
                 with_gradient=True, chunk_size=chunk_size)
    return EvolutionDerivatives(out.value, out.gradient[..., 0], out.gradient[..., 1:], out.laplacian)
