"""Training samples for a score model: checks of a tensor, and the reader of sample files.

Samples are ``(N, D)`` vectors or ``(N, C, H, W)`` images (a file's ``(N, H, W)`` gets one channel).
Files are read by :func:`sciml.io.load_array`, which refuses a malformed file before reading it
(missing dataset, a group instead of a dataset, complex or non-numeric dtype, a declared size beyond
memory or beyond the file); the checks here are the ones that concern samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..io import DataError, load_array

__all__ = ["check_samples", "load_samples"]


def check_samples(data: Any, *, where: str = "data") -> Tensor:
    """``data`` as a real float tensor of at least two distinct, finite samples, or a :class:`DataError`.

    Args:
        data: a tensor or array ``(N, *event_shape)``.
        where: what to call it in messages (a file name, ``data``).
    """
    if isinstance(data, np.ndarray):
        if data.dtype.kind not in "iuf":
            raise DataError(f"{where}: samples of dtype {data.dtype}; expected real numbers")
        data = torch.as_tensor(data)
    if not isinstance(data, Tensor):
        raise DataError(f"{where}: expected samples as a tensor (N, D) or (N, C, H, W), got {type(data).__name__}")
    if data.is_complex() or data.dtype == torch.bool:
        raise DataError(f"{where}: samples of dtype {data.dtype}; expected real numbers")
    if data.dim() < 2:
        raise DataError(f"{where}: samples of shape {tuple(data.shape)} (rank {data.dim()}); expected (N, D) "
                        "vectors or (N, C, H, W) images")
    if data.shape[0] < 2 or data[0].numel() < 1:
        raise DataError(f"{where}: {data.shape[0]} samples of shape {tuple(data.shape[1:])}; at least 2 non-empty "
                        "samples are needed")
    if not torch.isfinite(data).all():
        raise DataError(f"{where}: {int((~torch.isfinite(data)).sum())} NaN/inf values; clean or drop those rows")
    flat = data.reshape(data.shape[0], -1)
    if bool((flat == flat[:1]).all()):
        raise DataError(f"{where}: all samples are identical; nothing to learn")
    return data.to(torch.get_default_dtype()) if not data.is_floating_point() else data


def load_samples(path: str | Path, *, dataset: str = "samples", min_rows: int = 10) -> Tensor:
    """Samples (N, D) or images (N, C, H, W) / (N, H, W) from .npy/.npz/.h5, validated.

    Raises:
        sciml.io.DataError: missing or malformed file, wrong rank, NaN/inf values, too few samples,
        odd image sizes, identical samples.
    """
    arr = load_array(path, dataset=dataset, ndim=(2, 3, 4), min_rows=min_rows, finite=True)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim == 2 and arr.shape[1] < 1:
        raise DataError(f"{path}: '{dataset}' has zero columns; expected (N, D) samples")
    if arr.ndim == 4 and (arr.shape[-1] % 2 or arr.shape[-2] % 2):
        raise DataError(f"{path}: images of shape {arr.shape[1:]} need even height and width (the U-Net "
                        "halves them); pad or crop them")
    data = torch.as_tensor(arr, dtype=torch.get_default_dtype())
    return check_samples(data, where=f"{path}: '{dataset}'")
