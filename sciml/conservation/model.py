"""A candidate conserved quantity: an MLP on scaled coordinates, and its user-facing callable."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..autodiff import batch, gradient, point_function
from ..nn.mlp import MLP
from .library import whitening

__all__ = ["ConservedQuantity", "LearnedInvariant", "input_scaling", "input_whitening", "INPUT_MODES", "WIDE_SPREAD"]

INPUT_MODES = ("auto", "standardised", "raw", "whitened")
"""What a candidate's MLP sees (``NetworkConfig.inputs``; :func:`input_scaling`)."""
WIDE_SPREAD = 4.0
"""``auto``: a coordinate whose standard deviation exceeds this many robust spreads is scaled robustly."""


def input_scaling(x: Tensor, shift: Tensor, scale: Tensor, mode: str = "auto",
                  wide: float = WIDE_SPREAD) -> tuple[Tensor, Tensor]:
    r"""Shift and scale of the MLP's inputs :math:`u = (x - a)/s`, per coordinate, from training states ``x``
    ``(n, d)`` and their standardisation ``(shift, scale)`` = (mean, standard deviation).

    * ``"standardised"``: :math:`a = \mu`, :math:`s = \sigma` (the MLP sees :math:`z`);
    * ``"raw"``: :math:`a = 0`, :math:`s = 1` (the MLP sees :math:`x`);
    * ``"auto"``: standardised, except a coordinate whose standard deviation exceeds ``wide`` times its
      robust spread :math:`\sigma_R = \mathrm{IQR}/1.349` (equal to :math:`\sigma` for a normal law, 1.3
      :math:`\sigma` for a uniform one): it gets :math:`a` = its median and :math:`s = \sigma_R`. Such a
      spread is made by a minority of states far out - the pendulum's rotating orbits winding :math:`q`
      to :math:`\pm 100` (:math:`\sigma/\sigma_R = 12`) - and dividing by it would squeeze the bulk of the
      data, and any structure on the scale of the bulk (:math:`\cos q`), into a sliver of :math:`z`
      (:math:`\cos q` a function of frequency :math:`\sigma = 20` in :math:`z`: out of reach of a smooth MLP
      started at unit scale). Every catalogue system but the pendulum has :math:`\sigma/\sigma_R \le 1.7`
      (docs/conservation.md), so ``auto`` is ``standardised`` there, bit for bit.
    """
    if mode in ("standardised", "whitened"):   # "whitened": its rotation is input_whitening's
        return shift.clone(), scale.clone()
    if mode == "raw":
        return torch.zeros_like(shift), torch.ones_like(scale)
    if mode != "auto":
        raise ValueError(f"network.inputs: unknown mode {mode!r}; choose one of {', '.join(INPUT_MODES)}")
    x = x[:: -(-x.numel() // 2**24)]   # torch.quantile takes at most 2^24 values: a strided subset beyond
    q = torch.quantile(x.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=x.device), dim=0)
    robust = ((q[2] - q[0]) / 1.349).to(scale.dtype)
    # not where the bulk is a single value (robust spread ~ 0): dividing by it would blow the inputs up
    wide_j = (scale > wide * robust) & (robust > 1e-3 * scale)
    return (torch.where(wide_j, q[1].to(shift.dtype), shift),
            torch.where(wide_j, robust.clamp_min(1e-8), scale))


def input_whitening(x: Tensor, shift: Tensor, scale: Tensor, mode: str) -> Tensor | None:
    r"""The MLP's input rotation for ``NetworkConfig.inputs = "whitened"``: :math:`T` (``(d, d)``) with
    :math:`\mathrm{cov}(zT) = I`, :math:`z = (x - \mu)/\sigma` the training states
    (:func:`~sciml.conservation.library.whitening`: float64, near-null directions kept unscaled); ``None``
    for every other mode.

    Why: standardising each coordinate leaves the *directions* of the data at their own scales. Where one
    direction dominates, the others are squeezed into a sliver of :math:`z`: periodic Toda's centre of mass
    drifts as :math:`Pt/N`, so at N = 5 each :math:`q_i` has standard deviation 7.3 while the bond lengths
    :math:`q_{i+1} - q_i`, on which the integrals depend, vary by about 1 (correlation eigenvalues 3e-3 to
    7e-3 against 5.4 for the drift). The integrals then vary on a scale of 0.05-0.08 in :math:`z` (the
    square roots of those eigenvalues), hard to reach for an MLP started at unit scale, as the pendulum's
    :math:`\cos q` was for ``standardised``.
    Whitening gives every principal direction unit variance; the loss is unchanged (it is computed on
    :math:`z`, and the rotation is part of the function).
    """
    if mode != "whitened":
        return None
    x = x[:: -(-len(x) // 200_000)]    # a strided subset: the covariance of 2e5 states is plenty
    return whitening((x - shift) / scale).to(scale.dtype)


class ConservedQuantity(nn.Module):
    r"""``H(x) = MLP(u)`` (+ ``c . phi(z)`` with a polynomial head), ``u = (x - input_shift) / input_scale``,
    ``z = (x - shift) / scale``; batched ``(n, d) -> (n, 1)``. The MLP's inputs default to ``z``
    (``input_shift``, ``input_scale`` = ``shift``, ``scale``); ``raw_inputs``: ``x`` itself
    (:func:`input_scaling` gives them for each ``NetworkConfig.inputs``); with ``input_matrix`` ``T``
    (``"whitened"``, :func:`input_whitening`) the MLP sees ``u T``.

    The scalings are part of the function, so gradients taken with :mod:`sciml.autodiff` are
    gradients with respect to the original state.
    """

    def __init__(self, dim: int, shift: Tensor, scale: Tensor, width: int = 64, depth: int = 3,
                 activation: str = "silu", poly: nn.Module | None = None, coef: Tensor | None = None,
                 raw_inputs: bool = False, input_shift: Tensor | None = None, input_scale: Tensor | None = None,
                 input_matrix: Tensor | None = None):
        super().__init__()
        self.raw_inputs = raw_inputs
        self.register_buffer("shift", torch.as_tensor(shift).clone())
        self.register_buffer("scale", torch.as_tensor(scale).clone())
        if input_shift is None:
            input_shift, input_scale = input_scaling(self.shift, self.shift, self.scale,
                                                     "raw" if raw_inputs else "standardised")
        self.register_buffer("input_shift", torch.as_tensor(input_shift).to(self.shift.dtype).clone())
        self.register_buffer("input_scale", torch.as_tensor(input_scale).to(self.scale.dtype).clone())
        # "whitened" inputs: u = ((x - a)/s) T (input_whitening); absent otherwise, so the other modes'
        # functions (and files) are unchanged
        self.input_matrix: Tensor | None
        self.register_buffer("input_matrix", None if input_matrix is None
                             else torch.as_tensor(input_matrix).to(self.scale.dtype).clone())
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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # files written before the input scaling was a buffer: the MLP saw z (or x with raw_inputs)
        if prefix + "shift" in state_dict and prefix + "input_shift" not in state_dict:
            sh, sc = state_dict[prefix + "shift"], state_dict[prefix + "scale"]
            a, s = input_scaling(sh, sh, sc, "raw" if self.raw_inputs else "standardised")
            state_dict[prefix + "input_shift"], state_dict[prefix + "input_scale"] = a, s
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        u = (x - self.input_shift) / self.input_scale
        out = self.net(u if self.input_matrix is None else u @ self.input_matrix)
        return out if self.poly is None else out + self.poly((x - self.shift) / self.scale) @ self.coef


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
