r"""Tail metrics for heavy-tailed samples (numpy in, floats out).

* :func:`hill` -- Hill estimator of the tail index from the ``k`` largest values:
  :math:`\hat\xi = \frac1k\sum_{i=1}^k \log(X_{(i)}/X_{(k+1)})`, :math:`\hat\alpha = 1/\hat\xi`
  (:math:`P(X>x)\sim x^{-\alpha}`). Standard error about :math:`\alpha/\sqrt k`; the default ``k`` is
  2% of the sample, a compromise between that variance and the second-order bias of Student-t tails.
* :func:`ccdf_l1` -- our tail metric (the authors' linear-axis one is
  :func:`sciml.heavytail.submanifold.submanifold_ccdf_l1`): the area between the empirical and the exact complementary
  CDF of :math:`|x|` on log-log axes, :math:`\int |\log_{10}\hat S(r) - \log_{10} S(r)|\, d\log_{10} r`
  over :math:`r\in[r_{min}, r_{max}]` (default :math:`r_{min}=1`, :math:`r_{max}` where
  :math:`S(r_{max}) = 1/n`, the deepest level n samples resolve; :math:`\hat S` is floored at
  :math:`1/(2n)`). ``axes="linear"`` gives :math:`\int|\hat S - S|\,dr` instead.
* :func:`tail_probabilities` -- empirical :math:`P(|X|>r)` at several radii.
* :func:`evaluate_samples` -- all of the above (radial and per heavy coordinate) plus the sliced
  Wasserstein distance on the body (samples clipped to a central ball).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["hill", "smoothed_hill", "empirical_sf", "ccdf_l1", "tail_probabilities", "inverse_sf", "evaluate_samples", "qq_points"]


def hill(x: np.ndarray, k: int | None = None, *, fraction: float = 0.02) -> float:
    r"""Hill estimate :math:`\hat\alpha` of the tail index of :math:`|x|` (1-d array of values).

    Args:
        x: samples (absolute values are used); non-finite values are dropped.
        k: number of upper order statistics; default ``max(10, fraction * n)``.

    Returns:
        :math:`\hat\alpha` (``inf`` when the top values are all equal, ``nan`` for too few samples).
    """
    a = np.abs(np.asarray(x, float).ravel())
    a = a[np.isfinite(a)]
    n = a.size
    if k is None:
        k = max(10, int(fraction * n))
    if n < k + 1 or k < 1:
        return float("nan")
    top = np.sort(a)[::-1][: k + 1]
    if top[k] <= 0:
        return float("nan")
    xi = np.mean(np.log(top[:k] / top[k]))
    return float("inf") if xi <= 0 else float(1.0 / xi)


def smoothed_hill(x: np.ndarray, fractions: tuple[float, float] = (0.01, 0.05), n_k: int = 10) -> float:
    """Hill estimates averaged over ``n_k`` log-spaced ``k`` between the two fractions of the sample: less
    noisy than one ``k`` (used to pick a latent tail index from data)."""
    n = np.isfinite(np.asarray(x, float)).sum()
    ks = np.unique(np.geomspace(max(10, fractions[0] * n), max(11, fractions[1] * n), n_k).astype(int))
    return float(np.mean([hill(x, k=int(k)) for k in ks]))


def empirical_sf(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Empirical :math:`P(|X| > r)` at each ``r``."""
    a = np.sort(np.abs(np.asarray(x, float).ravel()))
    return 1.0 - np.searchsorted(a, np.asarray(r, float), side="right") / a.size


def inverse_sf(sf: Callable[[np.ndarray], np.ndarray], level: float, lo: float = 1e-8, hi: float = 1e12) -> float:
    """Solve ``sf(r) = level`` for r by bisection in log r (``sf`` decreasing)."""
    a, b = np.log(lo), np.log(hi)
    for _ in range(200):
        m = 0.5 * (a + b)
        if float(sf(np.exp(m))) > level:
            a = m
        else:
            b = m
    return float(np.exp(0.5 * (a + b)))


def ccdf_l1(x: np.ndarray, sf: Callable[[np.ndarray], np.ndarray], *, r_min: float = 1.0, r_max: float | None = None,
            n_grid: int = 400, axes: str = "loglog") -> float:
    """L1 area between the empirical and exact survival functions of ``|x|`` (see module docstring).

    Non-finite samples count as infinitely far (they sit in every tail), so a run that produced NaN
    scores badly instead of silently dropping them.
    """
    a = np.abs(np.asarray(x, float).ravel())
    a = np.where(np.isfinite(a), a, np.inf)
    n = a.size
    if r_max is None:
        r_max = inverse_sf(sf, 1.0 / n)
    r = np.geomspace(r_min, r_max, n_grid) if axes == "loglog" else np.linspace(r_min, r_max, n_grid)
    s_hat = empirical_sf(a, r)
    s = np.asarray(sf(r), float)
    if axes == "loglog":
        floor = 0.5 / n
        d = np.abs(np.log10(np.maximum(s_hat, floor)) - np.log10(np.maximum(s, floor)))
        return float(np.trapezoid(d, np.log10(r)))
    if axes == "linear":
        return float(np.trapezoid(np.abs(s_hat - s), r))
    raise ValueError(f"axes must be 'loglog' or 'linear', got {axes!r}")


def tail_probabilities(x: np.ndarray, radii: Sequence[float]) -> np.ndarray:
    """Empirical :math:`P(|X|>r)` for each r in ``radii``."""
    return empirical_sf(x, np.asarray(radii, float))


def qq_points(x: np.ndarray, y: np.ndarray, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Matching quantiles of ``|x|`` and ``|y|`` at log-spaced upper levels (for QQ plots)."""
    q = 1.0 - np.geomspace(0.5, 1.0 / min(len(x), len(y)), n)
    return np.quantile(np.abs(x), q), np.quantile(np.abs(y), q)


def evaluate_samples(gen: np.ndarray, problem=None, *, reference: np.ndarray | None = None,
                     radii: Sequence[float] = (1, 10, 100, 1000), hill_fraction: float = 0.02,
                     body_radius: float = 10.0, seed: int = 0) -> dict[str, float]:
    """Tail and body metrics of generated samples ``(n, D)`` against a problem (exact tails) and/or a
    reference sample (the data: used for the sliced Wasserstein body distance and, without a problem,
    as the "exact" survival function).

    Returns a flat dict: ``nonfinite`` (fraction of rows with NaN/inf), ``hill`` (radial tail index),
    ``hill_error`` (relative to the exact index), ``ccdf_l1`` (radial, log-log), per-coordinate means
    ``hill_marginal_error`` / ``ccdf_l1_marginal`` over heavy coordinates, ``p(|x|>r)`` and exact
    ``p_exact(|x|>r)``, and ``sw_body``.
    """
    import torch

    from ..metrics import sliced_wasserstein

    gen = np.asarray(gen, float)
    if gen.ndim == 1:
        gen = gen[:, None]
    out: dict[str, float] = {}
    bad = ~np.isfinite(gen).all(axis=1)
    out["nonfinite"] = float(bad.mean())
    rad = np.linalg.norm(np.where(np.isfinite(gen), gen, np.inf), axis=1)
    out["hill"] = hill(rad, fraction=hill_fraction)
    radial_sf = None
    if problem is not None and problem.radial_sf is not None:
        radial_sf = problem.radial_sf
        out["true_index"] = problem.radial_index
    elif reference is not None:
        ref_rad = np.linalg.norm(reference, axis=1)
        radial_sf = lambda r: empirical_sf(ref_rad, r)  # noqa: E731
        out["true_index"] = problem.radial_index if problem is not None else hill(ref_rad, fraction=hill_fraction)
    elif problem is not None:
        out["true_index"] = problem.radial_index
    if "true_index" in out:
        out["hill_error"] = abs(out["hill"] - out["true_index"]) / out["true_index"]
    if radial_sf is not None:
        if problem is not None and problem.radial_sf is not None:
            out["ccdf_l1"] = ccdf_l1(rad, radial_sf)
        else:  # empirical reference: stop where the reference runs out
            ref_rad = np.linalg.norm(reference, axis=1)
            out["ccdf_l1"] = ccdf_l1(rad, radial_sf, r_max=float(np.quantile(ref_rad, 1 - 1.0 / len(ref_rad))))
        for r in radii:
            out[f"p(|x|>{r:g})"] = float(tail_probabilities(rad, [r])[0])
            out[f"p_exact(|x|>{r:g})"] = float(np.asarray(radial_sf(np.array([r], float)))[0])
    if problem is not None and problem.heavy_coordinates:
        errs, l1s = [], []
        for j in problem.heavy_coordinates:
            col = np.where(np.isfinite(gen[:, j]), gen[:, j], np.inf)
            errs.append(abs(hill(col, fraction=hill_fraction) - problem.marginal_index[j]) / problem.marginal_index[j])
            l1s.append(ccdf_l1(col, problem.marginal_sf[j]))
        out["hill_marginal_error"] = float(np.mean(errs))
        out["ccdf_l1_marginal"] = float(np.mean(l1s))
    if reference is not None and not bad.all():
        g = gen[~bad]
        gb = g[np.linalg.norm(g, axis=1) <= body_radius]
        rb = reference[np.linalg.norm(reference, axis=1) <= body_radius]
        if len(gb) > 1 and len(rb) > 1:
            gen_t = torch.Generator().manual_seed(seed)
            out["sw_body"] = float(sliced_wasserstein(torch.as_tensor(gb), torch.as_tensor(rb), generator=gen_t))
    return out
