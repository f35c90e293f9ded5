"""Derived seeds: independent random streams from one run seed, by name instead of by arithmetic.

``seed + 1`` or ``seed * 7919 + k`` make streams of different runs collide (run 0's second stream is
run 1's first); a hash of the seed and the stream's name does not.
"""

from __future__ import annotations

import hashlib

import torch

__all__ = ["derive_seed", "derived_generator"]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for the stream named by ``keys`` of the run seeded with ``seed``.

    ``derive_seed(0, "points")`` and ``derive_seed(0, "candidate", 3)`` are fixed numbers (tests rely
    on that), different for every seed and every key sequence. Keys are turned into text, so
    ``("candidate", 3)`` and ``("candidate", "3")`` name the same stream.
    """
    text = "\x1f".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def derived_generator(seed: int, *keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed`."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))
