r"""Checks of learned quantities: constancy on held-out trajectories, and whether they span the known ones.

*Constancy*: for each trajectory, the spread of :math:`H` along it relative to the spread of :math:`H`
over all the data, :math:`\mathrm{std}_t H(x_i(t)) / \mathrm{std}_{i,t} H`; 0 for an exact integral,
about 1 for a quantity unrelated to the motion.

*Span*: at each point, with orthonormal bases :math:`Q_L` of the learned gradients and :math:`Q_T` of the
known invariants' gradients (numerical rank by SVD), the sine of the largest principal angle
:math:`\|(I - Q_LQ_L^\top)Q_T\|_2` measures how far the known integrals are from being functions of the
learned ones (0: contained), and :math:`\|(I - Q_TQ_T^\top)Q_L\|_2` the converse. Equal ranks and both
sines small means the two sets are functionally equivalent (the joint Jacobian has the common rank).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..autodiff import batch, gradient

__all__ = ["constancy", "span_check", "SpanReport", "invariant_gradients"]


def constancy(H: Callable, X: np.ndarray | Tensor) -> dict[str, float]:
    """Relative spread of ``H`` along trajectories ``X`` ``(n, T, d)``: median and max over trajectories."""
    X = np.asarray(X)
    vals = np.asarray(H(X.reshape(-1, X.shape[-1]))).reshape(X.shape[:2])
    total = vals.std() + 1e-300
    rel = vals.std(axis=1) / total
    return {"median": float(np.median(rel)), "max": float(rel.max())}


def invariant_gradients(invariants: Mapping[str, Callable[[Tensor], Tensor]] | Sequence[Callable], X: Tensor
                        ) -> Tensor:
    """Gradients of known per-point invariants at ``X`` ``(M, d)`` -> ``(M, m, d)`` (vmap of reverse mode)."""
    fs = list(invariants.values()) if isinstance(invariants, Mapping) else list(invariants)
    X = torch.as_tensor(X, dtype=torch.float64)
    return torch.stack([batch(gradient(lambda _p, x, f=f: f(x)))(None, X) for f in fs], dim=1)


def _basis(G: Tensor, rtol: float) -> tuple[list[Tensor], Tensor]:
    """Per-point orthonormal bases of the rows of ``G`` ``(M, m, d)`` with numerical rank (``rtol``)."""
    Gn = G / G.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    U, S, Vh = torch.linalg.svd(Gn, full_matrices=False)
    rank = (S > rtol * S[:, :1]).sum(-1)
    return [Vh[i, : rank[i]].T for i in range(G.shape[0])], rank


@dataclass(frozen=True)
class SpanReport:
    """Medians over points of: ranks, the two principal-angle sines, and the joint rank."""

    rank_learned: float
    rank_true: float
    rank_joint: float
    sin_true_vs_learned: float
    sin_learned_vs_true: float

    def spans(self, tol: float = 0.1) -> bool:
        """Known integrals are functions of the learned ones (and vice versa when the ranks agree)."""
        ok = self.sin_true_vs_learned < tol
        if round(self.rank_learned) == round(self.rank_true):
            ok = ok and self.sin_learned_vs_true < tol
        return bool(ok)

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def span_check(learned: Sequence[Callable], invariants: Mapping[str, Callable] | Sequence[Callable],
               X: np.ndarray | Tensor, rtol: float = 0.05, max_points: int = 2000) -> SpanReport:
    """Compare the gradient spans of learned quantities (objects with ``.grad``) and known invariants.

    Args:
        learned: learned quantities (:class:`~sciml.conservation.model.LearnedInvariant`).
        invariants: known per-point invariants.
        X: states ``(M, d)`` (e.g. held-out snapshots).
        rtol: relative singular-value threshold for numerical ranks (of unit-normalised gradients).
        max_points: evaluate on at most this many points (evenly spaced).
    """
    X = torch.as_tensor(np.asarray(X), dtype=torch.float64).reshape(-1, np.shape(X)[-1])
    if X.shape[0] > max_points:
        X = X[torch.linspace(0, X.shape[0] - 1, max_points).long()]
    GT = invariant_gradients(invariants, X)
    GL = torch.stack([torch.as_tensor(np.asarray(h.grad(X.numpy())), dtype=torch.float64) for h in learned], 1)
    BL, rL = _basis(GL, rtol)
    BT, rT = _basis(GT, rtol)
    _, rJ = _basis(torch.cat([GL, GT], 1), rtol)
    s_tl, s_lt = [], []
    for QL, QT in zip(BL, BT):
        s_tl.append(torch.linalg.matrix_norm(QT - QL @ (QL.T @ QT), 2).item() if QT.numel() else 0.0)
        s_lt.append(torch.linalg.matrix_norm(QL - QT @ (QT.T @ QL), 2).item() if QL.numel() else 0.0)
    med = lambda a: float(np.median(np.asarray(a, dtype=float)))  # noqa: E731
    return SpanReport(med(rL), med(rT), med(rJ), med(s_tl), med(s_lt))
