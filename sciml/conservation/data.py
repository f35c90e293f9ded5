r"""From snapshots to training points: finite-difference velocities, hold-out split, standardisation.

Only the snapshots are used; the equations are never evaluated. Velocities come from central finite
differences along each trajectory: 4th order on a uniform grid,
:math:`\dot x_t \approx (-x_{t+2} + 8x_{t+1} - 8x_{t-1} + x_{t-2})/(12\,\Delta t)` (error
:math:`O(\Delta t^4)`; the two end samples of each trajectory are dropped), and NumPy's 2nd-order
``gradient`` on a non-uniform grid.

Coordinates are standardised, :math:`z = (x - \mu)/\sigma` per coordinate from the training points, so
the angles in the loss do not depend on the units of each coordinate (conservation itself,
:math:`\nabla_x H\cdot\dot x = \nabla_z H\cdot\dot z = 0`, is unit-free).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..dynamics.trajectories import Trajectories
from .library import MonomialFeatures, build_library, library_degree_for, whitening

__all__ = ["finite_difference_velocity", "finite_difference_error", "PointSet", "make_points", "split_trajectories",
           "TrajectoryWindows", "PolynomialLibrary", "DeflationData", "prepare_data"]


def finite_difference_velocity(X: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Velocities along each trajectory.

    Args:
        X: states ``(n, T, d)``; t: times ``(T,)``.

    Returns:
        ``(states, velocities)``, both ``(n, T', d)``: ``T' = T - 4`` on a uniform grid (4th-order central
        differences, ends dropped), ``T' = T`` otherwise (2nd order, one-sided at the ends).
    """
    dt = np.diff(t)
    if np.allclose(dt, dt[0], rtol=1e-9, atol=0) and X.shape[1] >= 5:
        h = float(dt[0])
        V = (-X[:, 4:] + 8 * X[:, 3:-1] - 8 * X[:, 1:-3] + X[:, :-4]) / (12 * h)
        return X[:, 2:-2], V
    return X, np.gradient(X, t, axis=1, edge_order=2)


def finite_difference_error(X: np.ndarray, t: np.ndarray, V: np.ndarray | None = None) -> np.ndarray:
    r"""Estimated error of :func:`finite_difference_velocity` at the same points, ``(n, T', d)``.

    The 4th-order stencil's error is :math:`-h^4 x^{(5)}/30`; the same stencil with step :math:`2h` has
    16 times that, so :math:`e \approx (v_{2h} - v_h)/15` (Richardson). Points within 4 samples of a
    trajectory's ends (where the wide stencil does not fit), and every point of a non-uniform grid, get NaN.
    ``V``: the velocities from :func:`finite_difference_velocity`, if already computed.
    """
    if V is None:
        V = finite_difference_velocity(X, t)[1]
    err = np.full_like(V, np.nan)
    dt = np.diff(t)
    if not (np.allclose(dt, dt[0], rtol=1e-9, atol=0) and X.shape[1] >= 9):
        return err
    h = float(dt[0])
    V2 = (-X[:, 8:] + 8 * X[:, 6:-2] - 8 * X[:, 2:-6] + X[:, :-8]) / (24 * h)   # step 2h, at samples 4..T-5
    err[:, 2:-2] = (V2 - V[:, 2:-2]) / 15
    return err


@dataclass(frozen=True)
class PointSet:
    """Snapshots with velocities, flattened over trajectories and time.

    Attributes:
        x: states ``(M, d)``; v: velocities ``(M, d)``; traj: trajectory index per point ``(M,)``;
        err: estimated velocity errors ``(M, d)`` (NaN where unknown; :func:`finite_difference_error`).
    """

    x: Tensor
    v: Tensor
    traj: Tensor
    err: Tensor | None = None

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "PointSet":
        return PointSet(self.x.to(device, dtype), self.v.to(device, dtype), self.traj.to(device),
                        None if self.err is None else self.err.to(device, dtype))

    def __len__(self) -> int:
        return int(self.x.shape[0])


def validation_index(n: int, points: int, device: torch.device) -> Tensor:
    """A fixed strided subset of ``min(n, points)`` of ``n`` points (no random draw: the seeded streams stay
    those of the published tables)."""
    return torch.arange(0, n, max(1, n // points), device=device)[:points]


def split_trajectories(n: int, holdout: float, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random split of ``n`` trajectory indices into (train, held-out); at least one in each."""
    perm = torch.randperm(n, generator=generator).numpy()
    n_hold = min(n - 1, max(1, int(round(holdout * n))))
    return np.sort(perm[n_hold:]), np.sort(perm[:n_hold])


def make_points(traj: Trajectories, max_points: int | None = None,
                generator: torch.Generator | None = None) -> PointSet:
    """Velocities by finite differences, then all points (or ``max_points`` of them, drawn at random)."""
    X, t = np.asarray(traj.X, dtype=np.float64), np.asarray(traj.t, dtype=np.float64)
    Xs, V = finite_difference_velocity(X, t)
    n, T, d = Xs.shape
    x = torch.from_numpy(np.ascontiguousarray(Xs.reshape(-1, d)))
    v = torch.from_numpy(np.ascontiguousarray(V.reshape(-1, d)))
    err = torch.from_numpy(np.ascontiguousarray(finite_difference_error(X, t, V).reshape(-1, d)))
    tid = torch.arange(n).repeat_interleave(T)
    if max_points is not None and x.shape[0] > max_points:
        idx = torch.randperm(x.shape[0], generator=generator)[:max_points].sort().values
        x, v, err, tid = x[idx], v[idx], err[idx], tid[idx]
    return PointSet(x, v, tid, err)


class TrajectoryWindows:
    """Draws batches of ``w`` snapshots from each of ``b`` random trajectories (points grouped by ``traj``)."""

    def __init__(self, traj: Tensor):
        order = torch.argsort(traj, stable=True)
        _, counts = torch.unique_consecutive(traj[order], return_counts=True)
        self.order, self.counts = order, counts
        self.starts = torch.cumsum(counts, 0) - counts

    def sample(self, b: int, w: int, generator: torch.Generator) -> Tensor:
        dev = self.order.device
        t = torch.randint(0, len(self.counts), (b,), generator=generator, device=dev)
        u = torch.rand(b, w, generator=generator, device=dev)
        pos = self.starts[t, None] + (u * self.counts[t, None]).long().clamp_max(self.counts[t, None] - 1)
        return self.order[pos.reshape(-1)]


@dataclass(frozen=True)
class PolynomialLibrary:
    """The polynomial start's fixed inputs: monomials (of whitened ``z``) and a fixed subset of training
    points with their standardised velocities and velocity errors (:func:`~sciml.conservation.library.library_fit`).

    Attributes:
        idx: the subset's indices into the training points.
        z, v, err: standardised states, velocities and velocity errors there (``err`` may be ``None``).
        features: the monomials, up to degree ``degree``, and the atom terms
            (:func:`~sciml.conservation.library.build_library`).
        cache: what :func:`~sciml.conservation.library.library_fit` keeps across the run's candidates.
        check: the points of every fifth training trajectory, held out of the library's fit: a solution
            is exact only if it is exact on them too (an over-fitted one is not).
    """

    idx: Tensor
    z: Tensor
    v: Tensor
    err: Tensor | None
    features: MonomialFeatures
    degree: int
    cache: dict = field(default_factory=dict, compare=False, repr=False)
    check: Tensor | None = None


@dataclass(frozen=True)
class DeflationData:
    r"""What every candidate of a discovery trains and is evaluated on; fixed for the run.

    Attributes:
        train, test: training and held-out points (on the device, in the training dtype).
        shift, scale: the standardisation :math:`z = (x - \mu)/\sigma` (from the training points).
        windows: trajectory windows of the training points (the value term's batches).
        split: training and held-out trajectory indices.
        heldout: the held-out trajectories ``(n, T, d)`` (constancy).
        n_dof: ``N`` of a ``qp`` layout, else ``None``.
        library: the polynomial start's inputs (``None``: off).
        cache: what the run's candidates share once computed (the Hamiltonian start's fitted network,
            :mod:`~sciml.conservation.hamiltonian`).
    """

    train: PointSet
    test: PointSet
    shift: Tensor
    scale: Tensor
    windows: TrajectoryWindows
    split: tuple[np.ndarray, np.ndarray]
    heldout: np.ndarray
    n_dof: int | None
    library: PolynomialLibrary | None
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def dim(self) -> int:
        return int(self.train.x.shape[1])


def _check_rows(traj_ids: Tensor) -> Tensor | None:
    """The library points on every fifth trajectory (whole trajectories, so a function fitted to the others
    is judged on motions it has not seen); ``None`` with fewer than 5 trajectories."""
    check = traj_ids % 5 == 0
    return check if bool(check.any()) and bool((~check).any()) else None


def prepare_data(traj: Trajectories, cfg: Any, generator: torch.Generator, device: torch.device,
                 dtype: torch.dtype) -> DeflationData:
    """Split the trajectories, make the training and held-out points, standardise, and pick the polynomial
    start's points, drawing from ``generator`` in that order (the split, the training subset, the held-out
    subset, the library subset: the published tables' streams, see ``candidate_seeds``)."""
    tr_idx, ho_idx = split_trajectories(traj.n_trajectories, cfg.holdout, generator)
    train = make_points(traj.subset(tr_idx), cfg.max_points, generator).to(device, dtype)
    test = make_points(traj.subset(ho_idx), cfg.eval_points, generator).to(device, dtype)
    shift = train.x.mean(0)
    scale = train.x.std(0).clamp_min(1e-8)
    d = traj.dim
    # the polynomial start: monomials of z, fitted on a fixed subset of training points (not with
    # involution: the library's quotient has no Poisson-bracket term, so an exact polynomial need not
    # commute with the earlier laws)
    degree = (library_degree_for(d, cfg.library_degree, cfg.library_max_features)
              if cfg.library_degree and not cfg.involution else 0)
    library = None
    if degree:
        idx = torch.randperm(len(train), generator=generator)[:cfg.library_points].to(device)
        z = (train.x[idx] - shift) / scale
        library = PolynomialLibrary(idx, z, train.v[idx] / scale,
                                    train.err[idx] / scale if train.err is not None else None,
                                    build_library(d, degree, whitening(z), train.x[idx], shift, scale,
                                                  cfg.library_features, cfg.library_atom_degree,
                                                  cfg.library_max_features).to(device), degree,
                                    check=_check_rows(train.traj[idx]))
    return DeflationData(train, test, shift, scale, TrajectoryWindows(train.traj), (tr_idx, ho_idx),
                         np.asarray(traj.X[ho_idx]), traj.n_dof, library)
