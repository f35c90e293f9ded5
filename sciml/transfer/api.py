"""Entry points: :func:`transfer` a pre-trained PINN to one family member, :func:`solve_family` for K at once."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from sciml.pinn.api import Pretrained, device_and_dist, problem_from_config
from sciml.pinn.config import PINNConfig
from sciml.pinn.report import write_run_outputs
from sciml.pinn.solver import Trainer
from sciml.run import Result, RunDir, Status, replace_config
from sciml.run.distributed import DistContext

from .family import FamilyTrainer, ShardedFamily, stack_parametrisation
from .strategies import TransferStrategy, strategy_from_name

__all__ = ["transfer", "solve_family", "strategy_of"]


def strategy_of(cfg: PINNConfig) -> TransferStrategy:
    t = cfg.transfer
    return strategy_from_name(t.method, layers=t.layers, rank=t.rank, seed=cfg.seed)


def _prepare(pre: Pretrained, cfg: PINNConfig | None) -> PINNConfig:
    """The transfer config: the pre-training's problem family, d and network, with ``cfg``'s training keys."""
    if cfg is None:
        return pre.cfg
    # the network and the family come from the pre-trained run; the rest from the transfer config
    return replace_config(cfg, model=_d(pre.cfg.model), problem={**_d(cfg.problem), "family": pre.cfg.problem.family,
                                                                   "d": pre.cfg.problem.d},
                          dtype=pre.cfg.dtype)


def _d(x):
    from sciml.run import config_to_dict

    return config_to_dict(x)


def transfer(pre: Pretrained, cfg: PINNConfig | None = None, *, target: float | None = None,
             strategy: TransferStrategy | None = None, run_dir: str | Path | None = None,
             device: str | torch.device = "cpu", resume: bool = False, stop_at: int | None = None,
             dist: DistContext | None = None) -> Result:
    """Transfer ``pre`` to the family member at ``target`` (default: ``cfg.transfer.targets[0]``).

    Args:
        pre: from :func:`sciml.pinn.load_pretrained` (or built in Python).
        cfg: training keys (sampling, loss, optim, transfer optimiser); family and network come from ``pre``.
        strategy: a :mod:`sciml.transfer.strategies` object (default: from ``cfg.transfer.method``).
        dist: data parallelism over the collocation points (as :func:`sciml.pinn.train`).

    Returns:
        Result with ``extra["trainer"]``, ``extra["n_trainable"]``, ``extra["train_seconds"]``.
    """
    device, dist = device_and_dist(device, dist)
    cfg = _prepare(pre, cfg)
    target = cfg.transfer.targets[0] if target is None else target
    strategy = strategy_of(cfg) if strategy is None else strategy
    problem = problem_from_config(cfg, target)
    par = strategy.parametrise(pre.module, {k: v.to(device) for k, v in pre.params.items()})
    trainer = Trainer(problem, pre.module.to(device), par, cfg, device=device, dist=dist)
    run = RunDir(run_dir) if run_dir is not None and dist.is_main else None
    if run is not None:
        run.save_config(cfg)
        run.write_meta(command="pinn transfer", problem=problem.name, method=par.label, device=str(device),
                       n_trainable=par.n_trainable)
    if trainer.test is not None:
        trainer.history.append((0, *trainer.evaluate())) if not resume else None
    res = trainer.fit(run, resume=resume, stop_at=stop_at, desc=f"{par.label} -> {problem.name}")
    res.extra["trainer"] = trainer
    if run is not None and res.status in (Status.SUCCESS, Status.INTERRUPTED):
        res.artefacts.update(write_run_outputs(run, trainer, res, cfg, label=par.label))
        run.write_meta(status=res.status.value, message=res.message, compiled=trainer.compiled, **res.metrics)
    return res


def solve_family(pre: Pretrained, cfg: PINNConfig | None = None, *, targets: Sequence[float] | None = None,
                 strategy: TransferStrategy | None = None, run_dir: str | Path | None = None,
                 device: str | torch.device = "cpu", resume: bool = False, stop_at: int | None = None,
                 dist: DistContext | None = None) -> Result:
    """Transfer ``pre`` to K members at once (parameters stacked, loss vmapped; see :mod:`.family`).

    Every member gets exactly the updates a separate :func:`transfer` would give it; the result holds
    the per-member test errors in ``extra["member_errors"]`` (on rank 0).

    With ``dist`` over several processes the members are spread over the ranks (:class:`ShardedFamily`)
    and rank 0 gathers them into one ``results.h5`` and one checkpoint.
    """
    device, dist = device_and_dist(device, dist)
    cfg = _prepare(pre, cfg)
    targets = list(cfg.transfer.targets if targets is None else targets)
    if not targets:
        raise ValueError("solve_family needs at least one target")
    strategy = strategy_of(cfg) if strategy is None else strategy
    members = [problem_from_config(cfg, v) for v in targets]
    one = strategy.parametrise(pre.module, {k: v.to(device) for k, v in pre.params.items()})
    if dist.distributed:
        dist.broadcast_([*one.theta.values(), *one.const.values()])
    par = stack_parametrisation(one, len(members))  # the whole family's (its labels, size; trained on one process)
    if dist.distributed:
        sharded = ShardedFamily(members, pre.module.to(device), one, cfg, device=device, dist=dist)
    else:
        trainer = FamilyTrainer(members[0], pre.module.to(device), par, cfg, device=device, members=members)
    run = RunDir(run_dir) if run_dir is not None and dist.is_main else None
    if run is not None:
        run.save_config(cfg)
        run.write_meta(command="pinn family", members=[m.name for m in members], method=par.label,
                       device=str(device), n_trainable=par.n_trainable, world_size=dist.world_size)
    if dist.distributed:
        res = sharded.fit(run, resume=resume, stop_at=stop_at, desc=f"family {par.label}")
        trainer = sharded.full if dist.is_main else sharded.local
    else:
        res = trainer.fit(run, resume=resume, stop_at=stop_at, desc=f"family {par.label}")
    res.extra["trainer"] = trainer
    if dist.is_main:
        res.extra["member_errors"] = dict(zip(targets, trainer.member_errors()[0]))
    if run is not None and res.status in (Status.SUCCESS, Status.INTERRUPTED):
        res.artefacts.update(write_run_outputs(run, trainer, res, cfg, label=par.label,
                                               attrs={"targets": [float(v) for v in targets]}))
        run.write_meta(status=res.status.value, message=res.message, **res.metrics)
    return res
