"""The error policy: a :class:`UserError` is something the user can fix (a bad file, value, path or
device); every command prints it as one line and exits with status 2, before any output is created.
Anything else is a bug and keeps its traceback.

Subclasses say which input is wrong; the message always names the option, key or file, and the fix.
"""

from __future__ import annotations

__all__ = ["UserError", "UsageError", "CheckpointError"]


class UserError(ValueError):
    """Base class of every error the user can fix; ``str(err)`` is the one-line message."""


class UsageError(UserError):
    """A command-line option or argument has a value that cannot work.

    Args:
        option: the option as the user typed it (``--threads``) or the argument's name.
        message: what is wrong and what to do.
    """

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(f"{option}: {message}")


class CheckpointError(UserError):
    """A checkpoint or model file is unreadable (truncated, not a checkpoint) or belongs to another run;
    the message names the file, the run that wrote it when known, and what to do."""
