r"""Sample-based distances shared by the generative methods.

* :func:`sliced_wasserstein`: :math:`\mathrm{SW}_p(P, Q) = (E_\theta W_p^p(\theta_\# P, \theta_\# Q))^{1/p}`
  over random unit directions, each 1-d distance from sorted projections (quantile matching).
* :func:`mmd`: the unbiased squared maximum mean discrepancy with a Gaussian kernel (median-heuristic
  bandwidth by default).
* :func:`relative_l2`: :math:`\|a - b\| / \|b\|`.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sliced_wasserstein", "mmd", "relative_l2"]


def _quantiles(x: Tensor, n: int) -> Tensor:
    """Empirical quantiles of the columns of ``x`` (shape (m, L)) at n mid-points, shape (n, L)."""
    xs = torch.sort(x, dim=0).values
    q = (torch.arange(n, dtype=x.dtype, device=x.device) + 0.5) / n
    pos = q * (x.shape[0] - 1)
    lo = pos.floor().long()
    hi = torch.clamp(lo + 1, max=x.shape[0] - 1)
    w = (pos - lo).unsqueeze(1)
    return xs[lo] * (1 - w) + xs[hi] * w


def sliced_wasserstein(x: Tensor, y: Tensor, *, n_projections: int = 256, p: int = 2,
                       generator: torch.Generator | None = None) -> Tensor:
    """Sliced p-Wasserstein distance between two sample sets (sizes may differ).

    Args:
        x: samples ``(n, d)``; y: samples ``(m, d)``.
        n_projections: random directions (uniform on the sphere).
        generator: for reproducible directions.
    """
    if x.dim() == 1:
        x, y = x[:, None], y[:, None]
    d = x.shape[1]
    theta = torch.randn(d, n_projections, generator=generator, dtype=x.dtype, device=x.device)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, py = x @ theta, y @ theta
    n = max(x.shape[0], y.shape[0])
    diff = _quantiles(px, n) - _quantiles(py, n)
    return diff.abs().pow(p).mean().pow(1.0 / p)


def mmd(x: Tensor, y: Tensor, *, bandwidth: float | None = None) -> Tensor:
    r"""Unbiased squared MMD with kernel :math:`k(a,b) = \exp(-\|a-b\|^2 / (2h^2))`.

    Args:
        bandwidth: h; default the median pairwise distance of the pooled samples.
    """
    if x.dim() == 1:
        x, y = x[:, None], y[:, None]
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    if bandwidth is None:
        h2 = d2[d2 > 0].median() / 2
    else:
        h2 = torch.as_tensor(bandwidth**2, dtype=x.dtype)
    k = torch.exp(-d2 / (2 * h2))
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2 * kxy.mean()


def relative_l2(pred: Tensor, exact: Tensor) -> Tensor:
    r""":math:`\|pred - exact\|_2 / \|exact\|_2` over all entries."""
    return (pred - exact).norm() / exact.norm()
