r"""The authors' metric for the 10-d heavy-tailed law embedded in 110-d (Cauchy power submanifold).

Chen, Gu, Katsoulakis, Rey-Bellet and Zhu score this example (notebook ``Heavytail_submanifold.ipynb``
of ``HyeminGu/Proximal_generative_models``) with two numbers:

* **CCDF L1** (:func:`submanifold_ccdf_l1`). On the grid of ``m = 20000`` *linearly* spaced edges
  :math:`e_0 = 1 < e_1 < \dots < e_{m-1} = x_{lim} = 5\cdot10^6` (bin width about 250), the reversed
  cumulative density histogram of :math:`|x_i|` is, at the left edge of bin :math:`j`,

  .. math:: \hat H_j = \frac{\#\{k: e_j \le |x_{ki}| \le x_{lim}\}}{\#\{k: e_0 \le |x_{ki}| \le x_{lim}\}},
            \qquad j = 0, \dots, m-2,

  the survival function of :math:`|X_i|` *conditioned on* :math:`[e_0, x_{lim}]` (samples outside the
  range, NaN and inf included, are not counted at all; a coordinate with no sample in range gets
  :math:`\hat H \equiv 1`, the authors' fill of the all-NaN histogram). The score of coordinate i is the
  linear-axis Riemann sum :math:`\sum_j |\hat H_j - H_j|\,(e_{j+1} - e_j)` against the reference
  :math:`H`, and the metric is its mean over the ten heavy coordinates. The reference is either exact,
  :math:`H_j = (S(e_j) - S(x_{lim})) / (S(e_0) - S(x_{lim}))` with :math:`S(r) = P(|X_i| > r)`, or, as in
  the authors' notebook, the same histogram of reference samples (they drew 100,000). The plots are
  log-log, the area is not.
* **Distance to the orthogonal space** (:func:`off_manifold_distance`): the mean over samples of the
  Euclidean norm of coordinates 11-110, :math:`\frac1n\sum_k \|x_{k,10:}\|_2`.

:func:`authors_powers` gives the powers :math:`t_i` of the authors' data and :func:`cauchy_power_sf` the
exact marginal survival functions :math:`P(|z_i| > r) = \frac2\pi\arctan(r^{-1/t_i})`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["AUTHORS_X_LIM", "AUTHORS_N_EDGES", "authors_powers", "cauchy_power_sf", "authors_edges",
           "ccdf_histogram", "exact_ccdf_histogram", "submanifold_ccdf_l1", "off_manifold_distance",
           "submanifold_metrics"]

Survival = Callable[[np.ndarray], np.ndarray]

#: right end of the authors' CCDF grid
AUTHORS_X_LIM = 5e6
#: number of edges of the authors' grid (``np.linspace(1, 5e6, 20000)``: 19,999 bins)
AUTHORS_N_EDGES = 20000


def authors_powers(c: int = 10) -> np.ndarray:
    """The powers :math:`t_i \\sim U(0.5, 2)` of the authors' data: the first draw of numpy's legacy
    stream seeded with 100 (``np.random.seed(100); np.random.uniform(0.5, 2.0, (1, c))``), whose stream
    numpy keeps fixed across versions. For c = 10: 1.315, 0.918, 1.137, 1.767, 0.507, 0.682, 1.506,
    1.739, 0.705, 1.363."""
    return np.random.RandomState(100).uniform(0.5, 2.0, size=(1, c))[0]


def cauchy_power_sf(t: Sequence[float]) -> tuple[Survival, ...]:
    r"""Exact :math:`r \mapsto P(|\mathrm{sign}(y)|y|^{t_i}| > r) = \frac2\pi\arctan(r^{-1/t_i})`,
    y standard Cauchy, one function per power."""

    def sf(ti: float) -> Survival:
        return lambda r: (2.0 / np.pi) * np.arctan(np.asarray(r, float) ** (-1.0 / ti))

    return tuple(sf(float(ti)) for ti in t)


def authors_edges(x_min: float = 1.0, x_lim: float = AUTHORS_X_LIM, n_edges: int = AUTHORS_N_EDGES) -> np.ndarray:
    """The bin edges ``np.linspace(x_min, x_lim, n_edges)`` (linear, both ends included)."""
    if not (np.isfinite(x_min) and np.isfinite(x_lim) and x_min < x_lim):
        raise ValueError(f"need finite x_min < x_lim, got x_min={x_min}, x_lim={x_lim}")
    if n_edges < 2:
        raise ValueError(f"need at least 2 edges, got n_edges={n_edges}")
    return np.linspace(x_min, x_lim, int(n_edges))


def ccdf_histogram(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    r"""Empirical :math:`\hat H_j` at the left edges of the bins (``len(edges) - 1`` values), for the
    columns of ``x`` (``(n,)`` or ``(n, c)``; shape ``(m-1,)`` or ``(m-1, c)`` out).

    This is ``plt.hist(|x|, bins=edges, density=True, cumulative=-1)[0]``: bins are half-open
    :math:`[e_j, e_{j+1})` except the last, closed one, so the count at or above :math:`e_j` is
    ``searchsorted(e_last, 'right') - searchsorted(e_j, 'left')`` on the sorted values. NaN sorts last
    and inf is above every edge, so neither is counted; a column with no value in range gives all ones.
    """
    a = np.abs(np.asarray(x, float))
    flat = a.ndim == 1
    a = np.sort(a[:, None] if flat else a, axis=0)
    edges = np.asarray(edges, float)
    h = np.empty((edges.size - 1, a.shape[1]))
    for i in range(a.shape[1]):  # a handful of coordinates; each one is vectorised over the bins
        top = np.searchsorted(a[:, i], edges[-1], side="right")
        above = top - np.searchsorted(a[:, i], edges[:-1], side="left")
        h[:, i] = above / above[0] if above[0] > 0 else 1.0
    return h[:, 0] if flat else h


def exact_ccdf_histogram(sf: Survival, edges: np.ndarray) -> np.ndarray:
    r"""The limit of :func:`ccdf_histogram` for infinitely many samples of a continuous law with survival
    function ``sf``: :math:`(S(e_j) - S(e_{m-1})) / (S(e_0) - S(e_{m-1}))` at the left edges."""
    edges = np.asarray(edges, float)
    s = np.asarray(sf(edges), float)
    mass = s[0] - s[-1]
    if not mass > 0:
        raise ValueError(f"the law puts no mass on [{edges[0]:g}, {edges[-1]:g}]: the conditional CCDF is undefined")
    return (s[:-1] - s[-1]) / mass


def _reference_histograms(reference, edges: np.ndarray, heavy: int) -> np.ndarray:
    """``(m-1, heavy)`` reference histograms from a problem, survival functions or reference samples."""
    sfs = getattr(reference, "marginal_sf", reference)
    if isinstance(sfs, np.ndarray) or not all(sf is None or callable(sf) for sf in sfs):
        ref = np.asarray(sfs, float)
        if ref.ndim != 2 or ref.shape[1] < heavy:
            raise ValueError(f"reference samples must have shape (n, >= {heavy}), got {ref.shape}")
        return ccdf_histogram(ref[:, :heavy], edges)
    sfs = tuple(sfs)
    if len(sfs) < heavy or any(sf is None for sf in sfs[:heavy]):
        raise ValueError(f"need an exact survival function for each of the {heavy} heavy coordinates")
    return np.stack([exact_ccdf_histogram(sf, edges) for sf in sfs[:heavy]], axis=1)


def submanifold_ccdf_l1(samples: np.ndarray, reference, *, heavy: int = 10, x_min: float = 1.0,
                        x_lim: float = AUTHORS_X_LIM, n_edges: int = AUTHORS_N_EDGES,
                        per_coordinate: bool = False) -> float | np.ndarray:
    r"""The authors' CCDF L1 of the first ``heavy`` coordinates (see the module docstring):
    :math:`\frac{1}{c}\sum_{i<c}\sum_j |\hat H_{ji} - H_{ji}|\,(e_{j+1}-e_j)`.

    Args:
        samples: generated samples ``(n, D)``, D >= ``heavy``; signs are dropped (``|x|``), values
            outside ``[x_min, x_lim]``, NaN and inf are not counted (as in the authors' histograms).
        reference: the exact law, as an object with ``marginal_sf`` (a ``HeavyTailProblem``) or a
            sequence of survival functions :math:`r \mapsto P(|X_i| > r)`; or reference samples
            ``(m, >= heavy)`` (the authors used 100,000 exact draws).
        heavy: number of leading heavy coordinates ``c``.
        x_min, x_lim, n_edges: the grid ``linspace(x_min, x_lim, n_edges)``.
        per_coordinate: return the ``heavy`` per-coordinate areas instead of their mean.

    Returns:
        The mean area (a float), or the array of per-coordinate areas.
    """
    x = np.asarray(samples, float)
    if x.ndim != 2 or x.shape[1] < heavy or heavy < 1:
        raise ValueError(f"samples must have shape (n, >= heavy={heavy}) with heavy >= 1, got {x.shape}")
    edges = authors_edges(x_min, x_lim, n_edges)
    ref = _reference_histograms(reference, edges, heavy)
    gen = ccdf_histogram(x[:, :heavy], edges)
    areas = np.abs(gen - ref).T @ np.diff(edges)
    return areas if per_coordinate else float(areas.mean())


def off_manifold_distance(samples: np.ndarray, heavy: int = 10) -> float:
    r"""Mean distance to the heavy coordinates' subspace, :math:`\frac1n\sum_k \|x_{k,\mathrm{heavy}:}\|_2`
    (computed in float64; a non-finite sample makes it non-finite, as in the authors' runs)."""
    x = np.asarray(samples, float)
    if x.ndim != 2 or x.shape[1] <= heavy:
        raise ValueError(f"samples must have shape (n, > heavy={heavy}), got {x.shape}")
    return float(np.mean(np.linalg.norm(x[:, heavy:], axis=1)))


def submanifold_metrics(samples: np.ndarray, reference, *, heavy: int = 10, **grid) -> dict[str, float]:
    """Both numbers of the authors' table: ``ccdf_l1_submanifold`` (mean over the heavy coordinates,
    :func:`submanifold_ccdf_l1`, ``grid`` its keywords) and ``off_manifold`` (:func:`off_manifold_distance`)."""
    return {"ccdf_l1_submanifold": submanifold_ccdf_l1(samples, reference, heavy=heavy, **grid),
            "off_manifold": off_manifold_distance(samples, heavy)}
