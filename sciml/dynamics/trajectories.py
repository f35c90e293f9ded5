r"""Trajectory data sets: generation from a :class:`DynamicalSystem` and the HDF5 schema.

HDF5 schema (``TRAJ.h5``), version 1:

=====================  =========================================  ========================================
name                   shape / type                               meaning
=====================  =========================================  ========================================
``trajectories``       float, ``(n_trajectories, n_times, d)``    the states; required, finite
``t``                  float, ``(n_times,)``, strictly increasing  sample times (or the attribute ``dt``)
attr ``dt``            float > 0                                   uniform spacing when ``t`` is absent
attr ``layout``        ``"qp"`` | ``"none"``                       ``qp``: first half of the state is q,
                                                                   second half p (needed for involution)
attr ``system``        str                                         catalogue name, free text otherwise
attr ``params``        JSON str                                    physical parameters
attr ``energy_drift``  float                                       max relative energy error (generated)
attr ``integrator``    str                                         how the data were made
=====================  =========================================  ========================================

Limits checked on load: rank 3, at least 2 trajectories (one is held out), at least
:data:`MIN_TIMES` samples per trajectory (finite-difference velocities need 5), ``d >= 2``, no NaN/inf,
``t`` of matching length and strictly increasing, or ``dt > 0``. Every violation raises
:class:`sciml.io.DataError` naming the problem and the fix.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..io import DataError
from .integrators import Integrator, default_integrator
from .system import DynamicalSystem

__all__ = ["Trajectories", "simulate", "save_trajectories", "load_trajectories", "energy_drift", "MIN_TIMES",
           "SCHEMA_VERSION"]

MIN_TIMES = 5
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Trajectories:
    """A set of sampled trajectories.

    Attributes:
        X: states, float array ``(n_trajectories, n_times, d)``.
        t: sample times ``(n_times,)``.
        layout: ``"qp"`` (first half q, second half p) or ``"none"``.
        attrs: free attributes (system name, params, integrator, energy drift, ...).
    """

    X: np.ndarray
    t: np.ndarray
    layout: str = "qp"
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_trajectories(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_times(self) -> int:
        return int(self.X.shape[1])

    @property
    def dim(self) -> int:
        return int(self.X.shape[2])

    @property
    def n_dof(self) -> int | None:
        """``N`` for the ``qp`` layout with even ``d``, else ``None``."""
        return self.dim // 2 if self.layout == "qp" and self.dim % 2 == 0 else None

    def subset(self, idx: Any) -> "Trajectories":
        """The trajectories ``idx`` (an index array or slice) with the same times and attributes."""
        return Trajectories(self.X[idx], self.t, self.layout, self.attrs)


def energy_drift(system: DynamicalSystem, X: torch.Tensor) -> float:
    r"""Largest relative energy error :math:`\max |H(x_t)-H(x_0)| / \max(|H(x_0)|, 1)` over the data."""
    if system.hamiltonian is None:
        return float("nan")
    H = system.hamiltonian(torch.as_tensor(X, dtype=torch.float64))
    return float(((H - H[:, :1]).abs() / H[:, :1].abs().clamp_min(1.0)).max())


def simulate(system: DynamicalSystem, n_trajectories: int, n_times: int, dt: float, *,
             integrator: Integrator | None = None, generator: torch.Generator | None = None,
             burn_in: float = 0.0) -> Trajectories:
    """Integrate ``n_trajectories`` trajectories from initial states drawn over ``system.region``.

    Args:
        system: the system (catalogue: :mod:`problems.systems`).
        n_trajectories: number of trajectories.
        n_times: samples per trajectory (``t = 0, dt, ..., (n_times-1) dt``).
        dt: sampling interval.
        integrator: default: :class:`Yoshida4` when separable, else :class:`DOP853`.
        generator: draws the initial conditions (reproducible runs).
        burn_in: integrate this long before the first sample (decorrelates from the sampled box).

    Returns:
        :class:`Trajectories` with attributes ``system``, ``params``, ``integrator``, ``energy_drift``,
        ``region`` and ``seconds``.
    """
    if n_trajectories < 1 or n_times < 2 or not dt > 0:
        raise ValueError("need n_trajectories >= 1, n_times >= 2 and dt > 0")
    integ = integrator or default_integrator(system)
    x0 = system.sample_initial(n_trajectories, generator)
    t0 = time.perf_counter()
    if burn_in > 0:
        x0 = integ.integrate(system, x0, torch.tensor([0.0, burn_in], dtype=torch.float64))[:, -1]
    t = torch.arange(n_times, dtype=torch.float64) * dt
    X = integ.integrate(system, x0, t)
    seconds = time.perf_counter() - t0
    attrs = {
        "system": system.name,
        "params": json.dumps(dict(system.params)),
        "integrator": repr(integ),
        "energy_drift": energy_drift(system, X),
        "region": system.region.description,
        "seconds": seconds,
    }
    return Trajectories(X.numpy(), t.numpy(), "qp" if system.n_dof else "none", attrs)


def save_trajectories(traj: Trajectories, path: str | Path) -> Path:
    """Write ``traj`` to HDF5 (schema above), atomically (a crash leaves no half-written file)."""
    from ..run import atomic_h5

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as fh:
        fh.create_dataset("trajectories", data=np.asarray(traj.X))
        fh.create_dataset("t", data=np.asarray(traj.t))
        fh.attrs["layout"] = traj.layout
        fh.attrs["schema_version"] = SCHEMA_VERSION
        for k, v in traj.attrs.items():
            fh.attrs[k] = v if isinstance(v, (int, float, str, np.number)) else json.dumps(v, default=str)
    return path


def load_trajectories(path: str | Path) -> Trajectories:
    """Read and validate a trajectory file.

    Raises:
        DataError: file missing or unreadable, dataset ``trajectories`` missing, wrong rank, NaN/inf,
            too few trajectories or time steps, bad ``t``/``dt``, unknown ``layout``.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        fh = h5py.File(path, "r")
    except Exception as e:
        raise DataError(f"{path}: not a readable HDF5 file ({type(e).__name__}); write it with h5py "
                        f"or `sciml simulate`") from None
    with fh:
        if "trajectories" not in fh:
            raise DataError(f"{path}: missing dataset 'trajectories' (found: {sorted(fh.keys()) or 'nothing'}); "
                            f"store the states as (n_trajectories, n_times, state_dim)")
        X = np.asarray(fh["trajectories"][()])
        if not np.issubdtype(X.dtype, np.number):
            raise DataError(f"{path}: 'trajectories' has non-numeric dtype {X.dtype}")
        if X.ndim != 3:
            raise DataError(f"{path}: 'trajectories' has shape {X.shape} (rank {X.ndim}); expected rank 3 "
                            f"(n_trajectories, n_times, state_dim) - add a leading axis for one trajectory")
        n, T, d = X.shape
        if n < 2:
            raise DataError(f"{path}: 'trajectories' holds {n} trajectory; at least 2 are needed "
                            f"(one is held out for checking)")
        if T < MIN_TIMES:
            raise DataError(f"{path}: 'trajectories' has {T} time steps; at least {MIN_TIMES} are needed "
                            f"for finite-difference velocities")
        if d < 2:
            raise DataError(f"{path}: state dimension {d}; at least 2 is needed for a non-trivial invariant")
        bad = ~np.isfinite(X)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise DataError(f"{path}: 'trajectories' contains {int(bad.sum())} NaN/inf values (in trajectories "
                            f"{rows[:5].tolist()}{'...' if rows.size > 5 else ''}); drop or re-simulate those")
        if "t" in fh:
            t = np.asarray(fh["t"][()], dtype=np.float64)
            if t.ndim != 1 or t.shape[0] != T:
                raise DataError(f"{path}: 't' has shape {t.shape}; expected ({T},), one time per sample")
            if not np.isfinite(t).all() or not (np.diff(t) > 0).all():
                raise DataError(f"{path}: 't' must be finite and strictly increasing")
        elif "dt" in fh.attrs:
            dt = float(np.asarray(fh.attrs["dt"]))
            if not np.isfinite(dt) or dt <= 0:
                raise DataError(f"{path}: attribute 'dt' = {dt}; it must be a positive number")
            t = np.arange(T) * dt
        else:
            raise DataError(f"{path}: no sample times; add a dataset 't' of shape ({T},) or a scalar "
                            f"attribute 'dt'")
        layout = str(fh.attrs.get("layout", "qp" if d % 2 == 0 else "none"))
        if isinstance(fh.attrs.get("layout"), bytes):
            layout = fh.attrs["layout"].decode()
        if layout not in ("qp", "none"):
            raise DataError(f"{path}: attribute 'layout' = {layout!r}; use 'qp' (first half q, second half p) "
                            f"or 'none'")
        if layout == "qp" and d % 2:
            raise DataError(f"{path}: layout 'qp' needs an even state dimension, got {d}")
        attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
                 for k, v in fh.attrs.items() if k not in ("layout",)}
    return Trajectories(X.astype(np.float64), t, layout, attrs)
