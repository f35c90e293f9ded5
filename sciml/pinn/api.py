"""Entry points: :func:`train` a PINN from a config (or a problem), :func:`load_pretrained` a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from sciml.run import ConfigError, Result, RunDir, Status, load_config, resolve_device, seed_everything
from sciml.run.distributed import DistContext

from .config import PINNConfig
from .network import build_network
from .problem import PDEProblem
from .report import write_run_outputs
from .solver import Trainer, identity_parametrisation

__all__ = ["problem_from_config", "train", "Pretrained", "load_pretrained", "device_and_dist"]


def problem_from_config(cfg: PINNConfig, value: float | None = None) -> PDEProblem:
    """The family member named by ``cfg.problem`` (``value`` overrides the family parameter)."""
    from problems.pdes import family_member

    from .solver import with_hard_constraints

    p = cfg.problem
    return with_hard_constraints(family_member(p.family, p.value if value is None else value, p.d), cfg.loss.hard)


def _dtype(cfg: PINNConfig) -> torch.dtype:
    return torch.float64 if cfg.dtype == "float64" else torch.float32


def train(cfg: PINNConfig, *, problem: PDEProblem | None = None, run_dir: str | Path | None = None,
          device: str | torch.device = "cpu", resume: bool = False, stop_at: int | None = None,
          dist: DistContext | None = None) -> Result:
    """Train a PINN from scratch.

    Args:
        cfg: the run config (``cfg.problem`` is used unless ``problem`` is given).
        problem: a user-defined :class:`PDEProblem` (its ``d`` must match the network input ``d + 1``).
        run_dir: where metrics, checkpoints, ``results.h5``, ``model.pt`` and plots go (``None``: nothing).
        resume: continue from the run directory's latest checkpoint.
        stop_at: stop after this many steps (simulates an interruption).
        dist: data parallelism from :func:`sciml.run.distributed.init_distributed` (its device is used;
            only rank 0 writes ``run_dir``).

    Returns:
        Result; ``extra["trainer"]`` holds the trainer (network, parameters, history).
    """
    device, dist = device_and_dist(device, dist)
    if problem is None:
        problem = problem_from_config(cfg)
    elif problem.hard is None:
        from .solver import with_hard_constraints

        problem = with_hard_constraints(problem, cfg.loss.hard)
    seed_everything(cfg.seed)
    module = build_network(problem.d + 1, cfg.model.widths, cfg.model.activation).to(device=device, dtype=_dtype(cfg))
    trainer = Trainer(problem, module, identity_parametrisation(module), cfg, device=device, dist=dist)
    run = RunDir(run_dir) if run_dir is not None and dist.is_main else None
    if run is not None:
        run.save_config(cfg)
        run.write_meta(command="pinn train", problem=problem.name, device=str(device), seed=cfg.seed,
                       n_trainable=trainer.par.n_trainable, world_size=dist.world_size)
    res = trainer.fit(run, resume=resume, stop_at=stop_at, desc=f"pinn {problem.name}")
    res.extra["trainer"] = trainer
    if run is not None and res.status in (Status.SUCCESS, Status.INTERRUPTED):
        res.artefacts.update(write_run_outputs(run, trainer, res, cfg, label="pinn"))
        run.write_meta(status=res.status.value, message=res.message, compiled=trainer.compiled,
                       **{k: v for k, v in res.metrics.items()})
    return res


def device_and_dist(device: str | torch.device, dist: DistContext | None) -> tuple[torch.device, DistContext]:
    """The device to run on (the distributed context's when there is one) and the context."""
    if dist is not None:
        return dist.device, dist
    device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
    return device, DistContext(device=device)


@dataclass(frozen=True)
class Pretrained:
    """A trained network: the module (structure), its parameters, and the config it was trained with."""

    module: nn.Module
    params: Mapping[str, torch.Tensor]
    cfg: PINNConfig


def load_pretrained(run_dir: str | Path, device: str | torch.device = "cpu") -> Pretrained:
    """Read ``RUN/model.pt`` written by :func:`train`.

    Raises:
        ConfigError: the folder has no ``model.pt`` (not a finished ``pinn train`` run).
    """
    path = Path(run_dir) / "model.pt"
    if not path.is_file():
        raise ConfigError("--from", f"{run_dir} has no model.pt; pass the folder of a finished `sciml pinn train` run")
    blob = torch.load(path, map_location=device, weights_only=False)
    cfg = load_config(blob["config"], PINNConfig)
    module = build_network(cfg.problem.d + 1, cfg.model.widths, cfg.model.activation).to(device=device, dtype=_dtype(cfg))
    names = set(dict(module.named_parameters()))
    if set(blob["params"]) != names:
        raise ConfigError("--from", f"{path}: parameters do not match the network of its config")
    return Pretrained(module, {k: v.to(device=device, dtype=_dtype(cfg)) for k, v in blob["params"].items()}, cfg)
