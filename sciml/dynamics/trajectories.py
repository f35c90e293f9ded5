r"""Trajectory data sets: generation from a :class:`DynamicalSystem` and the HDF5 schema.

HDF5 schema (``TRAJ.h5``), version 1:

=========================  ===========================================  ========================================
name                       shape / type                                 meaning
=========================  ===========================================  ========================================
``trajectories``           float, ``(n_trajectories, n_times, d)``      the states; required, finite
``t``                      float, ``(n_times,)``, strictly increasing   sample times (or the attribute ``dt``)
attr ``dt``                float > 0                                    uniform spacing when ``t`` is absent
attr ``layout``            ``"qp"`` | ``"none"``                        ``qp``: first half of the state is q,
                                                                        second half p (needed for involution)
attr ``system``            str                                          catalogue name, free text otherwise
attr ``params``            JSON str                                     physical parameters
attr ``energy_drift``      float                                        max relative energy error (generated; SIR: of C)
attr ``integrator``        str                                          how the data were made
attr ``schema_version``    int                                          the schema's version (written: 1)
attr ``lyapunov``          JSON str                                     Lyapunov summary (``simulate --lyapunov``)
=========================  ===========================================  ========================================

Checked on load, from the file's metadata before the states are read: ``trajectories`` a dataset (not
a group) of real floating dtype (complex is refused, never truncated to its real part), rank 3, at
least 2 trajectories (one is held out), at least :data:`MIN_TIMES` samples per trajectory
(finite-difference velocities need 5), ``d >= 2``, and a size that fits in the available memory
(:func:`sciml.io.available_memory`). Then: no NaN/inf; ``t`` real, of matching length, finite and strictly
increasing, or ``dt`` a finite number > 0; ``layout`` one of the two above; the text attributes UTF-8,
``params`` and ``lyapunov`` JSON, ``schema_version`` at most :data:`SCHEMA_VERSION`. Every violation
raises :class:`sciml.io.DataError` naming the file, the dataset or attribute, and the fix.
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
from ..run.resources import available_memory, format_bytes
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
    r"""Largest relative energy error :math:`\max |H(x_t)-H(x_0)| / \max(|H(x_0)|, 1)` over the data; for a
    system without a Hamiltonian (SIR), the same for its first known invariant; NaN if it has neither."""
    f = system.hamiltonian or next(iter(system.invariants.values()), None)
    if f is None:
        return float("nan")
    H = f(torch.as_tensor(X, dtype=torch.float64))
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
    """Read and validate a trajectory file (the schema in the module docstring).

    Everything that can be checked from the file's metadata (the dataset's type, dtype, rank, sizes and
    the memory it needs) is checked before the states are read.

    Raises:
        DataError: naming the file, the dataset or attribute, and the fix: the file missing, a directory,
            not HDF5 or damaged; ``trajectories`` missing, a group, empty, complex or not floating, of the
            wrong rank, too large for the available memory, with too few trajectories, samples or state
            coordinates, or with NaN/inf values; ``t`` not real, of the wrong length, not finite or not
            strictly increasing; ``dt`` not a number, not finite or not positive; neither given; an
            attribute unreadable, ``layout`` unknown, text attributes not UTF-8, ``params``/``lyapunov``
            not JSON, numeric ones not numbers, ``schema_version`` newer than :data:`SCHEMA_VERSION`.
    """
    path = Path(path)
    with _open_h5(path) as fh:
        ds = _states_dataset(fh, path)
        _check_states(ds, path)
        X = _read_states(ds, path)
        t = _sample_times(fh, path, X.shape[1])
        layout = _layout(fh, path, X.shape[2])
        attrs = _attributes(fh, path)
    return Trajectories(X, t, layout, attrs)


def _why(e: BaseException) -> str:
    """``"OSError: first line of the message"``, for one-line errors."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _open_h5(path: Path):
    import h5py

    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory; give the trajectory file (.h5) inside it")
    try:
        if not h5py.is_hdf5(path):
            raise DataError(f"{path}: not a readable HDF5 file (no HDF5 signature); write trajectories "
                            f"with h5py (dataset 'trajectories') or `sciml simulate`")
        return h5py.File(path, "r")
    except DataError:
        raise
    except Exception as e:  # truncated or damaged file, no permission
        raise DataError(f"{path}: not a readable HDF5 file ({_why(e)}); re-create it with h5py or "
                        f"`sciml simulate`") from None


def _states_dataset(fh: Any, path: Path) -> Any:
    """The ``trajectories`` dataset object (not yet read)."""
    import h5py

    try:
        obj = fh.get("trajectories")
    except Exception as e:  # a damaged object header or a broken external link
        raise DataError(f"{path}: 'trajectories' cannot be opened ({_why(e)}); re-create the file") from None
    if obj is None:
        raise DataError(f"{path}: missing dataset 'trajectories' (found: {sorted(fh.keys()) or 'nothing'}); "
                        f"store the states as (n_trajectories, n_times, state_dim)")
    if isinstance(obj, h5py.Group):
        raise DataError(f"{path}: 'trajectories' is a group (holding {sorted(obj.keys()) or 'nothing'}), not a "
                        f"dataset; store the states as one array of shape (n_trajectories, n_times, state_dim)")
    if not isinstance(obj, h5py.Dataset):
        raise DataError(f"{path}: 'trajectories' is a {type(obj).__name__}, not a dataset; store the states as "
                        f"one array of shape (n_trajectories, n_times, state_dim)")
    return obj


def _check_states(ds: Any, path: Path) -> None:
    """Dtype, rank, sizes and memory of the ``trajectories`` dataset, from its metadata alone."""
    shape, dtype = ds.shape, ds.dtype
    if shape is None:
        raise DataError(f"{path}: dataset 'trajectories' is empty (no dataspace); store the states as "
                        f"(n_trajectories, n_times, state_dim)")
    if dtype.kind == "c":
        raise DataError(f"{path}: dataset 'trajectories' is complex ({dtype}); the states must be real: store "
                        f"the real and imaginary parts as separate coordinates (nothing is dropped here)")
    if dtype.kind != "f":
        raise DataError(f"{path}: dataset 'trajectories' has dtype {dtype}, not floating point; store the "
                        f"states as float64 (or float32), e.g. X.astype('float64')")
    if len(shape) != 3:
        raise DataError(f"{path}: dataset 'trajectories' has shape {shape} (rank {len(shape)}); expected rank 3 "
                        f"(n_trajectories, n_times, state_dim) - add a leading axis for one trajectory")
    n, T, d = shape
    if n < 2:
        raise DataError(f"{path}: dataset 'trajectories' holds {n} trajectory; at least 2 are needed "
                        f"(one is held out for checking)")
    if T < MIN_TIMES:
        raise DataError(f"{path}: dataset 'trajectories' has {T} time steps; at least {MIN_TIMES} are needed "
                        f"for finite-difference velocities")
    if d < 2:
        raise DataError(f"{path}: dataset 'trajectories' has state dimension {d}; at least 2 is needed for a "
                        f"non-trivial invariant")
    # reading holds the stored array, its float64 copy (unless already float64) and a finiteness mask
    count = n * T * d
    need = count * (dtype.itemsize + (0 if dtype == np.float64 else 8) + 1)
    avail = available_memory()
    if avail is not None and need > avail:
        raise DataError(f"{path}: dataset 'trajectories' declares shape {shape} of {dtype}: reading it needs "
                        f"about {format_bytes(need)}, more than the {format_bytes(avail)} of memory available; "
                        f"store fewer trajectories or samples in a new file (copy a slice with h5py)")


def _read_states(ds: Any, path: Path) -> np.ndarray:
    try:
        X = np.asarray(ds[()], dtype=np.float64)
    except Exception as e:  # damaged chunks, a compression filter h5py lacks
        raise DataError(f"{path}: dataset 'trajectories' cannot be read ({_why(e)}); the file is damaged or "
                        f"uses a filter this h5py lacks - re-create it") from None
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise DataError(f"{path}: dataset 'trajectories' contains {int(bad.sum())} NaN/inf values (in "
                        f"trajectories {rows[:5].tolist()}{'...' if rows.size > 5 else ''}); drop or re-simulate "
                        f"those")
    return X


def _sample_times(fh: Any, path: Path, T: int) -> np.ndarray:
    """``t`` from the dataset ``t`` or the attribute ``dt``, checked."""
    import h5py

    if "t" in fh:
        ds = fh["t"]
        if not isinstance(ds, h5py.Dataset):
            raise DataError(f"{path}: 't' is a {type(ds).__name__}, not a dataset; store the sample times as a "
                            f"1-D array of shape ({T},)")
        if ds.dtype.kind not in "iuf":
            raise DataError(f"{path}: dataset 't' has dtype {ds.dtype}; store the sample times as real numbers "
                            f"(float64)")
        if ds.shape != (T,):
            raise DataError(f"{path}: dataset 't' has shape {ds.shape}; expected ({T},), one time per sample")
        try:
            t = np.asarray(ds[()], dtype=np.float64)
        except Exception as e:
            raise DataError(f"{path}: dataset 't' cannot be read ({_why(e)}); re-create the file") from None
        what = "dataset 't'"
    elif "dt" in fh.attrs:
        dt = _number_attr(fh, "dt", path)
        if not np.isfinite(dt) or dt <= 0:
            raise DataError(f"{path}: attribute 'dt' = {dt}; it must be a finite positive number (the sampling "
                            f"interval)")
        t = np.arange(T) * dt
        what = f"attribute 'dt' = {dt} (times t = k dt)"
    else:
        raise DataError(f"{path}: no sample times; add a dataset 't' of shape ({T},) or a scalar "
                        f"attribute 'dt'")
    if not np.isfinite(t).all():
        raise DataError(f"{path}: {what} gives non-finite times; store finite sample times")
    steps = np.diff(t)
    if not (steps > 0).all():
        k = int(np.argmin(steps > 0)) + 1
        raise DataError(f"{path}: {what} is not strictly increasing (t[{k}] = {t[k]:g} after t[{k - 1}] = "
                        f"{t[k - 1]:g}); store the sample times in order, each later than the one before")
    return t


def _read_attr(fh: Any, key: str, path: Path) -> Any:
    try:
        return fh.attrs[key]
    except Exception as e:  # a datatype h5py cannot map, a damaged attribute message
        raise DataError(f"{path}: attribute {key!r} cannot be read ({_why(e)}); delete it "
                        f"(del fh.attrs[{key!r}]) or re-create the file") from None


def _shown(raw: Any) -> Any:
    """An attribute's value as a message shows it: text decoded, NumPy scalars as Python ones."""
    if isinstance(raw, bytes):
        return raw.decode(errors="replace")
    return raw.item() if isinstance(raw, np.generic) else raw


def _number_attr(fh: Any, key: str, path: Path) -> float:
    """A real scalar attribute as a float (NaN allowed; the caller checks the range)."""
    raw = _read_attr(fh, key, path)
    arr = np.asarray(raw) if isinstance(raw, (int, float, np.generic, np.ndarray)) else None
    if arr is None or arr.dtype.kind not in "iuf" or arr.size != 1:
        shown = _shown(raw)
        raise DataError(f"{path}: attribute {key!r} = {shown!r} is not a number; store a real scalar, e.g. "
                        f"fh.attrs[{key!r}] = 0.05")
    return float(arr.reshape(()))


def _text_attr(fh: Any, key: str, path: Path) -> str:
    raw = _read_attr(fh, key, path)
    if isinstance(raw, bytes):
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise DataError(f"{path}: attribute {key!r} is not UTF-8 text (corrupt?); rewrite it as a string "
                            f"or delete it") from None
    if not isinstance(raw, str):
        raise DataError(f"{path}: attribute {key!r} = {_shown(raw)!r} is not text; rewrite it as a string or delete it")
    return raw


def _layout(fh: Any, path: Path, d: int) -> str:
    layout = _text_attr(fh, "layout", path) if "layout" in fh.attrs else ("qp" if d % 2 == 0 else "none")
    if layout not in ("qp", "none"):
        raise DataError(f"{path}: attribute 'layout' = {layout!r}; use 'qp' (first half q, second half p) "
                        f"or 'none'")
    if layout == "qp" and d % 2:
        raise DataError(f"{path}: layout 'qp' needs an even state dimension, got {d}; set the attribute "
                        f"'layout' to 'none'")
    return layout


_TEXT_ATTRS = ("system", "integrator", "region", "params", "lyapunov")
_JSON_ATTRS = ("params", "lyapunov")
_NUMBER_ATTRS = ("dt", "energy_drift", "seconds")


def _attributes(fh: Any, path: Path) -> dict[str, Any]:
    """Every attribute but ``layout``; the ones the schema defines are checked, others passed through
    (text decoded when it is UTF-8, NumPy scalars as Python numbers)."""
    attrs: dict[str, Any] = {}
    for key in fh.attrs.keys():
        if key == "layout":
            continue
        if key in _TEXT_ATTRS:
            value: Any = _text_attr(fh, key, path)
            if key in _JSON_ATTRS:
                try:
                    json.loads(value)
                except ValueError as e:
                    raise DataError(f"{path}: attribute {key!r} is not valid JSON ({_why(e)}); store it as "
                                    f"json.dumps(...) or delete it") from None
        elif key in _NUMBER_ATTRS:
            value = _number_attr(fh, key, path)
        elif key == "schema_version":
            value = _schema_version(fh, path)
        else:
            value = _read_attr(fh, key, path)
            if isinstance(value, bytes):
                try:
                    value = value.decode()
                except UnicodeDecodeError:
                    pass  # not sciml's: passed through as the bytes stored
            elif isinstance(value, np.generic):
                value = value.item()
        attrs[key] = value
    return attrs


def _schema_version(fh: Any, path: Path) -> int:
    v = _number_attr(fh, "schema_version", path)
    if not (np.isfinite(v) and v == int(v) and v >= 1):
        raise DataError(f"{path}: attribute 'schema_version' = {v:g}; it must be a whole number >= 1 (this sciml "
                        f"writes {SCHEMA_VERSION})")
    if v > SCHEMA_VERSION:
        raise DataError(f"{path}: attribute 'schema_version' = {int(v)}: written by a newer sciml than this one "
                        f"(it reads version {SCHEMA_VERSION}); upgrade sciml")
    return int(v)
