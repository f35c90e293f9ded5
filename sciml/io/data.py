"""Shared helpers for reading user data files (samples, trajectories) with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..run.errors import UserError

__all__ = ["DataError", "load_array", "require_dataset"]


class DataError(UserError):
    """A data file is missing, malformed or has bad values; the message names the problem and the fix."""


def require_dataset(fh: Any, name: str, path: str | Path) -> np.ndarray:
    """Read dataset ``name`` from an open h5py file or raise :class:`DataError` naming what is there."""
    if name not in fh:
        raise DataError(f"{path}: missing dataset '{name}' (found: {sorted(fh.keys()) or 'nothing'})")
    return np.asarray(fh[name][()])


def load_array(path: str | Path, *, dataset: str = "samples", ndim: int | tuple[int, ...] | None = None,
               min_rows: int = 1, finite: bool = True) -> np.ndarray:
    """Load an array from ``.npy``/``.npz`` or HDF5 (dataset ``dataset``) and validate it.

    Args:
        path: file path; the suffix decides the reader (.npy, .npz, .h5/.hdf5).
        dataset: HDF5 dataset / npz key to read.
        ndim: required number of dimensions (or allowed set).
        min_rows: fewest entries along the first axis.
        finite: reject NaN or inf.

    Raises:
        DataError: with the path, the problem and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if dataset not in z:
                    raise DataError(f"{path}: missing array '{dataset}' (found: {sorted(z.files)})")
                arr = z[dataset]
        elif suffix in (".h5", ".hdf5", ".hdf"):
            import h5py

            with h5py.File(path, "r") as fh:
                arr = require_dataset(fh, dataset, path)
        else:
            raise DataError(f"{path}: unknown file type '{suffix}'; use .npy, .npz or .h5")
    except DataError:
        raise
    except Exception as e:  # corrupt file, wrong format
        raise DataError(f"{path}: cannot be read as {suffix} ({type(e).__name__}: {e})") from None
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: '{dataset}' has non-numeric dtype {arr.dtype}")
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and arr.ndim not in allowed:
        raise DataError(f"{path}: '{dataset}' has shape {arr.shape} (rank {arr.ndim}); expected rank "
                        f"{' or '.join(map(str, allowed))}")
    if arr.shape[0] < min_rows:
        raise DataError(f"{path}: '{dataset}' has {arr.shape[0]} rows; at least {min_rows} are needed")
    if finite and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"{path}: '{dataset}' contains {bad} NaN/inf values; clean or drop those rows")
    return arr
