r"""Gaussian mixtures as torch tensors: fitting (scikit-learn), log-density, autodiff score, sampling.

A mixture :math:`\pi(x) = \sum_k w_k \mathcal N(x; \mu_k, P_k^{-1})` is stored with the Cholesky
factors :math:`L_k` of the precisions, :math:`P_k = L_k L_k^\top` (scikit-learn's convention), so

.. math::
    \log \pi(x) = \operatorname{logsumexp}_k \Big[\log w_k - \tfrac12 \|L_k^\top (x-\mu_k)\|^2
        + \textstyle\sum_i \log (L_k)_{ii} - \tfrac d2 \log 2\pi\Big].

The score :math:`\nabla \log \pi` used as the Langevin drift is taken by the autodiff core
(:func:`sciml.autodiff.gradient` of the per-point log-density); :meth:`GMM.score_exact` is the closed form
:math:`\sum_k r_k(x)\,(-P_k (x-\mu_k))` with responsibilities :math:`r_k`, kept for tests and checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..autodiff import batch, gradient

__all__ = ["GMM", "fit_gmm", "gmm_log_prob_point"]


def gmm_log_prob_point(params: dict[str, Tensor], x: Tensor) -> Tensor:
    """Per-point log-density of the mixture with ``params = {log_w, means, prec_chol}``; ``x`` of shape (D,)."""
    diff = x.unsqueeze(0) - params["means"]                       # (K, D)
    y = torch.einsum("kd,kde->ke", diff, params["prec_chol"])     # L_k^T (x - mu_k)
    logdet = torch.diagonal(params["prec_chol"], dim1=-2, dim2=-1).log().sum(-1)
    d = x.shape[-1]
    comp = params["log_w"] - 0.5 * (y * y).sum(-1) + logdet - 0.5 * d * math.log(2 * math.pi)
    return torch.logsumexp(comp, dim=0)


@dataclass(frozen=True)
class GMM:
    """A Gaussian mixture with full covariances.

    Attributes:
        weights: (K,) mixture weights, summing to one.
        means: (K, D).
        prec_chol: (K, D, D) lower-triangular with ``P_k = L_k L_k^T``.
    """

    weights: Tensor
    means: Tensor
    prec_chol: Tensor

    @classmethod
    def from_covariances(cls, weights, means, covariances) -> "GMM":
        """Build from weights (K,), means (K, D) and covariances (K, D, D) (arrays or tensors)."""
        w = torch.as_tensor(weights, dtype=torch.get_default_dtype())
        m = torch.as_tensor(means, dtype=w.dtype)
        c = torch.as_tensor(covariances, dtype=w.dtype)
        prec = torch.linalg.inv(c)
        prec = 0.5 * (prec + prec.transpose(-1, -2))
        # Cholesky of the precision, lower triangular: P = L L^T
        return cls(w / w.sum(), m, torch.linalg.cholesky(prec))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def params(self) -> dict[str, Tensor]:
        return {"log_w": self.weights.log(), "means": self.means, "prec_chol": self.prec_chol}

    @property
    def covariances(self) -> Tensor:
        prec = self.prec_chol @ self.prec_chol.transpose(-1, -2)
        return torch.linalg.inv(prec)

    def to(self, device=None, dtype=None) -> "GMM":
        return GMM(*(t.to(device=device, dtype=dtype) for t in (self.weights, self.means, self.prec_chol)))

    def log_prob(self, x: Tensor) -> Tensor:
        """log pi(x) for a batch (N, D)."""
        return batch(gmm_log_prob_point)(self.params, x)

    def score(self, x: Tensor, *, chunk_size: int | None = None) -> Tensor:
        """grad log pi(x) for a batch (N, D), by the autodiff core (reverse mode, vmapped)."""
        return batch(gradient(gmm_log_prob_point), chunk_size=chunk_size)(self.params, x)

    def responsibilities(self, x: Tensor) -> Tensor:
        """Posterior component probabilities r_k(x), shape (N, K)."""
        diff = x.unsqueeze(1) - self.means                             # (N, K, D)
        y = torch.einsum("nkd,kde->nke", diff, self.prec_chol)
        logdet = torch.diagonal(self.prec_chol, dim1=-2, dim2=-1).log().sum(-1)
        comp = self.weights.log() - 0.5 * (y * y).sum(-1) + logdet
        return torch.softmax(comp, dim=1)

    def score_exact(self, x: Tensor) -> Tensor:
        """Closed-form score sum_k r_k(x) (-P_k (x - mu_k)), shape (N, D)."""
        prec = self.prec_chol @ self.prec_chol.transpose(-1, -2)
        diff = x.unsqueeze(1) - self.means
        comp_scores = -torch.einsum("kde,nke->nkd", prec, diff)
        return (self.responsibilities(x).unsqueeze(-1) * comp_scores).sum(1)

    def sample(self, n: int, *, generator: torch.Generator | None = None, return_labels: bool = False):
        """Draw n samples (and optionally their component labels) with an explicit generator."""
        dev = self.means.device
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=dev, dtype=self.means.dtype)
        # x = mu + L^{-T} z has covariance (L L^T)^{-1}
        lt = self.prec_chol[labels].transpose(-1, -2)
        x = self.means[labels] + torch.linalg.solve_triangular(lt, z.unsqueeze(-1), upper=True).squeeze(-1)
        return (x, labels) if return_labels else x


def fit_gmm(data: Tensor | np.ndarray, n_components: int, *, covariance_type: str = "full",
            reg_covar: float = 1e-4, seed: int = 0, max_iter: int = 200, n_init: int = 3) -> GMM:
    """Fit a mixture to samples with :class:`sklearn.mixture.GaussianMixture` (the cheap preprocessing step).

    Args:
        data: (N, D) samples (images are flattened first by the caller).
        n_components: K.
        covariance_type: ``full`` | ``diag`` | ``spherical`` | ``tied`` (all stored as full matrices).
        reg_covar: added to covariance diagonals (keeps small clusters well conditioned).
    """
    from sklearn.mixture import GaussianMixture

    x = data.detach().cpu().double().numpy() if isinstance(data, Tensor) else np.asarray(data, dtype=np.float64)
    x = x.reshape(x.shape[0], -1)
    gm = GaussianMixture(n_components, covariance_type=covariance_type, reg_covar=reg_covar,
                         random_state=seed, max_iter=max_iter, n_init=n_init).fit(x)
    d = x.shape[1]
    k = n_components
    cov = gm.covariances_
    if covariance_type == "diag":
        cov = np.stack([np.diag(c) for c in cov])
    elif covariance_type == "spherical":
        cov = np.stack([np.eye(d) * c for c in cov])
    elif covariance_type == "tied":
        cov = np.broadcast_to(cov, (k, d, d)).copy()
    dtype = torch.get_default_dtype()
    g = GMM.from_covariances(torch.tensor(gm.weights_), torch.tensor(gm.means_), torch.tensor(cov))
    return g.to(dtype=dtype)
