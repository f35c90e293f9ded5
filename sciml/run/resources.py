"""Memory checks before allocation: a run that cannot fit is refused with the numbers, before any
output exists, instead of exhausting the machine or hanging in swap."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import UsageError

__all__ = ["available_memory", "format_bytes", "require_memory"]


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes this process can still allocate on ``device`` (``None``: unknown, so nothing is refused).

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (else the free physical pages), lowered to what the
    cgroup's limit leaves (containers). CUDA: the driver's free memory on that device.
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            avail = min(avail, max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return avail


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: sizes in messages."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def require_memory(nbytes: int, device: torch.device | str = "cpu", *, option: str, what: str, fix: str) -> None:
    """Refuse ``what`` (needing at least ``nbytes``, exact integers so 10^9-sized inputs do not wrap)
    when ``device`` has less memory available.

    Raises:
        UsageError: naming ``option``, both sizes and ``fix``.
    """
    free = available_memory(device)
    if free is not None and int(nbytes) > free:
        raise UsageError(option, f"{what} needs at least {format_bytes(nbytes)}, more than the "
                                 f"{format_bytes(free)} available on {torch.device(device)}; {fix}")
