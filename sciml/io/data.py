"""Shared helpers for reading user data files (samples, trajectories) with clear errors.

:func:`load_array` is the one reader of array files: it looks at what a file *declares* (shape,
dtype, a group or a dataset) before it reads anything, so a file that claims more data than memory
holds, or more than it contains, is refused with the numbers instead of being read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..run.errors import UserError
from ..run.resources import available_memory, format_bytes

__all__ = ["DataError", "load_array", "require_dataset", "dataset_node", "available_memory", "format_bytes"]


class DataError(UserError):
    """A data file is missing, malformed or has bad values; the message names the problem and the fix."""


def require_dataset(fh: Any, name: str, path: str | Path) -> np.ndarray:
    """Read dataset ``name`` from an open h5py file or raise :class:`DataError` naming what is there."""
    return np.asarray(dataset_node(fh, name, path)[()])


def dataset_node(fh: Any, name: str, path: str | Path) -> Any:
    """The h5py dataset ``name`` of an open file (not read yet), or a :class:`DataError` naming what is there.

    Raises:
        DataError: ``name`` is missing, or is a group (a folder of datasets) rather than a dataset.
    """
    import h5py

    if name not in fh:
        raise DataError(f"{path}: missing dataset '{name}' (found: {sorted(fh.keys()) or 'nothing'})")
    node = fh[name]
    if not isinstance(node, h5py.Dataset):
        inside = sorted(node.keys()) if isinstance(node, h5py.Group) else []
        raise DataError(f"{path}: '{name}' is a group, not a dataset (it holds {inside or 'nothing'}); store the "
                        f"array itself as '{name}', or pass --dataset {name}/<one of those>")
    return node


def _npy_header(fh: Any) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an open ``.npy`` stream's header (nothing of the data is read)."""
    major, _ = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(fh)
    return tuple(shape), np.dtype(dtype)


def _declared(path: Path, suffix: str, dataset: str) -> tuple[tuple[int, ...], np.dtype, int | None]:
    """``(shape, dtype, bytes the file holds for it or None)`` from the file's header alone."""
    if suffix == ".npy":
        with open(path, "rb") as fh:
            shape, dtype = _npy_header(fh)
            return shape, dtype, path.stat().st_size - fh.tell()
    if suffix == ".npz":
        import zipfile

        with zipfile.ZipFile(path) as z:
            names = [n[:-4] if n.endswith(".npy") else n for n in z.namelist()]
            if dataset not in names:
                raise DataError(f"{path}: missing array '{dataset}' (found: {sorted(names)})")
            info = z.getinfo(dataset + ".npy" if dataset + ".npy" in z.namelist() else dataset)
            with z.open(info) as fh:
                shape, dtype = _npy_header(fh)
                return shape, dtype, None  # compressed members: the size check happens on reading
    import h5py

    with h5py.File(path, "r") as fh:
        ds = dataset_node(fh, dataset, path)
        return tuple(ds.shape), ds.dtype, None


def _read(path: Path, suffix: str, dataset: str) -> np.ndarray:
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return z[dataset]
    import h5py

    with h5py.File(path, "r") as fh:
        return require_dataset(fh, dataset, path)


def _check_declared(path: Path, dataset: str, shape: tuple[int, ...], dtype: np.dtype, stored: int | None,
                    max_bytes: int | None) -> None:
    """Refuse before reading: a dtype that is not real numbers, a size beyond ``max_bytes`` or beyond
    what the file holds."""
    if dtype.kind == "c":
        raise DataError(f"{path}: '{dataset}' has complex dtype {dtype}; expected real numbers (store the real "
                        "and imaginary parts as separate columns)")
    if dtype.kind not in "iuf":
        raise DataError(f"{path}: '{dataset}' has non-numeric dtype {dtype}; expected integers or floats")
    size = math.prod(shape) * dtype.itemsize
    limit = available_memory() if max_bytes is None else max_bytes
    if limit is not None and size > limit:
        raise DataError(f"{path}: '{dataset}' declares shape {shape} of {dtype} = {format_bytes(size)}, more than "
                        f"the {format_bytes(limit)} of memory available to read it; use a subset of the rows")
    if stored is not None and size > stored:
        raise DataError(f"{path}: truncated: '{dataset}' declares shape {shape} of {dtype} ({size} bytes) but "
                        f"the file holds {stored} bytes of data; write the file again")


def load_array(path: str | Path, *, dataset: str = "samples", ndim: int | tuple[int, ...] | None = None,
               min_rows: int = 1, finite: bool = True, max_bytes: int | None = None) -> np.ndarray:
    """Load an array from ``.npy``/``.npz`` or HDF5 (dataset ``dataset``) and validate it.

    The header is checked first (nothing large is read for a file that is refused): the dtype must be
    real numbers (integer or float; not complex, text, object or boolean), ``dataset`` must be a
    dataset (not an HDF5 group), and the declared size must fit in ``max_bytes`` and, for ``.npy``,
    in the file itself.

    Args:
        path: file path; the suffix decides the reader (.npy, .npz, .h5/.hdf5).
        dataset: HDF5 dataset / npz key to read.
        ndim: required number of dimensions (or allowed set).
        min_rows: fewest entries along the first axis.
        finite: reject NaN or inf.
        max_bytes: largest array to read (default: the memory available now, :func:`available_memory`).

    Raises:
        DataError: with the path, the problem and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".h5", ".hdf5", ".hdf"):
        raise DataError(f"{path}: unknown file type '{suffix}'; use .npy, .npz or .h5")
    try:
        shape, dtype, stored = _declared(path, suffix, dataset)
        _check_declared(path, dataset, shape, dtype, stored, max_bytes)
        arr = _read(path, suffix, dataset)
    except DataError:
        raise
    except Exception as e:  # corrupt file, wrong format, a text file with a data suffix
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DataError(f"{path}: cannot be read as {suffix} ({type(e).__name__}: {first})") from None
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if allowed is not None and arr.ndim not in allowed:
        raise DataError(f"{path}: '{dataset}' has shape {arr.shape} (rank {arr.ndim}); expected rank "
                        f"{' or '.join(map(str, allowed))}")
    if arr.ndim == 0 or arr.shape[0] < min_rows:
        rows = arr.shape[0] if arr.ndim else 0
        raise DataError(f"{path}: '{dataset}' has {rows} rows; at least {min_rows} are needed")
    if finite and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"{path}: '{dataset}' contains {bad} NaN/inf values; clean or drop those rows")
    return arr
