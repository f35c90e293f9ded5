r"""A polynomial start for each candidate: the best conserved polynomial, found by linear algebra.

Trained from random initialisations, a candidate network often settles on an *approximate* integral
(1e-4) although an exact one that scores 100x lower exists: the energy of a fixed FPUT chain, the total
momentum of a periodic one (``docs/conservation.md``). Many exact integrals are low-degree polynomials,
and within a polynomial library the best candidate is a global optimum one can compute.

For monomials :math:`\phi(z)` of the standardised state up to degree :math:`p` and a candidate
:math:`H = c^\top\phi`, the pointwise loss of neural deflation (with :math:`\alpha = 1`) is the ratio
:math:`\langle\nabla H,\hat v\rangle^2 / \|(I-QQ^\top)\nabla H\|^2`. Its ratio of *means* over the data,

.. math::

    R(c) = \frac{c^\top A c}{c^\top B c},\qquad
    A = \overline{(J\hat v)(J\hat v)^\top},\quad B = \overline{J(I - QQ^\top)J^\top},
    \qquad J = \partial\phi/\partial z \in \mathbb{R}^{F\times d},

is a generalised Rayleigh quotient: its minimum is the smallest generalised eigenvalue of
:math:`(A, B)`, found exactly. :math:`Q` spans the gradients of the earlier laws at each point, so
functions of them (:math:`B`-null directions) are excluded, which is deflation in the library. An exact
polynomial integral gives :math:`R \approx 0` (finite-difference error, ~1e-9 in float64), an approximate
one :math:`R \sim 10^{-5}`-:math:`10^{-3}`.

A solution that is exact to the accuracy of the velocities (:func:`library_fit`'s ``exact``) is taken as
the candidate as it is, with no training; any other only *starts* one of the candidate's initialisations
(:class:`ConservedQuantity` with a polynomial head) beside the random ones
(:func:`sciml.conservation.candidate.start_candidate`). The approach is that of the Sparse Invariant
Detector (Liu et al. 2024, linear in a given basis), used here inside the neural deflation.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from torch import Tensor, nn

from ..autodiff import batch, jacobian, point_function

__all__ = ["MonomialFeatures", "LibraryFit", "n_monomials", "library_degree_for", "library_fit",
           "feature_gradients", "whitening"]


def n_monomials(dim: int, degree: int) -> int:
    """Number of monomials of degree 1..``degree`` in ``dim`` variables: :math:`\\binom{d+p}{p} - 1`."""
    return math.comb(dim + degree, degree) - 1


def library_degree_for(dim: int, degree: int, max_features: int) -> int:
    """The largest degree <= ``degree`` whose library has at most ``max_features`` monomials (0: none)."""
    while degree > 0 and n_monomials(dim, degree) > max_features:
        degree -= 1
    return degree


class MonomialFeatures(nn.Module):
    r"""All monomials of degree 1..p of :math:`w = zT` ``(n, d) -> (n, F)``, as products of ``p`` factors
    from :math:`(1, w_1, \dots, w_d)` (a gather and a product: no ``pow``, so gradients are safe at 0).

    ``transform`` :math:`T` (default identity) is a linear change of variables; it leaves the space of
    polynomials of each degree unchanged but not its conditioning: with strongly correlated coordinates
    (a drifting centre of mass moves every :math:`q_i` together) a polynomial in differences such as
    :math:`(q_2 - q_1)^4` is a near-cancelling sum of large monomials of :math:`z` and is lost to round-off
    in the eigenproblem; in whitened coordinates (:func:`whitening`) it is a few moderate ones.
    """

    def __init__(self, dim: int, degree: int, transform: Tensor | None = None):
        super().__init__()
        if degree < 1:
            raise ValueError(f"degree must be >= 1, got {degree}")
        rows = [c for c in itertools.combinations_with_replacement(range(dim + 1), degree) if any(c)]
        self.register_buffer("index", torch.tensor(rows, dtype=torch.long))
        self.register_buffer("transform", torch.eye(dim, dtype=torch.float64) if transform is None
                             else torch.as_tensor(transform, dtype=torch.float64).clone())
        self.dim, self.degree = dim, degree

    @property
    def n_features(self) -> int:
        return int(self.index.shape[0])

    def forward(self, z: Tensor) -> Tensor:
        w = z @ self.transform.to(z.dtype)
        we = torch.cat([torch.ones_like(w[..., :1]), w], -1)
        return we[..., self.index].prod(-1)


def whitening(z: Tensor, rcond: float = 1e-8) -> Tensor:
    r"""A matrix :math:`T` (``(d, d)``, float64) with :math:`\mathrm{cov}(zT) = I` on the well-determined
    directions (principal axes scaled by :math:`\lambda^{-1/2}`; directions with
    :math:`\lambda < ` ``rcond`` :math:`\lambda_{\max}` are kept unscaled)."""
    zc = z.double() - z.double().mean(0)
    lam, U = torch.linalg.eigh(zc.T @ zc / max(len(z) - 1, 1))
    scale = torch.where(lam > rcond * lam.max(), lam.clamp_min(1e-300).rsqrt(), torch.ones_like(lam))
    return (U * scale).cpu()


def feature_gradients(features: MonomialFeatures, z: Tensor, chunk_size: int = 2048) -> Tensor:
    """Per-point Jacobians :math:`\\partial\\phi/\\partial z` ``(n, F, d)`` (forward mode, vmapped)."""
    f = point_function(features, squeeze=False)
    return batch(jacobian(f, mode="fwd"), chunk_size=chunk_size)({}, z)


@dataclass(frozen=True)
class LibraryFit:
    """The best polynomial candidate: ``H = coef . phi(z)``.

    Attributes:
        coef: ``(F,)``, scaled so that the mean squared deflated gradient is 1.
        ratio: :math:`R` at ``coef`` (0 for an exact integral).
        next_ratio: the second-smallest eigenvalue (how isolated the solution is).
        rank: dimension of the library directions left after deflation.
        n_exact: how many of the smallest eigenvalues, in a row, are exact integrals at ``degree``.
        degree: the library degree of the solution (the lowest with an exact integral, else the largest).
        exact: the solution is conserved to the accuracy of the velocities (``library_fit``'s ``v_err``).
        ratio_err: :math:`R_{\rm err}` of the solution (0 without an error estimate).
    """

    coef: Tensor
    ratio: float
    next_ratio: float
    rank: int
    n_exact: int = 0
    degree: int = 0
    exact: bool = False
    ratio_err: float = 0.0


def library_fit(features: MonomialFeatures, z: Tensor, v: Tensor, Q: Tensor, *, v_err: Tensor | None = None,
                exact_factor: float = 4.0, rcond: float = 1e-10, null_tol: float = 1e-12,
                chunk_size: int = 2048) -> LibraryFit:
    r"""Minimise :math:`R(c) = c^\top A c / c^\top B c` (module docstring) over the library.

    :math:`A` and :math:`B` are accumulated over chunks of points in float64, so memory stays at one
    chunk's Jacobians ``(chunk, F, d)``.

    Args:
        features: the library :math:`\phi`.
        z: points ``(M, d)``; v: velocities ``(M, d)`` (both standardised).
        Q: orthonormal bases of the earlier laws' gradient spans ``(M, d, k)`` (``k`` may be 0).
        v_err: estimated errors of ``v`` ``(M, d)`` (standardised; NaN rows are skipped),
            :func:`sciml.conservation.data.finite_difference_error`. An exact integral's residual is
            that error: :math:`\langle\nabla H, \hat v\rangle = \langle\nabla H, e/\|v\|\rangle`, so a
            solution is *exact* when :math:`R \le` ``exact_factor`` :math:`\times R_{\rm err}`, with
            :math:`R_{\rm err} = c^\top E c / c^\top B c`, :math:`E = \overline{(Je)(Je)^\top}/\|v\|^2`
            (or when :math:`R <` ``null_tol``).
        exact_factor: see ``v_err``.
        rcond: directions of :math:`B` below ``rcond`` times its largest eigenvalue are dropped.
        null_tol: eigenvalues below this count as exact whatever the error estimate (round-off).
        chunk_size: points per chunk.

    The degrees are tried in turn, 1, 2, ..., and the lowest with an exact integral wins (a *pure* law
    such as P = sum p before mixtures of P and H); among several exact ones of that degree, the one whose
    gradient lies farthest outside the earlier span is returned.
    """
    F = features.n_features
    A = z.new_zeros(F, F, dtype=torch.float64)
    B, G, E = torch.zeros_like(A), torch.zeros_like(A), torch.zeros_like(A)
    n_err = 0
    for s0 in range(0, len(z), chunk_size):
        sl = slice(s0, s0 + chunk_size)
        J = feature_gradients(features, z[sl].double(), chunk_size).double()
        vh = v[sl].double()
        vn = vh.norm(dim=-1, keepdim=True).clamp_min(1e-300)
        a = torch.einsum("mfd,md->mf", J, vh / vn)
        A += a.T @ a
        if v_err is not None:
            eh = v_err[sl].double() / vn
            ok = torch.isfinite(eh).all(-1)
            ae = torch.einsum("mfd,md->mf", J[ok], eh[ok])
            E += ae.T @ ae
            n_err += int(ok.sum())
        G += torch.einsum("mfd,mgd->fg", J, J)
        if Q.shape[-1]:
            Qd = Q[sl].double()
            J = J - torch.einsum("mfe,mek,mdk->mfd", J, Qd, Qd)
            B += torch.einsum("mfd,mgd->fg", J, J)
    if not Q.shape[-1]:
        B = G
    A, B, G = (A / len(z)).cpu(), (B / len(z)).cpu(), (G / len(z)).cpu()
    E = (E / max(n_err, 1)).cpu() if n_err else None
    degree = (features.index > 0).sum(-1).cpu()
    fit = None
    for q in range(1, features.degree + 1):  # the lowest degree with an exact integral, else the full library
        fit = _solve(A, B, G, E, degree <= q, rcond, null_tol, exact_factor, q)
        if fit.exact:
            break
    return fit


def _solve(A: Tensor, B: Tensor, G: Tensor, E: Tensor | None, cols: Tensor, rcond: float, null_tol: float,
           exact_factor: float, degree: int) -> LibraryFit:
    """The generalised eigenproblem on the monomials ``cols`` (float64, CPU)."""
    F = A.shape[0]
    s = torch.sqrt(torch.diagonal(B).clamp_min(1e-300))
    keep = cols & (s > 1e-12 * s[cols].max())

    def scaled(M: Tensor) -> np.ndarray:  # diagonal scaling by B's, restricted to the kept monomials
        return (M / s[:, None] / s[None])[keep][:, keep].numpy()

    An, Bn = scaled(A), scaled(B)
    lam, U = np.linalg.eigh(Bn)
    ok = lam > rcond * lam.max()
    W = U[:, ok] / np.sqrt(lam[ok])               # B-whitening of the well-determined directions
    C = W.T @ An @ W
    w, Y = scipy.linalg.eigh(C)
    y = Y[:, 0]
    if E is not None:   # the ratio each eigenvector would have from the velocity error alone
        En = scaled(E)
        w_err = np.einsum("fi,fg,gi->i", W @ Y, En, W @ Y)
        is_exact = (w <= exact_factor * w_err) | (w < null_tol)
    else:
        is_exact = w < null_tol
    # exact eigenvectors come first in w's order; count the leading run
    null = int(np.argmin(is_exact)) if not is_exact.all() else len(w)
    if null > 1:
        # several exact integrals (e.g. P and P^2, or H and P when the earlier laws span neither): take the
        # one whose gradient lies farthest outside the earlier span (least |grad|^2 per unit deflated
        # |grad|^2), since the pointwise loss divides by that distance
        Ys = Y[:, :null]
        _, u = np.linalg.eigh(Ys.T @ W.T @ scaled(G) @ W @ Ys)
        y = Ys @ u[:, 0]
    c = torch.zeros(F, dtype=torch.float64)
    c[keep] = torch.from_numpy(W @ y) / s[keep]
    ratio = float(max(y @ C @ y, 0.0))
    ratio_err = float(y @ (W.T @ En @ W) @ y) if E is not None else 0.0
    return LibraryFit(c, ratio, float(max(w[1], 0.0)) if len(w) > 1 else math.inf, int(ok.sum()), null, degree,
                      null > 0, ratio_err)
