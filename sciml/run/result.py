"""Results carry a status, a message and a typed payload, never just numbers.

Every wing's run returns ``Result[P]``, ``P`` being that wing's payload (a trained PINN, a discovery,
a score model, a heavy-tail generator); the payload type is documented with the wing's method class.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["Status", "Result", "DivergenceError", "check_finite"]

P = TypeVar("P")


class Status(str, enum.Enum):
    """How a run ended; each status has a meaning, a remedy and a process exit code.

    ==============  =============================================================  =========
    status          meaning                                                        exit code
    ==============  =============================================================  =========
    ``SUCCESS``     every step ran                                                 0
    ``BUDGET``      the wall-clock budget (``max_seconds``) ran out; resumable     0
    ``INTERRUPTED`` stopped early on request (``stop_at``) or by Ctrl-C; resumable 3
    ``DIVERGED``    a loss went non-finite; the last good checkpoint is kept       1
    ``FAILED``      the method could not run to an answer                          1
    ==============  =============================================================  =========
    """

    SUCCESS = "success"
    BUDGET = "budget"
    INTERRUPTED = "interrupted"
    DIVERGED = "diverged"
    FAILED = "failed"

    @property
    def meaning(self) -> str:
        return _MEANING[self]

    @property
    def remedy(self) -> str:
        """What the user can do next (empty for success)."""
        return _REMEDY[self]

    @property
    def exit_code(self) -> int:
        return _EXIT[self]

    @property
    def resumable(self) -> bool:
        return self in (Status.BUDGET, Status.INTERRUPTED)


_MEANING = {
    Status.SUCCESS: "every step ran",
    Status.BUDGET: "the wall-clock budget ran out",
    Status.INTERRUPTED: "stopped before the last step",
    Status.DIVERGED: "a loss or parameter went non-finite",
    Status.FAILED: "the method could not produce an answer",
}
_REMEDY = {
    Status.SUCCESS: "",
    Status.BUDGET: "run the same command with --resume (and a new --max-seconds) to continue",
    Status.INTERRUPTED: "run the same command with --resume to continue from the latest checkpoint",
    Status.DIVERGED: "lower the learning rate (or clip gradients) and start again; the last good "
                     "checkpoint is kept in the run directory",
    Status.FAILED: "see the message; the run directory keeps what was written",
}
_EXIT = {Status.SUCCESS: 0, Status.BUDGET: 0, Status.INTERRUPTED: 3, Status.DIVERGED: 1, Status.FAILED: 1}


@dataclass
class Result(Generic[P]):
    """What :func:`sciml.fit` returns.

    Attributes:
        status: how the run ended (:class:`Status`: its ``remedy`` says what to do next).
        message: one human-readable line (what happened).
        metrics: final scalar metrics.
        run_dir: the run directory, if one was written.
        artefacts: named paths (results file, model, plots, checkpoint).
        payload: the wing's trained object (typed per wing; ``None`` before :meth:`Method.finish`).
        step: steps completed.
        seconds: wall-clock seconds of training in this process (all sessions, with resume).
    """

    status: Status
    message: str
    metrics: dict[str, float] = field(default_factory=dict)
    run_dir: Path | None = None
    artefacts: dict[str, Path] = field(default_factory=dict)
    payload: P | None = None
    step: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == Status.SUCCESS

    @property
    def remedy(self) -> str:
        return self.status.remedy

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


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
