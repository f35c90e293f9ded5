r"""The trajectory loss of neural deflation, one point at a time.

For a candidate :math:`H_k` with state gradient :math:`g = \nabla H_k(x)` and a finite-difference
velocity :math:`v \approx \dot x` at a snapshot :math:`x` (both in standardised coordinates, see
:mod:`sciml.conservation.data`), the per-point loss is

.. math::

    \ell_k(x) = \frac{c(g, v) + \beta\,\overline{\{\hat g, \hat g_j\}^2}}
                     {\big(\|(I - Q_kQ_k^\top)\hat g\|^2 + \epsilon\big)^{\alpha}},
    \qquad
    c(g, v) = \frac{\langle g, \hat v\rangle^2 + \delta^2 m}{\|g\|^2 + \delta^2 m},
    \qquad m = \overline{\|g\|^2}\ \text{(batch mean)}

* :math:`c` is the squared cosine between :math:`\nabla H` and the motion: zero exactly when
  :math:`\tfrac{d}{dt}H = \nabla H\cdot\dot x = 0`. It is invariant under :math:`H \to aH + b`; the
  floor :math:`\delta` (relative to the typical gradient size :math:`m`) makes a candidate that is
  flat where the data are, :math:`\|g\|^2 \ll \delta^2 m`, score the *worst* value 1 instead of 0 -
  the explicit guard against trivial (locally) constant solutions.
* :math:`Q_k` is an orthonormal basis (per point) of the span of the earlier, frozen gradients
  :math:`\nabla H_1..\nabla H_{k-1}`; the denominator is the squared distance of the unit gradient from
  that span (= a ratio of Gram determinants), so the *deflation factor*
  :math:`D = (\|(I-QQ^\top)\hat g\|^2+\epsilon)^{-\alpha}` blows up as :math:`\nabla H_k` falls into
  the span: functionally dependent candidates are expensive (Zhu, Zhang, Kevrekidis 2023).
* With :math:`\alpha = 1`, once :math:`\nabla H_1..\nabla H_{d-1}` span :math:`\dot x^\perp`, *any*
  further candidate scores exactly 1 - the reference value the count rule appends.
* The optional involution term averages the squared Poisson brackets of the unit gradients (in the
  original ``qp`` coordinates) with the earlier ones.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["alignment_residual", "deflation_factor", "span_distance_sq", "poisson_bracket",
           "orthonormal_span", "point_loss", "value_spread"]


def alignment_residual(g: Tensor, v: Tensor, floor: float = 1e-3, m: Tensor | float | None = None) -> Tensor:
    r"""Guarded squared cosine :math:`(\langle g,\hat v\rangle^2+\delta^2m)/(\|g\|^2+\delta^2m)`, shape ``(...,)``.

    Args:
        g: gradients of the candidate, ``(..., d)``.
        v: velocities, ``(..., d)`` (normalised here).
        floor: :math:`\delta`; a gradient much smaller than typical scores 1.
        m: typical squared gradient norm; default: the (detached) mean over ``g``'s leading axes.
    """
    vh = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    dot = (g * vh).sum(-1)
    g2 = (g * g).sum(-1)
    if m is None:
        m = g2.detach().mean()
    f2 = floor * floor * m + 1e-30
    return (dot * dot + f2) / (g2 + f2)


def orthonormal_span(G: Tensor) -> Tensor:
    """Per-point orthonormal basis of the columns of ``G`` (``(..., d, m)``) by QR; ``(..., d, m)``."""
    if G.shape[-1] == 0:
        return G
    Q, _ = torch.linalg.qr(G)
    return Q


def span_distance_sq(g_hat: Tensor, Q: Tensor) -> Tensor:
    r""":math:`\|(I - QQ^\top)\hat g\|^2` for unit ``g_hat`` ``(..., d)`` and basis ``Q`` ``(..., d, m)``."""
    if Q.shape[-1] == 0:
        return (g_hat * g_hat).sum(-1)
    r = g_hat - (Q @ (Q.transpose(-1, -2) @ g_hat.unsqueeze(-1))).squeeze(-1)
    return (r * r).sum(-1)


def deflation_factor(g: Tensor, Q: Tensor, alpha: float = 1.0, eps: float = 1e-6) -> Tensor:
    r"""Deflation factor :math:`(\|(I - QQ^\top)\hat g\|^2 + \epsilon)^{-\alpha}` (1 when ``Q`` is empty).

    It grows without bound (up to :math:`\epsilon^{-\alpha}`) as ``g`` falls into the span of the
    earlier gradients; for an angle :math:`\theta` between ``g`` and the span it equals
    :math:`(\sin^2\theta + \epsilon)^{-\alpha}`.
    """
    if Q.shape[-1] == 0:
        return torch.ones(g.shape[:-1], dtype=g.dtype, device=g.device)
    g_hat = g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return (span_distance_sq(g_hat, Q) + eps).pow(-alpha)


def poisson_bracket(a: Tensor, b: Tensor, n_dof: int) -> Tensor:
    r"""Canonical bracket of two gradients in the ``qp`` layout:
    :math:`\sum_i a_{q_i} b_{p_i} - a_{p_i} b_{q_i}`; shapes ``(..., 2N)`` -> ``(...,)``."""
    return (a[..., :n_dof] * b[..., n_dof:] - a[..., n_dof:] * b[..., :n_dof]).sum(-1)


def point_loss(g: Tensor, v: Tensor, Q: Tensor, *, alpha: float = 1.0, floor: float = 1e-3,
               eps: float = 1e-6, prev_unit_x: Tensor | None = None, g_x: Tensor | None = None,
               n_dof: int | None = None, bracket_weight: float = 1.0, m: Tensor | float | None = None) -> Tensor:
    r"""Per-point neural-deflation loss :math:`\ell_k` (module docstring).

    Args:
        g: candidate gradients in standardised coordinates, ``(B, d)``.
        v: standardised velocities, ``(B, d)``.
        Q: orthonormal bases of the earlier gradients' span, ``(B, d, k-1)`` (``k-1`` may be 0).
        alpha, floor, eps: deflation power, constant guard, deflation regulariser.
        prev_unit_x: unit gradients of the earlier laws in original coordinates ``(B, k-1, d)``
            (involution only), with ``g_x`` the candidate's original-coordinate gradient and ``n_dof``.
        bracket_weight: :math:`\beta`.
        m: typical squared gradient norm for the floor (default: batch mean).

    Returns:
        ``(B,)`` per-point losses.
    """
    num = alignment_residual(g, v, floor, m)
    if prev_unit_x is not None and prev_unit_x.shape[-2] > 0:
        gx = g_x / g_x.norm(dim=-1, keepdim=True).clamp_min(1e-30)
        br = poisson_bracket(gx.unsqueeze(-2), prev_unit_x, n_dof)
        num = num + bracket_weight * (br * br).mean(-1)
    return num * deflation_factor(g, Q, alpha, eps)


def value_spread(h: Tensor, g: Tensor, Q: Tensor, groups: Tensor | None = None) -> Tensor:
    r"""How much a candidate's *values* change along trajectories, relative to its deflated gradient:

    .. math::
        V = \frac{\operatorname{mean}_i \operatorname{Var}_t H(x_i(t))}
                 {\operatorname{median}_b \|(I - Q_bQ_b^\top)\nabla_z H(x_b)\|^2}.

    Zero for an exact integral; order one for a quantity that changes along the motion, *including* a
    staircase, whose pointwise gradient loss is small except on thin walls (the walls move the values,
    and the median of the gradient does not see them). Invariant under :math:`H \to aH + b`, and
    unchanged by mixing in earlier laws, :math:`H \to f(H_1, \dots) + \varepsilon\varphi`
    (numerator and denominator both scale with :math:`\varepsilon^2`): earlier laws cannot make it small.

    Args:
        h: values, ``(B, w)`` (windows of ``w`` snapshots of one trajectory each) or ``(M,)`` with ``groups``.
        g: standardised-coordinate gradients at the same points, flattened ``(B*w, d)`` / ``(M, d)``.
        Q: orthonormal bases of the earlier gradients' span at those points (``(.., d, 0)`` for none).
        groups: trajectory index of each value when ``h`` is flat.
    """
    if groups is None:
        within = h.var(dim=-1, unbiased=False).mean()
    else:
        ids, inv = torch.unique(groups, return_inverse=True)
        n = torch.zeros(len(ids), dtype=h.dtype, device=h.device).index_add_(0, inv, torch.ones_like(h))
        s1 = torch.zeros_like(n).index_add_(0, inv, h)
        s2 = torch.zeros_like(n).index_add_(0, inv, h * h)
        within = (s2 / n - (s1 / n) ** 2).clamp_min(0).mean()
    perp = span_distance_sq(g, Q)  # |(I - QQ^T) g|^2 (of the gradient itself, not its unit vector)
    return within / (perp.median() + 1e-30)
