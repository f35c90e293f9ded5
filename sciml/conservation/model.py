"""A candidate conserved quantity: an MLP on standardised coordinates, and its user-facing callable."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..autodiff import batch, gradient, point_function
from ..nn.mlp import MLP

__all__ = ["ConservedQuantity", "LearnedInvariant"]


class ConservedQuantity(nn.Module):
    r"""``H(x) = MLP(z)`` (+ ``c . phi(z)`` with a polynomial head), ``z = (x - shift) / scale``;
    batched ``(n, d) -> (n, 1)``. With ``raw_inputs`` the MLP sees ``x`` itself (``MLP(x) + c . phi(z)``).

    The standardisation is part of the function, so gradients taken with :mod:`sciml.autodiff` are
    gradients with respect to the original state.
    """

    def __init__(self, dim: int, shift: Tensor, scale: Tensor, width: int = 64, depth: int = 3,
                 activation: str = "silu", poly: nn.Module | None = None, coef: Tensor | None = None,
                 raw_inputs: bool = False):
        super().__init__()
        self.raw_inputs = raw_inputs  # the MLP sees x itself (the polynomial head always sees z)
        self.register_buffer("shift", torch.as_tensor(shift).clone())
        self.register_buffer("scale", torch.as_tensor(scale).clone())
        self.net = MLP(dim, 1, width, depth, activation)
        self.dim = dim
        # optional polynomial head c . phi(z) (a library start, sciml.conservation.library): the MLP's
        # last layer starts at zero, so the candidate starts as the polynomial and training refines both.
        # (Holding c fixed refined the regular data's *approximate* integrals to the floor as well and
        # over-counted three FPUT chains at N = 3, docs/conservation.md.)
        self.poly = poly
        if poly is not None:
            self.coef = nn.Parameter(torch.as_tensor(coef).to(self.shift.dtype).reshape(-1, 1).clone())
            last = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        z = (x - self.shift) / self.scale
        out = self.net(x if self.raw_inputs else z)
        return out if self.poly is None else out + self.poly(z) @ self.coef


class LearnedInvariant:
    r"""A learned first integral as a callable: ``H(X)`` for states ``(n, d)`` (NumPy or torch) -> ``(n,)``.

    Also :meth:`grad` (state gradients ``(n, d)`` by :func:`sciml.autodiff.gradient` lifted with
    :func:`sciml.autodiff.batch`) and the loss it reached (:attr:`loss`, held-out).
    """

    def __init__(self, module: ConservedQuantity, index: int, loss: float = float("nan")):
        self.module = module.eval()
        self.index = index
        self.loss = loss
        self._f = point_function(module)
        self._grad = batch(gradient(self._f), chunk_size=65536)

    @property
    def params(self) -> dict[str, Tensor]:
        return {k: v.detach() for k, v in {**dict(self.module.named_parameters()),
                                             **dict(self.module.named_buffers())}.items()}

    def _as_tensor(self, X: Any) -> tuple[Tensor, bool]:
        p = next(self.module.parameters())
        is_np = not isinstance(X, Tensor)
        return torch.as_tensor(np.asarray(X) if is_np else X).to(p.device, p.dtype), is_np

    def __call__(self, X: Any) -> Any:
        x, is_np = self._as_tensor(X)
        with torch.no_grad():
            out = self.module(x.reshape(-1, self.module.dim)).reshape(x.shape[:-1])
        return out.cpu().numpy() if is_np else out

    def grad(self, X: Any) -> Any:
        """State gradient :math:`\\nabla_x H` at each row of ``X`` ``(n, d)``."""
        x, is_np = self._as_tensor(X)
        g = self._grad(self.params, x.reshape(-1, self.module.dim)).reshape(x.shape)
        return g.detach().cpu().numpy() if is_np else g.detach()

    def __repr__(self) -> str:
        return f"LearnedInvariant(H_{self.index}, held-out loss {self.loss:.2e})"
