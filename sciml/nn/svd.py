r"""SVD-factored linear layers: :math:`W = U\,\mathrm{diag}(s)\,V^\top (+ R)` with U, V (and R) frozen.

The SVD-PINN transfer (Gao, Cheung, Ng, arXiv 2211.08760) keeps the singular vectors of a trained
weight matrix and retrains its singular values. With a truncated rank r the tail
:math:`R = W - U_r\,\mathrm{diag}(s_r)\,V_r^\top` is kept frozen, so the factored layer still computes
exactly the trained map until ``s`` moves.

Two forms of the same thing:

* :func:`svd_factor` / :func:`svd_weight`: the tensors, for functional use (the transfer module builds
  an MLP's parameter dict from them each step, so the forward Laplacian applies unchanged);
* :class:`SVDLinear`: a drop-in ``nn.Module`` replacing an ``nn.Linear``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["SVDFactors", "svd_factor", "svd_weight", "SVDLinear"]


@dataclass(frozen=True)
class SVDFactors:
    """``W = U diag(s) V^T + residual``; ``U (out, r)``, ``s (r,)``, ``V (in, r)``, ``residual`` or None."""

    U: Tensor
    s: Tensor
    V: Tensor
    residual: Tensor | None = None


def svd_factor(weight: Tensor, rank: int | None = None) -> SVDFactors:
    """Thin SVD of ``weight`` (computed in float64, returned in its dtype), top ``rank`` values kept.

    Args:
        weight: ``(out, in)``.
        rank: number of singular values to keep as trainable (``None`` or 0: all of them). The
            remainder is returned as ``residual``.
    """
    w64 = weight.detach().to(torch.float64)
    U, s, Vh = torch.linalg.svd(w64, full_matrices=False)
    full = s.numel()
    r = full if not rank else min(int(rank), full)
    residual = None
    if r < full:
        residual = (U[:, r:] * s[r:]) @ Vh[r:]
        residual = residual.to(weight.dtype)
    dt = weight.dtype
    return SVDFactors(U[:, :r].to(dt).contiguous(), s[:r].to(dt).contiguous(), Vh[:r].T.to(dt).contiguous(), residual)


def svd_weight(U: Tensor, s: Tensor, V: Tensor, residual: Tensor | None = None) -> Tensor:
    """:math:`U\\,\\mathrm{diag}(s)\\,V^\\top (+ R)`; batched over leading axes of ``s`` (vmap-friendly)."""
    w = (U * s.unsqueeze(-2)) @ V.transpose(-1, -2)
    return w if residual is None else w + residual


class SVDLinear(nn.Module):
    """A linear layer parametrised as :math:`y = (U\\,\\mathrm{diag}(s)\\,V^\\top + R)\\,x + b`.

    ``U``, ``V``, ``R`` are buffers (frozen); ``s`` and ``bias`` are parameters. Call :meth:`project`
    after each optimiser step to keep :math:`s \\ge 0`.
    """

    def __init__(self, factors: SVDFactors, bias: Tensor | None):
        super().__init__()
        self.register_buffer("U", factors.U)
        self.register_buffer("V", factors.V)
        self.register_buffer("residual", factors.residual)
        self.s = nn.Parameter(factors.s.clone())
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, rank: int | None = None) -> "SVDLinear":
        return cls(svd_factor(linear.weight, rank), linear.bias)

    @property
    def weight(self) -> Tensor:
        return svd_weight(self.U, self.s, self.V, self.residual)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight, self.bias)

    @torch.no_grad()
    def project(self) -> None:
        self.s.clamp_(min=0)

    def to_linear(self) -> nn.Linear:
        """The materialised ``nn.Linear`` (e.g. to hand the network to the forward Laplacian)."""
        out, inp = self.U.shape[0], self.V.shape[0]
        lin = nn.Linear(inp, out, bias=self.bias is not None, dtype=self.s.dtype, device=self.s.device)
        with torch.no_grad():
            lin.weight.copy_(self.weight)
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin
