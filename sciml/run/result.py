"""Results carry a status and a message, never just numbers."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Status", "Result", "DivergenceError", "check_finite"]


class Status(str, enum.Enum):
    SUCCESS = "success"
    DIVERGED = "diverged"      # a loss or parameter went non-finite; last good checkpoint kept
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass
class Result:
    """What a method's entry point returns.

    Attributes:
        status: how the run ended.
        message: one human-readable line (what happened, what to do).
        metrics: final scalar metrics.
        run_dir: the run directory, if one was written.
        artefacts: named paths (results file, plots, checkpoint).
        extra: method-specific objects (trained model, learned callables, ...).
    """

    status: Status
    message: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    artefacts: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS


class DivergenceError(FloatingPointError):
    """Training produced a non-finite value; carries the step and the quantity."""

    def __init__(self, step: int, what: str, value: float):
        self.step, self.what, self.value = step, what, value
        super().__init__(f"step {step}: {what} is {value}; the run diverged (try a smaller learning rate)")


def check_finite(step: int, **values: float) -> None:
    """Raise :class:`DivergenceError` if any value is NaN or infinite."""
    for k, v in values.items():
        v = float(v)
        if not math.isfinite(v):
            raise DivergenceError(step, k, v)
