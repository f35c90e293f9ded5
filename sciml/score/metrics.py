r"""Mode metrics for generated samples: per-mode weights, weight error, coverage.

Modes are assigned either by the reference mixture (most probable component, with samples whose
Mahalanobis distance to every component exceeds the :math:`\chi^2_D` 0.999 quantile counted as
"off-mode") or by a classifier trained on the real data (for images). Distances to held-out data (MMD,
sliced Wasserstein) are in :mod:`sciml.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["mode_weights", "weight_error", "mode_coverage", "classifier_weights", "fit_classifier"]


def mode_weights(samples: Tensor, weights, means, covariances, *, off_quantile: float = 0.999) -> tuple[Tensor, float]:
    """Fractions of ``samples`` (N, D) assigned to each reference component, and the off-mode fraction.

    Returns:
        ``(fractions (K,), off_fraction)``; fractions count all N samples, so they sum to 1 - off.
    """
    from scipy.stats import chi2

    x = samples.detach().reshape(samples.shape[0], -1).double().cpu()
    w = torch.as_tensor(np.asarray(weights), dtype=torch.float64)
    mu = torch.as_tensor(np.asarray(means), dtype=torch.float64)
    chol = torch.linalg.cholesky(torch.as_tensor(np.asarray(covariances), dtype=torch.float64))
    diff = (x.unsqueeze(1) - mu).unsqueeze(-1)
    sol = torch.linalg.solve_triangular(chol.expand(x.shape[0], -1, -1, -1), diff, upper=False)
    maha = sol.squeeze(-1).pow(2).sum(-1)                                     # (N, K)
    logdet = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
    logp = w.log() - 0.5 * (maha + logdet)
    lab = logp.argmax(1)
    off = maha.min(1).values > chi2.ppf(off_quantile, x.shape[1])
    k = len(w)
    counts = torch.bincount(lab[~off], minlength=k).double()
    return counts / x.shape[0], float(off.double().mean())


def weight_error(estimated: Tensor, true) -> float:
    """Largest absolute per-mode weight error."""
    return float((torch.as_tensor(estimated, dtype=torch.float64) - torch.as_tensor(np.asarray(true))).abs().max())


def mode_coverage(estimated: Tensor, true, *, min_fraction: float = 0.25) -> int:
    """Number of modes that received at least ``min_fraction`` of their true weight."""
    est = torch.as_tensor(estimated, dtype=torch.float64)
    return int((est >= min_fraction * torch.as_tensor(np.asarray(true))).sum())


def fit_classifier(x: Tensor, labels: Tensor, *, seed: int = 0):
    """A logistic-regression classifier on flattened real data (for image mode coverage)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, random_state=seed)
    return clf.fit(x.reshape(x.shape[0], -1).cpu().numpy(), labels.cpu().numpy())


def classifier_weights(samples: Tensor, clf, n_classes: int) -> Tensor:
    """Fractions of samples per predicted class."""
    pred = clf.predict(samples.detach().reshape(samples.shape[0], -1).cpu().double().numpy())
    return torch.bincount(torch.as_tensor(pred), minlength=n_classes).double() / samples.shape[0]
