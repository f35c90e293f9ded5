"""Transfer as :class:`sciml.run.Method` classes: one target member, or K members at once.

::

    source = PINN.load("runs/ac0")                                    # a trained PINN (TrainedPINN)
    res = sciml.fit(Transfer, cfg, allen_cahn(50.0, 10), source=source, out="runs/ac0_to_50")
    fam = sciml.fit(Family, cfg, [allen_cahn(e, 10) for e in (0.5, 2, 50)], source=source)
    fam.payload.member_errors                                         # {member name: rel L2}

The network, the family and ``d`` come from ``source``; the training keys (sampling, loss, optim) and
the ``[transfer]`` table from ``cfg`` (a :class:`~sciml.transfer.config.TransferRunConfig`). With the
same ``seed`` and ``[sampling]`` the transfer trains on the pre-training's collocation points.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from sciml.pinn.method import PINNMethodBase, TrainedPINN, _checked_params, _config_of, check_memory, read_model, \
    resolve_problem
from sciml.pinn.network import build_network
from sciml.pinn.problem import PDEProblem
from sciml.pinn.solver import Trainer, dtype_of
from sciml.run import ConfigError, config_to_dict, replace_config
from sciml.run.distributed import DistContext

from .config import TransferConfig, TransferRunConfig, s_optimizer_for
from .family import ShardedFamily, family_trainer, stack_parametrisation
from .strategies import TRANSFER_STRATEGIES, TransferStrategy

__all__ = ["Transfer", "Family", "TrainedFamily"]


@dataclass
class TrainedFamily(TrainedPINN):
    """The payload of :class:`Family`: ``params`` are stacked (leading axis: the members, in order).

    Attributes:
        members: the members' names.
        member_errors: the final test relative L2 of every member, by name.
        member_history: ``(step, [rel_l2 of every member])`` at every logged step.
    """

    members: list[str] = field(default_factory=list)
    member_errors: dict[str, float] = field(default_factory=dict)
    member_history: list[tuple[int, list[float]]] = field(default_factory=list)


def _prepare(source: TrainedPINN, cfg: Any) -> TransferRunConfig:
    """The transfer config: the pre-training's network, family, d and dtype, with ``cfg``'s training keys."""
    if not isinstance(source, TrainedPINN) or isinstance(source, TrainedFamily):
        raise TypeError(f"source= must be a trained PINN (PINN.load(run_dir) or a PINN run's payload), got "
                        f"{type(source).__name__}")
    if not isinstance(cfg, TransferRunConfig):  # a plain PINN config: the [transfer] table's defaults
        cfg = TransferRunConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)})
    src = source.config
    return replace_config(cfg, model=config_to_dict(src.model), dtype=src.dtype,
                          problem={**config_to_dict(cfg.problem), "family": src.problem.family, "d": src.problem.d})


def _strategy(cfg: TransferRunConfig, strategy: str | TransferStrategy | None) -> tuple[TransferRunConfig, Any]:
    """The strategy object; a name is recorded as ``transfer.method``."""
    if isinstance(strategy, str):  # validated like the config key
        cfg = replace_config(cfg, transfer={**config_to_dict(cfg.transfer), "method": strategy})
    t: TransferConfig = cfg.transfer
    return cfg, TRANSFER_STRATEGIES.resolve(t.method if strategy is None or isinstance(strategy, str) else strategy,
                                            layers=t.layers, rank=t.rank, seed=cfg.seed)


def _check_d(problem: PDEProblem, source: TrainedPINN) -> None:
    if not isinstance(problem, PDEProblem) or getattr(source, "stationary", False):
        raise ConfigError("problem.kind", f"the transfer wing re-trains evolution PINNs; {problem.name} or the "
                                          "pre-trained network is stationary: train it with sciml.pinn.PINN")
    if problem.d != source.config.problem.d:
        raise ConfigError("problem.d", f"the target {problem.name} has d = {problem.d}, but the pre-trained network "
                                       f"takes d = {source.config.problem.d} (plus time)")


def _parametrise(strategy, source: TrainedPINN, device: torch.device):
    try:
        module = copy.deepcopy(source.module).to(device)
        return module, strategy.parametrise(module, {k: v.to(device) for k, v in source.params.items()})
    except ValueError as e:  # e.g. SVD of a network without a square hidden-to-hidden weight
        raise ConfigError("transfer.layers", str(e)) from None


class Transfer(PINNMethodBase):
    """A pre-trained PINN re-trained for one family member: ``sciml.fit(Transfer, cfg, target, source=...)``.

    Payload: :class:`~sciml.pinn.TrainedPINN` (``method`` is the strategy's label); ``Transfer.load``
    reads it back, and a transfer run's folder can be the ``source`` of another transfer.
    """

    command = "pinn transfer"

    @classmethod
    def build(cls, config: Any, problem: PDEProblem, *, device: torch.device, dist: DistContext | None = None,
              source: TrainedPINN | None = None, strategy: str | TransferStrategy | None = None) -> "Transfer":
        """Factor ``source`` with the strategy (default: ``config.transfer.method``; a name is recorded
        there, an object's label in ``meta.json``) and train it on ``problem``, the target member.

        Raises:
            ConfigError: the target's dimension differs from the network's, or the strategy does not fit it.
        """
        dist = dist if dist is not None else DistContext(device=device)
        cfg, problem = resolve_problem(_prepare(source, config), problem)
        _check_d(problem, source)
        cfg, strat = _strategy(cfg, strategy)
        check_memory(cfg, problem.d, device)
        module, par = _parametrise(strat, source, device)
        trainer = Trainer(problem, module, par, cfg, device=device, dist=dist, s_optimizer=s_optimizer_for(cfg.transfer))
        if trainer.test is not None:  # the error the transfer starts from
            trainer.history.append((0, *trainer.evaluate()))
        return cls(cfg, trainer, dist=dist, label=par.label,
                   extra_meta={} if strategy is None or isinstance(strategy, str) else {"strategy": par.label})

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> TrainedPINN:
        """The trained network of a finished transfer (or train) run: see :meth:`sciml.pinn.PINN.load`."""
        from sciml.pinn.method import PINN

        return PINN.load(run_dir, device=device)


class Family(PINNMethodBase):
    """A pre-trained PINN re-trained for K members at once (stacked parameters, vmapped loss; see
    :mod:`sciml.transfer.family`): ``sciml.fit(Family, cfg, [member, ...], source=...)``.

    Every member gets exactly the updates a separate :class:`Transfer` would give it. Under ``torchrun``
    the members are spread over the ranks (:class:`~sciml.transfer.family.ShardedFamily`) and rank 0
    gathers them into one checkpoint and one ``results.h5``. Payload: :class:`TrainedFamily`.
    """

    command = "pinn family"
    family = True

    @classmethod
    def build(cls, config: Any, problem: Sequence[PDEProblem], *, device: torch.device,
              dist: DistContext | None = None, source: TrainedPINN | None = None,
              strategy: str | TransferStrategy | None = None) -> "Family":
        """As :meth:`Transfer.build`, for the list of members ``problem`` (``problem.name`` records
        their names, joined by ``"; "``).

        Raises:
            ConfigError: no members, hard constraints (``loss.hard``), resampling, L-BFGS over several
                processes, or a run that cannot fit in memory.
        """
        dist = dist if dist is not None else DistContext(device=device)
        cfg = _prepare(source, config)
        members = list(problem) if isinstance(problem, (list, tuple)) else []
        if not members:
            raise ConfigError("transfer.targets", "a family run needs a list of at least one member")
        if cfg.loss.hard != "none" or any(m.hard is not None for m in members):
            raise ConfigError("loss.hard", "a family run shares one set of points and ansatz-free members; each "
                                           "member's hard-constraint lift is its own: set it to \"none\"")
        for m in members:
            _check_d(m, source)
        rec = dataclasses.replace(cfg.problem, name="; ".join(m.name for m in members), d=members[0].d)
        cfg, strat = _strategy(dataclasses.replace(cfg, problem=rec), strategy)
        check_memory(cfg, rec.d, device, k=len(members))
        module, one = _parametrise(strat, source, device)
        kw = dict(device=device, s_optimizer=s_optimizer_for(cfg.transfer))
        try:
            if dist.distributed:
                dist.broadcast_([*one.theta.values(), *one.const.values()])
                engine = ShardedFamily(members, module, one, cfg, dist=dist, **kw)
            else:
                engine = family_trainer(members, module, stack_parametrisation(one, len(members)), cfg, **kw)
        except ValueError as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError("transfer.targets", str(e)) from None
        m = cls(cfg, engine, dist=dist, label=one.label + f"x{len(members)}",
                extra_meta={"members": [m.name for m in members]})
        m.member_names = [p.name for p in members]
        return m

    def _n_trainable(self) -> int:  # the whole family's, also on a rank that trains a share of it
        return self.trainer.par.n_trainable // len(self.trainer.members) * len(self.member_names)

    def _final_trainer(self) -> Trainer:
        return self.engine.gather() if isinstance(self.engine, ShardedFamily) else self.engine

    def _attrs(self) -> dict[str, Any]:
        targets, names = list(self.config.transfer.targets), self.member_names
        return {"members": names, **({"targets": [float(v) for v in targets]} if len(targets) == len(names) else {})}

    def _payload(self, tr: Trainer) -> TrainedFamily:
        base = super()._payload(tr)
        with torch.no_grad():
            params = torch.func.vmap(lambda th: tr.par.build(th, tr.par.const))(tr.par.theta)
        errors = dict(zip((m.name for m in tr.members), tr.member_errors()[0])) if tr.test is not None else {}
        return TrainedFamily(**{**{f.name: getattr(base, f.name) for f in dataclasses.fields(TrainedPINN)},
                                "params": {k: v.detach().clone() for k, v in params.items()}},
                             members=[m.name for m in tr.members], member_errors=errors,
                             member_history=list(tr.member_history))

    def _model_meta(self, p: TrainedFamily) -> dict[str, Any]:  # type: ignore[override]
        return {**super()._model_meta(p), "members": p.members, "member_errors": p.member_errors,
                "member_history": [[s, list(e)] for s, e in p.member_history]}

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> TrainedFamily:
        """The K trained networks of a finished ``pinn family`` run (its ``model.pt``, parameters stacked).

        Raises:
            DataError: no ``model.pt``, or a truncated or foreign file (naming the file and what wrote it).
        """
        blob, meta = read_model(run_dir, expect=("pinn family",))
        cfg = _config_of(blob, run_dir)
        module = build_network(cfg.problem.d + 1, cfg.model.widths, cfg.model.activation).to(
            device=device, dtype=dtype_of(cfg))
        members = [str(m) for m in meta.get("members", [])]
        params = _checked_params(blob, module, run_dir, device, dtype_of(cfg), lead=(len(members),))
        return TrainedFamily(module, params, cfg, str(meta.get("problem", "")), float(meta.get("t_shift", 0.0)),
                             [tuple(h) for h in meta.get("history", [])], int(meta.get("n_trainable", 0)),
                             float(meta.get("train_seconds", 0.0)), bool(meta.get("compiled", False)),
                             str(meta.get("method", "")), None, members,
                             {str(k): float(v) for k, v in meta.get("member_errors", {}).items()},
                             [(int(s), list(e)) for s, e in meta.get("member_history", [])])
