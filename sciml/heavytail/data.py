"""Training data and sizes: validated samples, their fingerprint, and the memory estimate with which a
run that cannot fit is refused (:func:`sciml.run.require_memory`) before anything is allocated.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..io import DataError

if TYPE_CHECKING:
    from .config import HeavyTailConfig

__all__ = ["MIN_ROWS", "prepare_data", "fingerprint", "training_bytes"]

#: fewest samples a run accepts: fewer cannot show a tail (the Hill estimate uses the top 2%, at least 10)
MIN_ROWS = 50


def prepare_data(data: Any, *, min_rows: int = MIN_ROWS, source: str = "data") -> np.ndarray:
    """Validate samples: a finite real array ``(n,)`` or ``(n, D)`` with at least ``min_rows`` rows.

    Returns:
        The samples as float64 ``(n, D)``.

    Raises:
        DataError: naming ``source`` (the file, for the CLI), what is wrong and the fix.
    """
    arr = np.asarray(data)
    if np.iscomplexobj(arr):
        raise DataError(f"{source}: complex samples (dtype {arr.dtype}); give real values, e.g. stack the real "
                        "and imaginary parts as two columns")
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_:
        raise DataError(f"{source}: non-numeric samples (dtype {arr.dtype}); give an array of real numbers")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{source}: samples must have shape (n,) or (n, D), got {arr.shape}")
    if arr.shape[0] < min_rows:
        raise DataError(f"{source}: {arr.shape[0]} samples; at least {min_rows} are needed to see a tail")
    if arr.shape[1] < 1:
        raise DataError(f"{source}: samples of dimension 0 (shape {arr.shape}); give at least one column")
    if not np.isfinite(arr).all():
        raise DataError(f"{source}: {int((~np.isfinite(arr)).sum())} NaN/inf values; drop those rows")
    return arr.astype(np.float64)


def fingerprint(data: np.ndarray) -> str:
    """A short hash of the samples (shape and values), saved in checkpoints so that a run is resumed on
    the data it was started with."""
    h = hashlib.blake2b(digest_size=12)
    h.update(str(data.shape).encode())
    h.update(np.ascontiguousarray(data, dtype=np.float64).tobytes())
    return h.hexdigest()


def _mlp_params(n_in: int, width: int, depth: int, n_out: int) -> int:
    return n_in * width + width + (depth - 1) * (width * width + width) + width * n_out + n_out


def training_bytes(cfg: "HeavyTailConfig", n: int, dim: int) -> int:
    """A lower bound on the memory of a run on ``n`` samples of dimension ``dim`` (a torch element is
    the default dtype's size ``e``): the data (float64 and the tensor), parameters with their gradients
    and Adam moments, the particles, a batch's activations, and the samples drawn for the metrics.

    Exact integers (no overflow): ``dim = 10**9`` gives petabytes, not a wrapped-around number.
    """
    from .strategies import MODELS

    e = torch.finfo(torch.get_default_dtype()).bits // 8
    n, dim = int(n), int(dim)
    bs = min(cfg.batch or n, n)
    total = n * dim * (8 + e)
    adversarial = MODELS[cfg.model].adversarial
    n_final = cfg.n_samples
    if adversarial:
        c = cfg.critic
        total += 4 * e * _mlp_params(dim, c.width, c.depth, 1) + 6 * e * bs * (dim + c.width * c.depth)
    if cfg.model == "gan":
        g = cfg.gan
        total += 4 * e * _mlp_params(g.latent_dim or dim, g.width, g.depth, dim) + 4 * e * bs * g.width * g.depth
    elif cfg.model == "particles":
        n_p = cfg.particles.n_particles or n
        # the particles, their new positions, and the critic's input gradient at every particle
        total += 3 * e * n_p * (dim + cfg.critic.width * cfg.critic.depth)
        n_final = min(n_final, n_p)
    elif cfg.model == "flow":
        f = cfg.flow
        total += 4 * e * _mlp_params(dim + 1, f.width, f.depth, 1)
        passes = dim if f.divergence == "exact" else f.probes  # one pass per dimension for the exact trace
        total += 4 * f.n_steps * e * bs * passes * (dim + f.width * f.depth)
    return total + n_final * dim * (e + 16)
