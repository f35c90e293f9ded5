r"""Target distributions for score models: unbalanced Gaussian mixtures, latent clusters, 8x8 digits.

All are data (frozen dataclasses and plain functions) that know nothing of the methods:

* :func:`unbalanced_2d` -- three modes in 2-d with weights 0.8 / 0.15 / 0.05 (the issue's bar).
* :func:`unbalanced_10d` -- the same weights in 10-d.
* :func:`latent_clusters` -- a 2-d latent mixture mapped into D dimensions by a fixed orthonormal map,
  plus small isotropic noise (clusters in a latent space; still a Gaussian mixture, with
  covariances :math:`A\Sigma_k A^\top + \tau^2 I`).
* :func:`digits` -- scikit-learn's 8x8 digits (1797 images, shipped with scikit-learn, no download),
  scaled to [-1, 1], optionally class-imbalanced; :func:`digits_reflected` adds mirrored copies of a
  fraction of them (an approximate reflection symmetry).

The catalogue :data:`PROBLEMS` names them for the command line (``sciml score train --problem``):
:func:`problem_samples` draws a named problem's training set as :class:`Samples` (the data, and the
true mixture or the class labels where there are some). User files are read by
:func:`sciml.score.load_samples`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["MixtureProblem", "unbalanced_2d", "unbalanced_10d", "latent_clusters", "digits",
           "digits_reflected", "MIXTURES", "Samples", "PROBLEMS", "FIXED_SIZE", "problem_samples"]


@dataclass(frozen=True, eq=False)
class MixtureProblem:
    """A Gaussian mixture target: weights (K,), means (K, D), covariances (K, D, D) (numpy arrays)."""

    name: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    description: str = ""
    chol: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim != 1 or np.any(w <= 0) or not math.isclose(w.sum(), 1.0, rel_tol=1e-9):
            raise ValueError(f"weights must be positive and sum to 1, got {w}")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "means", np.asarray(self.means, dtype=np.float64))
        object.__setattr__(self, "covariances", np.asarray(self.covariances, dtype=np.float64))
        object.__setattr__(self, "chol", np.linalg.cholesky(self.covariances))

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return len(self.weights)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               return_labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """n samples (float tensor (n, D)) drawn with an explicit torch generator."""
        w = torch.as_tensor(self.weights)
        labels = torch.multinomial(w, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        chol = torch.as_tensor(self.chol)[labels]
        x = torch.as_tensor(self.means)[labels] + (chol @ z.unsqueeze(-1)).squeeze(-1)
        x = x.to(torch.get_default_dtype())
        return (x, labels) if return_labels else x

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density (float64 internally)."""
        x = x.double()
        means, chol = torch.as_tensor(self.means), torch.as_tensor(self.chol)
        diff = (x.unsqueeze(1) - means).unsqueeze(-1)                      # (N, K, D, 1)
        sol = torch.linalg.solve_triangular(chol.expand(x.shape[0], -1, -1, -1), diff, upper=False)
        maha = sol.squeeze(-1).pow(2).sum(-1)
        logdet = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)
        comp = torch.as_tensor(self.weights).log() - 0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))
        return torch.logsumexp(comp, dim=1)


def unbalanced_2d(weights=(0.8, 0.15, 0.05), radius: float = 3.0, std: float = 0.5) -> MixtureProblem:
    """Three modes at the corners of an equilateral triangle of circumradius ``radius``; the big mode is
    slightly anisotropic."""
    ang = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3])
    means = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    covs = np.stack([std**2 * np.eye(2)] * 3)
    covs[0] = std**2 * np.array([[1.5, 0.4], [0.4, 0.8]])
    return MixtureProblem("mixture2d", np.array(weights), means, covs,
                          f"2-d, {len(weights)} modes, weights {tuple(weights)}")


def unbalanced_10d(weights=(0.8, 0.15, 0.05), dim: int = 10, sep: float = 4.0, std: float = 0.5) -> MixtureProblem:
    """Modes at ``sep`` times orthogonal unit vectors (pairwise distance ``sep*sqrt(2)``), isotropic ``std``."""
    k = len(weights)
    if k > dim:
        raise ValueError(f"need at most dim={dim} modes, got {k}")
    means = np.zeros((k, dim))
    means[np.arange(k), np.arange(k)] = sep
    means -= means.mean(0)
    covs = np.stack([std**2 * np.eye(dim)] * k)
    return MixtureProblem(f"mixture{dim}d", np.array(weights), means, covs,
                          f"{dim}-d, {k} modes, weights {tuple(weights)}")


def latent_clusters(dim: int = 10, weights=(0.5, 0.25, 0.15, 0.1), latent_std: float = 0.3,
                    ambient_std: float = 0.05, seed: int = 0) -> MixtureProblem:
    """Clusters on a 2-d latent plane (modes on a circle of radius 2) embedded in ``dim`` dimensions."""
    k = len(weights)
    rng = np.random.default_rng(seed)
    a, _ = np.linalg.qr(rng.standard_normal((dim, 2)))                       # orthonormal (dim, 2)
    ang = 2 * np.pi * np.arange(k) / k
    lat_means = 2.0 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    means = lat_means @ a.T
    cov = latent_std**2 * a @ a.T + ambient_std**2 * np.eye(dim)
    return MixtureProblem(f"latent{dim}d", np.array(weights), means, np.stack([cov] * k),
                          f"{k} clusters on a 2-d plane in {dim}-d")


def digits(*, classes=None, class_weights=None, n: int | None = None, seed: int = 0,
           return_labels: bool = False):
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) float tensors in [-1, 1].

    Args:
        classes: keep only these digits (default all ten).
        class_weights: resample to these class proportions (same order as ``classes``) without
            replacement within a class, to build an unbalanced set; needs ``n``.
        n: number of images to keep (default all available).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images.astype(np.float64), d.target
    classes = list(range(10)) if classes is None else list(classes)
    keep = np.isin(y, classes)
    x, y = x[keep], y[keep]
    rng = np.random.default_rng(seed)
    if class_weights is not None:
        if n is None or len(class_weights) != len(classes):
            raise ValueError("class_weights needs n and one weight per class")
        w = np.asarray(class_weights, dtype=np.float64)
        counts = np.floor(n * w / w.sum()).astype(int)
        idx = []
        for c, m in zip(classes, counts):
            pool = np.flatnonzero(y == c)
            if m > len(pool):
                raise ValueError(f"digit {c}: {m} images requested but only {len(pool)} exist")
            idx.append(rng.choice(pool, m, replace=False))
        idx = rng.permutation(np.concatenate(idx))
    else:
        idx = rng.permutation(len(y))[: n or len(y)]
    x = torch.as_tensor(x[idx] / 8.0 - 1.0, dtype=torch.get_default_dtype()).unsqueeze(1)
    labels = torch.as_tensor(y[idx])
    return (x, labels) if return_labels else x


def digits_reflected(fraction: float = 0.3, seed: int = 0, **kw):
    """Digits plus left-right mirrored copies of a random ``fraction`` of them (approximate symmetry)."""
    x, y = digits(seed=seed, return_labels=True, **kw)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(x.shape[0], generator=g)[: int(fraction * x.shape[0])]
    return torch.cat([x, x[pick].flip(-1)]), torch.cat([y, y[pick]])


MIXTURES = {"mixture2d": unbalanced_2d, "mixture10d": unbalanced_10d, "latent10d": latent_clusters}


@dataclass(frozen=True, eq=False)
class Samples:
    """A named problem's training set.

    Attributes:
        name: the catalogue name; data: samples ``(N, *event_shape)``; mixture: the true mixture (mixture
        problems); labels: the class of each sample (digits).
    """

    name: str
    data: Tensor
    mixture: MixtureProblem | None = None
    labels: Tensor | None = None


def _mixture_set(name: str):
    def draw(n: int, generator: torch.Generator | None = None) -> Samples:
        prob = MIXTURES[name]()
        return Samples(name, prob.sample(n, generator=generator), mixture=prob)

    draw.__doc__ = f"``n`` samples of {name} (:data:`MIXTURES`)."
    return draw


def _digits_set(n: int, generator: torch.Generator | None = None) -> Samples:
    """All 1797 digits (``n`` and ``generator`` do not apply: the set is fixed)."""
    x, y = digits(return_labels=True)
    return Samples("digits", x, labels=y)


def _digits_reflected_set(n: int, generator: torch.Generator | None = None) -> Samples:
    """All digits plus mirrored copies of 30 % of them (``n`` and ``generator`` do not apply)."""
    x, y = digits_reflected()
    return Samples("digits_reflected", x, labels=y)


PROBLEMS = {**{name: _mixture_set(name) for name in MIXTURES}, "digits": _digits_set,
            "digits_reflected": _digits_reflected_set}
"""Named training sets: ``PROBLEMS[name](n, generator) -> Samples``."""

FIXED_SIZE = ("digits", "digits_reflected")
"""Problems whose training set is fixed (``n`` does not apply)."""


def problem_samples(name: str, n: int, *, generator: torch.Generator | None = None) -> Samples:
    """The training set of the catalogue problem ``name`` (``n`` samples where the problem is sampled).

    Raises:
        KeyError: an unknown name (the message lists the names).
    """
    if name not in PROBLEMS:
        raise KeyError(f"unknown problem {name!r}; choose one of {list(PROBLEMS)}")
    return PROBLEMS[name](n, generator)
