"""Seeds, devices, progress bars and logging: the small things every run needs."""

from __future__ import annotations

import logging
import os
import random
import sys
from typing import Iterable, Iterator, TypeVar

import numpy as np
import torch

from .errors import UserError

__all__ = ["seed_everything", "resolve_device", "progress", "get_logger", "setup_logging", "DeviceError",
           "tune_allocator"]

T = TypeVar("T")


class DeviceError(UserError):
    """The requested device is not available."""


def seed_everything(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh ``torch.Generator`` on ``device`` seeded with ``seed``.

    Methods draw their randomness from the returned generator (passed explicitly), so a run is
    reproducible from its config and seed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator(device=device).manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (cuda if available) -> ``torch.device``.

    Raises:
        DeviceError: cuda asked for but absent, with what to do about it.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {name}: not a device; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {name}: torch {torch.__version__} sees no CUDA device "
            f"(a CPU build, or no GPU/driver). Use --device cpu, or install a CUDA build of torch."
        )
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: supported devices are cpu, cuda, cuda:N and auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", disable: bool | None = None,
             initial: int = 0) -> Iterator[T]:
    """A tqdm progress bar on stderr, off when stderr is not a terminal or ``SCIML_PROGRESS=0``."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = os.environ.get("SCIML_PROGRESS", "") == "0" or not sys.stderr.isatty()
    return iter(tqdm(iterable, total=total, desc=desc, disable=disable, initial=initial, leave=False,
                     dynamic_ncols=True))


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("sciml") else f"sciml.{name}")


class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a record is emitted, not the one it was
    made with: a notebook or a test harness replaces (and may close) ``sys.stderr``, and a handler holding
    the old one prints a "Logging error" traceback for every later record."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001  (StreamHandler.__init__ assigns it)
        pass


def setup_logging(level: str = "INFO", logfile: str | os.PathLike | None = None) -> None:
    """Log to stderr (and to ``logfile`` if given) with one compact format."""
    root = logging.getLogger("sciml")
    root.setLevel(level.upper())
    fmt = logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s", "%H:%M:%S")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in root.handlers):
        h = _StderrHandler()
        h.setFormatter(fmt)
        root.addHandler(h)
    if logfile is not None:
        fh = logging.FileHandler(logfile)
        fh.setFormatter(fmt)
        root.addHandler(fh)


_ALLOCATOR_TUNED: bool | None = None


def tune_allocator(threshold: int = 1 << 30) -> bool:
    """Keep freed memory in the process instead of returning it to the OS after every step (glibc only).

    A training step on CPU allocates and frees the same large tensors every iteration. With glibc's
    defaults, blocks above the (dynamic) mmap threshold, and free memory at the top of the heap above
    the trim threshold, go back to the kernel on ``free`` and come back as fresh zeroed pages on the
    next ``malloc``: measured here, 15,000 page faults per PINN step (4 x 128 tanh MLP, d = 10,
    2,000 points), a quarter of the step's time. Raising both thresholds to ``threshold`` makes the
    pages stay mapped (about 200 faults per step); the cost is that the process keeps up to
    ``threshold`` bytes of freed memory. This is what jemalloc/tcmalloc, often recommended for CPU
    PyTorch, achieve by other means.

    Called by :func:`sciml.run.train_loop` and the ``sciml`` command line; set ``SCIML_TUNE_MALLOC=0``
    to keep the allocator's defaults. Idempotent; a no-op (returning False) off glibc.

    Returns:
        Whether the thresholds are set.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is not None:
        return _ALLOCATOR_TUNED
    _ALLOCATOR_TUNED = False
    if os.environ.get("SCIML_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, int(threshold))) and bool(
            libc.mallopt(m_trim_threshold, int(threshold)))
    except (OSError, AttributeError):
        pass
    return _ALLOCATOR_TUNED
