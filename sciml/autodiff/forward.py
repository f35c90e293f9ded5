r"""Forward Laplacian for MLPs: the exact Laplacian in one forward sweep plus one cheap adjoint sweep.

For a network of affine layers and elementwise activations,

.. math::
    z_l = W_l a_{l-1} + b_l,\quad a_l = \sigma(z_l)\ (l = 1..L),\quad u = W_{L+1} a_L + b_{L+1},

everything except the activations is linear, so the Hessian of each output is a sum over units

.. math::
    \nabla^2 u = \sum_{l,h} \delta_{l,h}\,\sigma''(z_{l,h})\,\nabla z_{l,h} \nabla z_{l,h}^\top,
    \qquad \delta_l = \partial u / \partial a_l \ \text{(adjoint)},

and any quadratic trace :math:`\sum_c t_c^\top \nabla^2 u\, t_c` over tangent columns :math:`T = [t_c]`
(identity columns of the chosen dimensions for the exact Laplacian, random probes for Hutchinson,
scaled unit vectors for SDGD) is

.. math::
    \sum_{l,h} \delta_{l,h}\,\sigma''(z_{l,h})\, q_{l,h}, \qquad q_{l,h} = \|(\nabla z_{l,h})^\top T\|^2 .

So we need (i) the forward values, (ii) the row norms :math:`q_l` of the tangent Jacobians
:math:`J_l = \partial z_l/\partial x\,T`, and (iii) one adjoint sweep, which also yields the input
gradient :math:`\nabla u = W_1^\top \gamma_1` for free (hence :math:`u_t` in evolution PDEs).
What this saves over the textbook forward Laplacian (value, Jacobian, Laplacian triples):

* the first layer's tangent Jacobian :math:`W_1 T` is a constant when T is shared by all points,
  so :math:`q_1` costs nothing per point;
* the output layer's Jacobian is never formed (only its adjoint, a vector);
* for wide tangent sets (c larger than the width) the row norms are propagated through the Gram matrix
  :math:`G_l = J_l J_l^\top` (cost :math:`H^3` per point instead of :math:`H^2 c`), and for the last
  hidden layer only its diagonal is formed.

All tensors carry a leading batch dimension; everything is differentiable with respect to the
parameters, so a PINN loss built on it back-propagates normally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from .activations import Activation, activation_of_module

__all__ = ["UnsupportedModelError", "MLPStructure", "mlp_structure", "forward_quadratic_trace"]


class UnsupportedModelError(TypeError):
    """Raised when the forward Laplacian is asked to handle a module that is not an affine/elementwise MLP."""


@dataclass(frozen=True)
class MLPStructure:
    """The parameter names and activations of an MLP, read once from the module.

    Attributes:
        weights: parameter names of the weight of each affine layer, input to output.
        biases: parameter names of each bias (``None`` where a layer has no bias).
        activations: the activation after each affine layer but the last.
    """

    weights: tuple[str, ...]
    biases: tuple[str | None, ...]
    activations: tuple[Activation, ...]


def mlp_structure(module: nn.Module) -> MLPStructure:
    """Read the affine/elementwise structure of ``module``.

    Supported: ``nn.Sequential`` (nested allowed) alternating ``nn.Linear`` and supported elementwise
    activation modules, ending in ``nn.Linear``. ``sciml.nn.MLP`` is such a ``Sequential``.

    Raises:
        UnsupportedModelError: naming the first module that does not fit, and the alternatives.
    """
    if not isinstance(module, nn.Sequential):
        raise UnsupportedModelError(
            f"ForwardLaplacian needs an nn.Sequential of nn.Linear and elementwise activations "
            f"(e.g. sciml.nn.MLP); got {type(module).__name__}. Use HessianTrace() for general "
            f"functions, or ForwardLaplacian(fallback=HessianTrace())."
        )
    weights, biases, acts = [], [], []
    expect_linear = True
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Sequential):
            continue
        if isinstance(sub, nn.Linear):
            if not expect_linear:
                # two affine maps in a row compose to one; supported by treating the gap as identity
                acts.append(activation_of_module(nn.Identity()))
            weights.append(f"{name}.weight")
            biases.append(f"{name}.bias" if sub.bias is not None else None)
            expect_linear = False
            continue
        act = activation_of_module(sub)
        if act is None:
            raise UnsupportedModelError(
                f"ForwardLaplacian cannot handle module {name!r} ({type(sub).__name__}): only nn.Linear "
                f"and elementwise tanh/sin/sigmoid/silu/softplus/gelu/identity (or activations added with "
                f"sciml.autodiff.register_activation) are supported. Use "
                f"HessianTrace() or ForwardLaplacian(fallback=HessianTrace())."
            )
        if expect_linear:
            raise UnsupportedModelError(
                f"ForwardLaplacian expects an nn.Linear before activation {name!r}; the network must "
                f"start with an affine layer and alternate affine layers and activations."
            )
        acts.append(act)
        expect_linear = True
    if not weights or expect_linear:
        raise UnsupportedModelError("ForwardLaplacian expects the network to end with an nn.Linear layer.")
    return MLPStructure(tuple(weights), tuple(biases), tuple(acts))


class _TangentLayer(torch.autograd.Function):
    r"""Fused per-layer work on the tangent Jacobian ``j`` (N, C, H):

    ``S_n = sum_{c,h} w_{nh} j_{nch}^2`` (this layer's Laplacian contribution) and ``u = j * s`` (the
    tangent after the activation, fed to the next layer). Autograd would run about seven full passes
    over (N, C, H) tensors for these two lines; the hand-written backward runs three (q is saved from
    the forward, not recomputed), which matters
    because these passes are memory-bound and dominate the step on CPU.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(j: Tensor, s: Tensor | None, w: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        # not linalg.vector_norm: its reduction over the strided C axis measured 1.6x slower than this
        q = (j * j).sum(-2)
        u = j * s.unsqueeze(-2) if s is not None else None
        return (w * q).sum(-1), u, q

    @staticmethod
    def setup_context(ctx, inputs, output):
        j, s, w = inputs
        ctx.mark_non_differentiable(output[2])
        ctx.save_for_backward(j, s, w, output[2])

    @staticmethod
    def backward(ctx, g_sum: Tensor, g_u: Tensor | None, _g_q: Tensor | None):
        j, s, w, q = ctx.saved_tensors
        g_j = j * (2 * g_sum.unsqueeze(-1) * w).unsqueeze(-2)
        g_s = None
        if g_u is not None and s is not None:
            g_j = torch.addcmul(g_j, g_u, s.unsqueeze(-2))
            if ctx.needs_input_grad[1]:
                g_s = (g_u * j).sum(-2)
        g_w = g_sum.unsqueeze(-1) * q if ctx.needs_input_grad[2] else None
        return g_j, g_s, g_w


def _linear(a: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return torch.nn.functional.linear(a, w, b)


def forward_quadratic_trace(
    structure: MLPStructure,
    params: Mapping[str, Tensor],
    x: Tensor,
    tangents: Tensor,
    *,
    with_gradient: bool = False,
    mode: str = "auto",
) -> tuple[Tensor, Tensor, Tensor | None]:
    r"""Value, :math:`\sum_c t_c^\top \nabla^2 u\, t_c` and (optionally) :math:`\nabla u` of an MLP.

    Three passes (module docstring): the forward sweep (:func:`_forward_sweep`), the adjoint sweep
    (:func:`_adjoint_sweep`), then the tangent row norms :math:`q_l` weighted by
    :math:`\delta_l \sigma''(z_l)` (:func:`_jacobian_trace` or :func:`_gram_trace`).

    Args:
        structure: from :func:`mlp_structure`.
        params: parameter dict containing the names in ``structure``.
        x: inputs, shape ``(N, D)``.
        tangents: tangent columns, shape ``(D, C)`` (shared by all points) or ``(N, D, C)`` (per point).
        with_gradient: also return the input gradient ``(N, m, D)``.
        mode: ``"jacobian"`` (carry ``(N, H, C)``), ``"gram"`` (carry ``(N, H, H)``) or ``"auto"``
            (whichever is cheaper for the widths at hand).

    Returns:
        ``(value (N, m), trace (N, m), gradient (N, m, D) or None)``.
    """
    Ws = [params[k] for k in structure.weights]
    bs = [params[k] if k is not None else None for k in structure.biases]
    value, s1s, s2s = _forward_sweep(structure, Ws, bs, x)
    deltas, gradient = _adjoint_sweep(Ws, s1s, value.shape[-1], x.shape[0], with_gradient)
    mode = _choose_mode(mode, Ws, tangents.shape[-1])
    if not s1s:
        return value, value.new_zeros(value.shape), gradient
    # sigma''(z_l) weighted by the adjoint: the coefficient of each unit's q_{l,h}, (N, m, H_l)
    weights = [d * s2.unsqueeze(1) for d, s2 in zip(deltas, s2s)]
    sweep = _jacobian_trace if mode == "jacobian" else _gram_trace
    return value, sweep(Ws, s1s, weights, tangents, value.new_zeros(value.shape)), gradient


def _forward_sweep(structure: MLPStructure, Ws: list[Tensor], bs: list[Tensor | None], x: Tensor
                   ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    r"""The network's value ``(N, m)`` and, per hidden layer, :math:`\sigma'(z_l)` and :math:`\sigma''(z_l)`."""
    a = x
    s1s, s2s = [], []
    for l, act in enumerate(structure.activations):
        z = _linear(a, Ws[l], bs[l])
        a, s1, s2 = act.derivs(z)
        s1s.append(s1)
        s2s.append(s2)
    return _linear(a, Ws[-1], bs[-1]), s1s, s2s


def _adjoint_sweep(Ws: list[Tensor], s1s: list[Tensor], m: int, n: int, with_gradient: bool
                   ) -> tuple[list[Tensor], Tensor | None]:
    r"""The adjoints :math:`\delta_l = \partial u/\partial a_l` ``(N, m, H_l)`` of every hidden layer and,
    when asked, the input gradient :math:`\nabla u = W_1^\top \gamma_1` ``(N, m, D)``, with
    :math:`\gamma_l = \delta_l \odot \sigma'(z_l)` and :math:`\delta_{l-1} = W_l^\top \gamma_l`."""
    n_hidden = len(s1s)
    delta = Ws[-1].unsqueeze(0).expand(n, m, Ws[-1].shape[-1])
    deltas: list[Tensor] = [None] * n_hidden  # type: ignore[list-item]
    for l in reversed(range(n_hidden)):
        deltas[l] = delta
        gamma = delta * s1s[l].unsqueeze(1)
        if l > 0 or with_gradient:
            delta = gamma @ Ws[l]  # (N, m, H_{l-1}) or (N, m, D) at l = 0
    return deltas, (delta if with_gradient else None)


def _choose_mode(mode: str, Ws: list[Tensor], n_cols: int) -> str:
    """``"jacobian"`` or ``"gram"``: ``"auto"`` picks the cheaper for the widths and ``n_cols`` tangents."""
    if mode == "auto":
        # jacobian mode costs ~H^2 C per layer, gram mode ~H^3 (2 per layer, 1 for the last one)
        n_hidden = len(Ws) - 1
        h = max(w.shape[0] for w in Ws[:-1]) if n_hidden else 1
        return "gram" if n_cols * max(n_hidden - 1, 1) > h * max(2 * n_hidden - 3, 1) else "jacobian"
    if mode not in ("jacobian", "gram"):
        raise ValueError(f"mode must be 'auto', 'jacobian' or 'gram', got {mode!r}")
    return mode


def _jacobian_trace(Ws: list[Tensor], s1s: list[Tensor], weights: list[Tensor], tangents: Tensor,
                    trace: Tensor) -> Tensor:
    r"""``trace`` plus :math:`\sum_{l,h} w_{l,h} q_{l,h}`, carrying the tangent Jacobians ``(N, C, H_l)``.

    They are carried transposed, so that :math:`J_l = (J_{l-1} \odot s_{l-1}) W_l^\top` is one large GEMM
    over ``N*C`` rows instead of N small batched ones.
    """
    shared = tangents.dim() == 2
    n, n_cols, n_hidden, m = s1s[0].shape[0], tangents.shape[-1], len(s1s), weights[0].shape[1]
    j = tangents.transpose(-1, -2) @ Ws[0].transpose(0, 1)  # (C, H1) shared, or (N, C, H1)
    u = None
    # the GEMM trick below pays for a batch; for one point (a per-point function under vmap, e.g. the
    # per-point parameter Jacobian of sciml.pinn.natural_gradient) it would make that Jacobian carry a
    # (C, H2, H1) tensor per point: there the tangents are scaled like any other layer's
    fold = shared and n > 1
    for l in range(n_hidden):
        if l == 1 and fold:
            # J_2[n] = W_2 diag(s_1[n]) J_1^T with J_1 constant: with B_c = W_2 diag(J_1[c]) this is
            # s_1 @ B^T, one GEMM and no (N, C, H) elementwise scaling pass
            b = (Ws[1].unsqueeze(0) * j.unsqueeze(1)).reshape(-1, Ws[1].shape[1])  # (C*H2, H1)
            j = (s1s[0] @ b.transpose(0, 1)).view(n, n_cols, Ws[1].shape[0])
        elif l > 0:
            j = u @ Ws[l].transpose(0, 1)
        w_l = weights[l]
        if l == 0 and shared:
            q = (j * j).sum(-2)  # constant (H_1,): no per-point cost
            trace = trace + (w_l * q).sum(-1)
            if not fold and n_hidden > 1:
                u = j * s1s[0].unsqueeze(-2)  # (N, C, H1)
            continue
        nxt = s1s[l] if (l + 1 < n_hidden and not (l == 0 and shared)) else None
        if m == 1:
            contrib, u, _ = _TangentLayer.apply(j, nxt, w_l[:, 0])
            trace = trace + contrib.unsqueeze(-1)
        else:
            q = (j * j).sum(-2)
            trace = trace + (w_l * q.unsqueeze(-2)).sum(-1)
            u = j * nxt.unsqueeze(-2) if nxt is not None else None
    return trace


def _gram_trace(Ws: list[Tensor], s1s: list[Tensor], weights: list[Tensor], tangents: Tensor,
                trace: Tensor) -> Tensor:
    r"""``trace`` plus :math:`\sum_{l,h} w_{l,h} q_{l,h}`, carrying the Gram matrices
    :math:`G_l = J_l J_l^\top` ``(N, H_l, H_l)``: :math:`G_l = A_l G_{l-1} A_l^\top` with
    :math:`A_l = W_l\,\mathrm{diag}(s_{l-1})`, and :math:`q_l = \mathrm{diag}\,G_l`."""
    n_hidden = len(s1s)
    j = tangents.transpose(-1, -2) @ Ws[0].transpose(0, 1)  # (C, H1) shared, or (N, C, H1)
    g = j.transpose(-1, -2) @ j  # Gram matrix J J^T: (H1, H1) shared, or (N, H1, H1)
    for l in range(n_hidden):
        if l > 0:
            a_l = Ws[l] * s1s[l - 1].unsqueeze(-2)  # W_l diag(s_{l-1}): (N, H_l, H_{l-1})
            ag = a_l @ g
            if l == n_hidden - 1:
                q = (ag * a_l).sum(-1)  # only the diagonal of the last Gram matrix is needed
            else:
                g = ag @ a_l.transpose(-1, -2)
                q = torch.diagonal(g, dim1=-2, dim2=-1)
        else:
            q = torch.diagonal(g, dim1=-2, dim2=-1)
        trace = trace + (weights[l] * q.unsqueeze(-2)).sum(-1)
    return trace
