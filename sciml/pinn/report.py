"""What a PINN run leaves behind: ``results.h5`` (atomic), the model file, and two plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sciml.run import RunDir, atomic_torch_save, config_to_dict

from .problem import Ball, is_stationary
from .solver import Trainer, predict, predict_stationary

__all__ = ["radial_slice", "write_run_outputs", "save_model", "plot_errors", "plot_slice"]


@torch.no_grad()
def radial_slice(trainer: Trainer, n: int = 201, t: float | None = None, theta=None, problem=None
                 ) -> dict[str, np.ndarray]:
    """Prediction and exact solution along ``x = r e_1``, r in [0, R] (ball) or the box diagonal, at time t
    (no time for a stationary problem)."""
    prob = trainer.problem if problem is None else problem
    stationary = is_stationary(prob)
    t = 0.0 if stationary else prob.t_range[1] if t is None else t
    dt = trainer.points.x_in.dtype
    dev = trainer.device
    s = torch.linspace(0, 1, n, device=dev, dtype=dt)
    if isinstance(prob.domain, Ball):
        x = prob.domain.center_tensor(dev, dt) + prob.domain.radius * s[:, None] * torch.eye(prob.d, device=dev, dtype=dt)[0]
    else:
        lo = torch.tensor(prob.domain.low, device=dev, dtype=dt)
        hi = torch.tensor(prob.domain.high, device=dev, dtype=dt)
        x = lo + s[:, None] * (hi - lo)
    tt = torch.full_like(s, t)
    params = trainer.par.params(theta)
    if stationary:
        u = predict_stationary(trainer.module, params, x, hard=prob.hard)
    else:
        u = predict(trainer.module, params, tt, x, t_shift=trainer.t_shift, hard=prob.hard)
    out = {"s": s.cpu().numpy(), "t": np.float64(t), "u_pred": u.cpu().numpy()}
    if prob.exact is not None:
        out["u_exact"] = (prob.exact(x) if stationary else prob.exact(tt, x)).cpu().numpy()
    return out


def plot_errors(path: Path, curves: Mapping[str, tuple[Sequence[int], Sequence[float]]], title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (steps, err) in curves.items():
        ax.semilogy(steps, err, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("relative L2 error  ||e|| / ||u||")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_slice(path: Path, slices: Mapping[str, Mapping[str, np.ndarray]], title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (label, sl) in enumerate(slices.items()):
        c = f"C{i}"
        if "u_exact" in sl:
            ax.plot(sl["s"], sl["u_exact"], color=c, lw=3, alpha=0.35, label=f"{label} exact")
        ax.plot(sl["s"], sl["u_pred"], color=c, ls="--", label=f"{label} PINN")
    ax.set_xlabel("r  (x = r e_1)")
    ax.set_ylabel("u")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def save_model(path: Path, module: nn.Module, params: Mapping[str, torch.Tensor], cfg: Any,
               meta: Mapping[str, Any] | None = None) -> Path:
    """The trained network's parameters, config and ``meta`` (its writer, history, ...), atomically: what
    ``PINN.load`` and ``pinn transfer --from`` read."""
    atomic_torch_save({"params": {k: v.detach().cpu() for k, v in params.items()},
                       "config": config_to_dict(cfg), "meta": dict(meta or {})}, path)
    return path


def write_run_outputs(run: RunDir, trainer: Trainer, result, *, label: str = "pinn",
                      attrs: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """results.h5 (error history, radial slices, final metrics), errors.png, slice.png.

    A family run (``trainer.objective.family``) has one slice per member at the final time, and the
    members' error histories in ``member_history``.
    """
    hist = np.asarray(trainer.history, dtype=float).reshape(-1, 3)
    if is_stationary(trainer.problem):
        slices = {"stationary": radial_slice(trainer)}
    elif trainer.objective.family:
        t1 = trainer.problem.t_range[1]  # one slice per member at t1, from its own slice of the stacked parameters
        slices = {m.name: radial_slice(trainer, t=t1, problem=m, theta={n: v[k] for n, v in trainer.par.theta.items()})
                  for k, m in enumerate(trainer.members)}
    else:
        slices = {f"t={t:g}": radial_slice(trainer, t=t) for t in trainer.problem.t_range}
    arrays: dict[str, Any] = {"history": {"step": hist[:, 0], "rel_l2": hist[:, 1], "rel_l2_sq": hist[:, 2]},
                              "slice": {f"slice_{i}": v for i, v in enumerate(slices.values())}}
    if trainer.member_history:
        arrays["member_history"] = {"step": np.array([s for s, _ in trainer.member_history]),
                                    "rel_l2": np.array([e for _, e in trainer.member_history])}
    a = {"status": result.status.value, "message": result.message, "problem": trainer.problem.name,
         "method": label, "slice_labels": list(slices), "n_trainable": int(trainer.par.n_trainable),
         "train_seconds": float(trainer.train_seconds),
         **{f"final_{k}": float(v) for k, v in result.metrics.items()}, **dict(attrs or {})}
    out = {"results": run.write_results(arrays, a)}
    if hist.size:
        out["errors_plot"] = plot_errors(run.path / "errors.png", {label: (hist[:, 0], hist[:, 1])},
                                         trainer.problem.name)
    out["slice_plot"] = plot_slice(run.path / "slice.png", slices, f"{trainer.problem.name}: radial slice")
    return out
