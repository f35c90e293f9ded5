r"""Heavy-tailed target distributions with exact tail functions.

Each problem is a frozen :class:`HeavyTailProblem`: a sampler plus the exact complementary CDFs
(survival functions) needed by the tail metrics.

* :func:`student_t` -- multivariate Student-t :math:`X = Z/\sqrt{W/\nu}`, :math:`Z\sim N(0,I_d)`,
  :math:`W\sim\chi^2_\nu`. Radial law: :math:`|X|^2/d \sim F(d,\nu)`, so
  :math:`P(|X|>r) = \bar F_{d,\nu}(r^2/d)`, a power law :math:`\sim r^{-\nu}`; every marginal is a
  1-d Student-t(:math:`\nu`). No mean for :math:`\nu\le1`, no variance for :math:`\nu\le2`.
* :func:`cauchy_power` -- Pareto-GAN's submanifold example: :math:`z_i = \mathrm{sign}(y_i)|y_i|^{t_i}`,
  :math:`y_i` iid Cauchy, :math:`t_i\sim U(0.5, 2)` drawn once (by default the authors' draw), padded with zeros to ``embed_dim``.
  Marginal tail :math:`P(|z_i|>r) = \frac{2}{\pi}\arctan(r^{-1/t_i})`, tail index :math:`1/t_i`.
* :func:`pareto` -- iid symmetric Lomax coordinates, :math:`P(|X_i|>r) = (1+r)^{-a}`.
* :func:`mixed` -- light (Gaussian) and heavy (Student-t) coordinates side by side.

Samplers take a ``numpy.random.Generator`` (randomness is passed in) and return float64 arrays ``(n, D)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sciml.registry import Registry

__all__ = ["HeavyTailProblem", "student_t", "cauchy_power", "pareto", "mixed", "make_problem", "PROBLEMS"]

Survival = Callable[[np.ndarray], np.ndarray]


def _stats():
    # scipy is imported on first use: the command line reads this catalogue's names at every start
    from scipy import stats

    return stats


@dataclass(frozen=True)
class HeavyTailProblem:
    r"""A heavy-tailed target distribution.

    Attributes:
        name: short label, e.g. ``"student_t(nu=1.5, d=2)"``.
        dim: ambient dimension D of the samples.
        sampler: ``sampler(n, rng) -> (n, D)`` array.
        radial_sf: exact :math:`r\mapsto P(|X|>r)` of the Euclidean norm, or None if not closed form.
        radial_index: tail index of :math:`|X|` (:math:`P(|X|>r)\sim r^{-\text{index}}`).
        marginal_sf: per coordinate, exact :math:`r\mapsto P(|X_i|>r)` (None for a zero padding).
        marginal_index: per coordinate tail index (``inf`` for light tails or zero padding).
    """

    name: str
    dim: int
    sampler: Callable[[int, np.random.Generator], np.ndarray]
    radial_sf: Survival | None
    radial_index: float
    marginal_sf: tuple[Survival | None, ...] = field(default=())
    marginal_index: tuple[float, ...] = field(default=())

    def sample(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` exact samples, shape ``(n, dim)``."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        return self.sampler(int(n), rng)

    @property
    def heavy_coordinates(self) -> tuple[int, ...]:
        """Coordinates with a finite tail index (the ones the marginal metrics look at)."""
        return tuple(i for i, a in enumerate(self.marginal_index) if np.isfinite(a))


def _t_marginal_sf(nu: float) -> Survival:
    return lambda r: 2.0 * _stats().t.sf(np.asarray(r, float), nu)


def student_t(nu: float, dim: int = 2) -> HeavyTailProblem:
    """Multivariate Student-t(:math:`\\nu`) with identity scale in ``dim`` dimensions."""
    if not 0 < nu:
        raise ValueError(f"nu must be > 0, got {nu}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")

    def sampler(n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, dim))
        w = rng.chisquare(nu, size=(n, 1))
        return z / np.sqrt(w / nu)

    def radial_sf(r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, float)
        return _stats().f.sf(r**2 / dim, dim, nu)

    return HeavyTailProblem(f"student_t(nu={nu:g}, d={dim})", dim, sampler, radial_sf, float(nu),
                            tuple(_t_marginal_sf(nu) for _ in range(dim)), (float(nu),) * dim)


def cauchy_power(dim: int = 10, embed_dim: int | None = None, *, t_range: tuple[float, float] = (0.5, 2.0),
                 seed: int | None = None, powers: "np.ndarray | None" = None) -> HeavyTailProblem:
    """Cauchy power transform :math:`\\mathrm{sign}(y)|y|^{t_i}` in ``dim`` coordinates, zero-padded.

    Args:
        dim: heavy coordinates (10 in Pareto-GAN and the authors' runs).
        embed_dim: ambient dimension (default ``dim``; the authors use 110).
        t_range: the law of the powers, :math:`t_i \\sim U(t_{lo}, t_{hi})`.
        seed: ``None`` (default): the authors' powers, the first ``dim`` draws of numpy's legacy stream seeded
            with 100 (:func:`sciml.heavytail.submanifold.authors_powers`; for ``dim = 10``: 1.315, 0.918, ...,
            1.363), so the published figures compare with these; an integer: powers drawn once from
            ``numpy.random.default_rng(seed)``.
        powers: the ``dim`` powers themselves (overrides ``seed``).
    """
    embed_dim = embed_dim or dim
    if embed_dim < dim:
        raise ValueError(f"embed_dim ({embed_dim}) must be >= dim ({dim})")
    if powers is not None:
        t = np.asarray(powers, dtype=float).reshape(-1)
        if t.shape != (dim,) or not np.all(np.isfinite(t) & (t > 0)):
            raise ValueError(f"powers must be {dim} finite numbers > 0, got {powers!r}")
    elif seed is None and tuple(t_range) == (0.5, 2.0):
        from sciml.heavytail.submanifold import authors_powers  # the authors' draw (their U(0.5, 2))

        t = authors_powers(dim)
    else:
        t = np.random.default_rng(0 if seed is None else seed).uniform(*t_range, size=dim)

    def sampler(n: int, rng: np.random.Generator) -> np.ndarray:
        y = rng.standard_cauchy((n, dim))
        out = np.zeros((n, embed_dim))
        out[:, :dim] = np.sign(y) * np.abs(y) ** t
        return out

    def msf(ti: float) -> Survival:
        return lambda r: (2.0 / np.pi) * np.arctan(np.asarray(r, float) ** (-1.0 / ti))

    sfs = tuple(msf(ti) for ti in t) + (None,) * (embed_dim - dim)
    idx = tuple(1.0 / t) + (float("inf"),) * (embed_dim - dim)
    return HeavyTailProblem(f"cauchy_power(d={dim}, D={embed_dim})", embed_dim, sampler, None,
                            float(min(idx)), sfs, idx)


def pareto(a: float, dim: int = 1) -> HeavyTailProblem:
    """Iid symmetric Lomax (Pareto II) coordinates, :math:`P(|X_i|>r) = (1+r)^{-a}`; exact radial
    survival in 1-d only."""
    if a <= 0:
        raise ValueError(f"a must be > 0, got {a}")

    def sampler(n: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.uniform(size=(n, dim))
        s = rng.choice([-1.0, 1.0], size=(n, dim))
        return s * (u ** (-1.0 / a) - 1.0)

    def msf(r: np.ndarray) -> np.ndarray:
        return (1.0 + np.asarray(r, float)) ** (-a)

    return HeavyTailProblem(f"pareto(a={a:g}, d={dim})", dim, sampler, msf if dim == 1 else None, float(a),
                            (msf,) * dim, (float(a),) * dim)


def mixed(dim: int = 4, n_heavy: int = 2, nu: float = 1.5) -> HeavyTailProblem:
    """``dim - n_heavy`` standard Gaussian coordinates followed by ``n_heavy`` iid Student-t(nu) ones."""
    if not 0 < n_heavy <= dim:
        raise ValueError(f"need 0 < n_heavy <= dim, got n_heavy={n_heavy}, dim={dim}")
    n_light = dim - n_heavy

    def sampler(n: int, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([rng.standard_normal((n, n_light)), rng.standard_t(nu, (n, n_heavy))], axis=1)

    gauss = lambda r: 2.0 * _stats().norm.sf(np.asarray(r, float))  # noqa: E731
    return HeavyTailProblem(f"mixed(d={dim}, heavy={n_heavy}, nu={nu:g})", dim, sampler, None, float(nu),
                            (gauss,) * n_light + (_t_marginal_sf(nu),) * n_heavy,
                            (float("inf"),) * n_light + (float(nu),) * n_heavy)


#: the catalogue by name (``--problem``); every factory takes the keywords of :func:`make_problem` it needs
PROBLEMS: Registry[HeavyTailProblem] = Registry("problem", HeavyTailProblem)
PROBLEMS.register("student_t", lambda nu=1.5, dim=2: student_t(nu, dim), doc="multivariate Student-t(nu) in dim")
PROBLEMS.register("cauchy_power", lambda dim=10, embed_dim=None: cauchy_power(dim, embed_dim),
                  doc="Cauchy power transform in dim coordinates, zero-padded to embed_dim")
PROBLEMS.register("pareto", lambda nu=1.5, dim=1: pareto(nu, dim), doc="iid symmetric Lomax(a = nu) coordinates")
PROBLEMS.register("mixed", lambda nu=1.5, dim=4, n_heavy=None: mixed(dim, max(1, dim // 2) if n_heavy is None
                                                                     else n_heavy, nu),
                  doc="Gaussian and Student-t(nu) coordinates side by side")


def make_problem(name: str, *, nu: float = 1.5, dim: int = 2, embed_dim: int | None = None,
                 n_heavy: int | None = None) -> HeavyTailProblem:
    """Build a problem by name (:data:`PROBLEMS`: ``student_t``, ``cauchy_power``, ``pareto``, ``mixed``).

    ``nu`` is the tail index (Student-t degrees of freedom, Pareto ``a``); ``dim`` the (heavy) dimension;
    ``n_heavy`` the heavy coordinates of ``mixed`` (default ``max(1, dim // 2)``).
    """
    return PROBLEMS.resolve(name, nu=nu, dim=dim, embed_dim=embed_dim, n_heavy=n_heavy)
