"""Seeds, devices, progress bars and logging: the small things every run needs."""

from __future__ import annotations

import logging
import os
import random
import sys
from typing import Iterable, Iterator, TypeVar

import numpy as np
import torch

__all__ = ["seed_everything", "resolve_device", "progress", "get_logger", "setup_logging", "DeviceError"]

T = TypeVar("T")


class DeviceError(RuntimeError):
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
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"--device {name}: torch {torch.__version__} sees no CUDA device "
            f"(a CPU build, or no GPU/driver). Use --device cpu, or install a CUDA build of torch."
        )
    if dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {name}: supported devices are cpu, cuda, cuda:N and auto")
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


def setup_logging(level: str = "INFO", logfile: str | os.PathLike | None = None) -> None:
    """Log to stderr (and to ``logfile`` if given) with one compact format."""
    root = logging.getLogger("sciml")
    root.setLevel(level.upper())
    fmt = logging.Formatter("%(asctime)s %(levelname).1s %(name)s: %(message)s", "%H:%M:%S")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(fmt)
        root.addHandler(h)
    if logfile is not None:
        fh = logging.FileHandler(logfile)
        fh.setFormatter(fmt)
        root.addHandler(fh)
