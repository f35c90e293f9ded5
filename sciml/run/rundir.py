"""The run directory every method writes, and checkpoints that survive crashes.

Layout of ``RUN/``::

    config.toml        the resolved config (every default filled in), written at start
    meta.json          sciml/torch versions, device, seed, command, start time, status at the end
    metrics.jsonl      one JSON object per logged step (appended, flushed)
    metrics.h5         the same metrics as arrays, rewritten atomically at checkpoints and at the end
    results.h5         the method's results (arrays + attributes), written atomically
    checkpoints/       ckpt_<step>.pt (atomic), the last ``keep`` of them; ``latest`` is the newest
    *.png              plots
    .lock              while a process writes the run, its pid under an exclusive ``flock``: a second run
                       on the same folder is refused instead of interleaving checkpoints and metrics
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .config import config_to_dict, dump_toml
from .errors import CheckpointError
from .io import atomic_h5, atomic_torch_save, atomic_write_text

__all__ = ["RunDir", "RunLock", "RunInUseError", "read_torch_file"]


class RunInUseError(RuntimeError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``FOLDER/.lock``, held while a process writes the run.

    The kernel drops the lock when its holder exits, killed or not, so a crashed run never blocks the
    next one (``--resume`` after a kill just works). The file holds the holder's pid for the message and is
    removed on release, so a finished run, or a command refused before it wrote anything, leaves no file.
    Removing it is safe because a process that locked a file it then finds unlinked (it opened the file
    just before the holder released it) tries again on the new one. Where ``fcntl`` does not exist
    (Windows) the lock is a no-op.
    """

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`RunInUseError` naming the holder's pid."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunInUseError(f"{self.path.parent} is being written by another run (pid {holder}); wait "
                                    "for it to finish or stop it, or choose another --out") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                self._fd = fd
                return self
            os.close(fd)  # the previous holder removed this file as we locked it: lock the new one
        raise RunInUseError(f"{self.path.parent}: its lock file keeps changing; is another run starting there?")

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is not None:
            try:
                self.path.unlink()  # while still holding it (see the class docstring)
            except FileNotFoundError:
                pass
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def read_torch_file(path: str | Path, map_location: Any = "cpu", *, what: str = "model file") -> Any:
    """``torch.load`` of a file the user points at, with a one-line :class:`CheckpointError` when it is
    missing, truncated or not a torch file (instead of a pickle or zip traceback)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated zip, garbage bytes, foreign pickle: all mean "not a usable file"
        raise CheckpointError(f"{path}: {what} is truncated or not a torch file ({type(e).__name__}); "
                              "it cannot be used: delete it, or point at another run") from None


class RunDir:
    """A run's output folder.

    Args:
        path: the folder (created if missing).
        keep: how many checkpoints to keep (oldest removed first).
    """

    def __init__(self, path: str | Path, *, keep: int = 3):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)
        self.keep = keep
        self.lock: RunLock | None = None  # set by sciml.run.method.open_run, released when fit returns
        self._metrics: dict[str, list[float]] = {}
        self._load_metrics()

    def clean_temporaries(self) -> list[Path]:
        """Remove the temporary files of atomic writes that a kill interrupted (``.NAME.*.tmp``)."""
        gone = [p for folder in (self.path, self.path / "checkpoints") for p in folder.glob(".*.tmp") if p.is_file()]
        for p in gone:
            p.unlink(missing_ok=True)
        return gone

    # --- config and metadata -------------------------------------------------------------------
    def save_config(self, cfg: Any) -> None:
        data = cfg if isinstance(cfg, Mapping) else config_to_dict(cfg)
        atomic_write_text(self.path / "config.toml", dump_toml(data))

    def write_meta(self, **info: Any) -> None:
        meta = self.read_meta()
        meta.update(info)
        atomic_write_text(self.path / "meta.json", json.dumps(meta, indent=1, default=str))

    def read_meta(self) -> dict[str, Any]:
        p = self.path / "meta.json"
        return json.loads(p.read_text()) if p.exists() else {}

    # --- metrics -------------------------------------------------------------------------------
    def _load_metrics(self) -> None:
        p = self.path / "metrics.jsonl"
        if p.exists():
            for line in p.read_text().splitlines():
                if line.strip():
                    self._append(json.loads(line))

    def _append(self, row: Mapping[str, Any]) -> None:
        n = len(next(iter(self._metrics.values()))) if self._metrics else 0
        for k, v in row.items():
            col = self._metrics.setdefault(k, [math.nan] * n)
            col.append(float(v))
        for k, col in self._metrics.items():
            if len(col) < n + 1:
                col.append(math.nan)

    def log_metrics(self, step: int, **values: float) -> None:
        """Append one row (``step`` plus named scalars) to ``metrics.jsonl``."""
        row = {"step": int(step), **{k: float(v) for k, v in values.items()}}
        self._append(row)
        with open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")

    def truncate_metrics(self, after_step: int) -> None:
        """Drop metric rows logged after ``after_step`` (used on resume from an older checkpoint)."""
        if "step" not in self._metrics:
            return
        keep = [i for i, s in enumerate(self._metrics["step"]) if s <= after_step]
        self._metrics = {k: [v[i] for i in keep] for k, v in self._metrics.items()}
        rows = [{k: v[i] for k, v in self._metrics.items() if not math.isnan(v[i])} for i in range(len(keep))]
        for r in rows:
            r["step"] = int(r["step"])
        atomic_write_text(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self._metrics.items()}

    def flush_metrics(self) -> None:
        """Write all metrics as arrays to ``metrics.h5`` (atomically)."""
        with atomic_h5(self.path / "metrics.h5") as fh:
            for k, v in self.metrics.items():
                fh[k] = v

    # --- results -------------------------------------------------------------------------------
    def write_results(self, arrays: Mapping[str, Any], attrs: Mapping[str, Any] | None = None,
                      name: str = "results.h5") -> Path:
        """Write arrays (tensors or numpy; nested dicts become groups) and attributes atomically."""
        path = self.path / name

        def put(group, d):
            for k, v in d.items():
                if isinstance(v, Mapping):
                    put(group.create_group(k), v)
                else:
                    if hasattr(v, "detach"):
                        v = v.detach().cpu().numpy()
                    group[k] = np.asarray(v)

        with atomic_h5(path) as fh:
            put(fh, arrays)
            for k, v in (attrs or {}).items():
                fh.attrs[k] = v if not isinstance(v, (dict, list)) else json.dumps(v)
        return path

    # --- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        return sorted((self.path / "checkpoints").glob("ckpt_*.pt"), key=lambda p: int(p.stem.split("_")[1]))

    def save_checkpoint(self, state: Mapping[str, Any], step: int) -> Path:
        """Save ``state`` (anything ``torch.save`` takes) atomically; keep the newest ``keep``."""
        path = self.path / "checkpoints" / f"ckpt_{int(step)}.pt"
        atomic_torch_save({"step": int(step), "time": time.time(), **state}, path)
        for old in self.checkpoints()[: -self.keep]:
            old.unlink(missing_ok=True)
        self.flush_metrics()
        return path

    def latest_checkpoint(self) -> Path | None:
        ck = self.checkpoints()
        return ck[-1] if ck else None

    def load_checkpoint(self, path: str | Path | None = None, map_location: Any = "cpu") -> dict[str, Any] | None:
        """The checkpoint at ``path`` (default: the newest), ``None`` if there is none.

        Raises:
            CheckpointError: the file is truncated or not a checkpoint (naming the previous one to use).
        """
        path = Path(path) if path is not None else self.latest_checkpoint()
        if path is None:
            return None
        state = read_torch_file(path, map_location, what="checkpoint")
        if not isinstance(state, Mapping) or "step" not in state:
            raise CheckpointError(f"{path}: not a checkpoint of a sciml run (no step); {self._fallback(path)}")
        return dict(state)

    def _fallback(self, path: Path) -> str:
        older = [p for p in self.checkpoints() if p != path and int(p.stem.split("_")[1]) < int(path.stem.split("_")[1])]
        if older:
            return f"delete it to resume from {older[-1].name}, the previous checkpoint"
        return "delete it and start the run again (it is the only checkpoint)"

    def describe(self) -> str:
        """Which run this is, for messages: the command and start time in ``meta.json``."""
        meta = self.read_meta()
        return f"written by `sciml {meta.get('command', '?')}` started {meta.get('started', '?')}"
