r"""The PINN as a :class:`sciml.run.Method`: ``sciml.fit(PINN, config, problem, out=...)``.

:class:`PINN` trains a network from scratch on a :class:`~sciml.pinn.problem.PDEProblem`; its payload
is a :class:`TrainedPINN` (the network, its parameters, the config, the error history), which
``PINN.load(run_dir)`` reads back from the run's ``model.pt`` and which the transfer methods take as
``source=`` (:mod:`sciml.transfer`). :class:`PINNMethodBase` is what PINN and the transfer methods
share: a trainer (or a sharded family) that steps, checkpoints and resumes, and the results it writes.

Before anything is allocated, :func:`check_memory` estimates from the config what a run needs,

.. math::
    B \approx b\,\big[4 K P + (n_r + n_b + n_\text{test})(d + 1) + n_i d + 2 K n_c (m + 2) \textstyle\sum_l H_l\big],

(``b`` bytes per number, ``P`` parameters with gradients and two Adam moments, ``K`` members, ``n_c``
interior points per chunk, ``m`` the tangents per point: ``d`` for an exact Laplacian, the probes for
a stochastic one, ``H_l`` the hidden widths) and refuses a config that cannot fit, with the number.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from sciml.autodiff import AbstractLaplacian
from sciml.io.data import DataError
from sciml.run import (CheckpointError, ConfigError, MethodBase, RunDir, Status, config_to_dict, load_config,
                       replace_config)
from sciml.run.distributed import DistContext

from .config import PINNConfig
from .network import build_network
from .problem import PDEProblem, StationaryProblem, is_stationary
from .report import save_model, write_run_outputs
from .inputs import input_statistics, standardised_parametrisation
from .solver import (Trainer, dtype_of, identity_parametrisation, predict, predict_stationary, sampler_of,
                     time_shift, with_hard_constraints)

__all__ = ["PINN", "PINNMethodBase", "TrainedPINN", "CheckpointError", "memory_estimate", "check_memory",
           "read_model", "check_resume_checkpoint", "resolve_problem", "input_dim"]


def input_dim(cfg: PINNConfig) -> int:
    """The network's input size: :math:`d + 1` for :math:`(t, x)`, :math:`d` for a stationary problem."""
    return cfg.problem.d + (0 if cfg.problem.kind == "stationary" else 1)


@dataclass
class TrainedPINN:
    """A trained PINN: the payload of :class:`PINN` and :class:`sciml.transfer.Transfer`.

    Attributes:
        module: the network's structure (its own parameters are not used).
        params: the trained parameters by name: :math:`u_\\theta(t, x)` is
            ``predict(module, params, t, x, t_shift=t_shift)`` (see :meth:`predict`); for a stationary
            problem (``config.problem.kind``) :math:`u_\\theta(x)` is ``predict_stationary(module, params, x)``.
        config: the resolved config it was trained with.
        problem: the trained problem's name.
        t_shift: the network sees :math:`(t - t_\\text{shift}, x)` (the middle of the time interval).
        history: ``(step, rel_l2, rel_l2_sq)`` at every logged step.
        n_trainable: trained numbers (94,201 from scratch, 4,501 for SVD-PINN on the paper's network).
        train_seconds: time spent in optimiser steps, resumed sessions included.
        compiled: whether the loss ran compiled.
        method: ``"pinn"`` or the transfer strategy's label (``"svd"``, ``"full"``, ...).
        trainer: the live :class:`~sciml.pinn.solver.Trainer` of the run that produced it (points, test
            set, optimisers); ``None`` when read back by ``load``.
    """

    module: nn.Module
    params: dict[str, Tensor]
    config: PINNConfig
    problem: str
    t_shift: float = 0.0
    history: list[tuple[int, float, float]] = field(default_factory=list)
    n_trainable: int = 0
    train_seconds: float = 0.0
    compiled: bool = False
    method: str = "pinn"
    trainer: Trainer | None = field(default=None, repr=False, compare=False)

    @property
    def stationary(self) -> bool:
        """Whether the network is :math:`u_\\theta(x)` (a stationary problem), not :math:`u_\\theta(t, x)`."""
        return self.config.problem.kind == "stationary"

    def predict(self, t: Tensor, x: Tensor | None = None,
                problem: PDEProblem | StationaryProblem | None = None) -> Tensor:
        """The solution :math:`u(t, x)`, or :math:`u(x)` for a stationary problem (``predict(x)``), shape
        ``(N,)``: the network, or with hard constraints (``config.loss.hard``, or the problem's own ansatz)
        the ansatz :math:`A + B\\,u_\\theta` built from ``problem``'s data.

        Raises:
            ValueError: the network was trained with hard constraints and no problem is given.
        """
        if self.stationary:
            return predict_stationary(self.module, self.params, t if x is None else x, hard=self._hard(problem))
        return predict(self.module, self.params, t, x, t_shift=self.t_shift, hard=self._hard(problem))

    def _hard(self, problem):
        hard = None
        if problem is not None:
            hard = problem.hard if problem.hard is not None else \
                with_hard_constraints(problem, self.config.loss.hard).hard
        elif self.config.loss.hard != "none":
            raise ValueError(f"this network was trained with loss.hard = {self.config.loss.hard!r}: pass the "
                             "problem, whose data the ansatz uses")
        return hard


# ----------------------------------------------------------------------------------------------------
def memory_estimate(cfg: PINNConfig, d: int, *, k: int = 1) -> dict[str, int]:
    """Bytes a run of ``cfg`` at dimension ``d`` with ``k`` members needs, by part (a lower bound of the
    peak: enough to refuse sizes that cannot fit, see the module docstring)."""
    item = 8 if cfg.dtype == "float64" else 4
    widths = [int(w) for w in cfg.model.widths]
    dims = [d + (0 if cfg.problem.kind == "stationary" else 1), *widths, 1]
    n_par = sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))
    s, lap = cfg.sampling, cfg.laplacian
    method = lap.method if lap.method != "auto" else ("forward" if d <= 64 else "sdgd")
    tangents = (min(lap.probes, d) if method == "sdgd" else lap.probes if method == "hutchinson" else d) + 2
    chunk = min(s.n_interior, lap.chunk_size or s.n_interior)
    out = {"parameters": 4 * k * n_par * item,
           "points": ((s.n_interior + s.n_boundary + s.n_test) * (d + 1) + s.n_initial * d) * item,
           "derivatives": 2 * k * chunk * tangents * sum(widths) * item}
    if cfg.optim.gn_iters:  # the Levenberg-Marquardt Jacobian (every network parameter: an upper bound of P)
        m = cfg.optim.gn_points + s.n_boundary + s.n_initial
        out["gauss_newton"] = m * n_par * item + min(m, n_par) ** 2 * 8
    if cfg.optim.optimizer == "spring":  # the step's Jacobian, its Gram matrix and the last direction
        m = s.n_interior + s.n_boundary + s.n_initial
        out["natural_gradient"] = (m + 1) * n_par * item + m * m * 8
    return out


def _available(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): do not refuse
        return 1 << 62


def _gib(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("TiB", 2**40), ("PiB", 2**50)):
        if n < 1024 * scale or unit == "PiB":
            return f"{n / scale:,.1f} {unit}"
    raise AssertionError  # unreachable


def check_memory(cfg: PINNConfig, d: int, device: torch.device, *, k: int = 1,
                 available: int | None = None) -> None:
    """Refuse a run that cannot fit in ``device``'s memory, before anything is allocated.

    Raises:
        ConfigError: naming the key whose size makes it too big (``problem.d``, ``model.widths``,
            ``sampling.n_interior`` or ``optim.gn_points``), the estimate and the memory there is.
    """
    need = memory_estimate(cfg, d, k=k)
    have = _available(device) if available is None else available
    if sum(need.values()) <= have:
        return
    small_model = dataclasses.replace(cfg.model, widths=tuple(min(int(w), 1024) for w in cfg.model.widths))
    small_points = dataclasses.replace(cfg.sampling, n_interior=min(cfg.sampling.n_interior, 1000),
                                       n_test=min(cfg.sampling.n_test, 10000))
    small_gn = dataclasses.replace(cfg.optim, gn_points=min(cfg.optim.gn_points, 1024))
    shrunk = {"problem.d": memory_estimate(cfg, min(d, 100), k=k),
              "model.widths": memory_estimate(dataclasses.replace(cfg, model=small_model), d, k=k),
              "sampling.n_interior": memory_estimate(dataclasses.replace(cfg, sampling=small_points), d, k=k),
              "optim.gn_points": memory_estimate(dataclasses.replace(cfg, optim=small_gn), d, k=k)}
    key = min(shrunk, key=lambda n: sum(shrunk[n].values()))
    value = {"problem.d": d, "model.widths": list(cfg.model.widths),
             "sampling.n_interior": cfg.sampling.n_interior, "optim.gn_points": cfg.optim.gn_points}[key]
    parts = ", ".join(f"{n} {_gib(v)}" for n, v in need.items())
    raise ConfigError(key, f"is {value}: the run needs about {_gib(sum(need.values()))} ({parts}), more than "
                           f"the {_gib(have)} of {device.type} memory; make it smaller"
                           + (" or set laplacian.chunk_size" if key == "sampling.n_interior" else ""))


def resolve_problem(cfg: PINNConfig, problem: PDEProblem | StationaryProblem
                    ) -> tuple[PINNConfig, PDEProblem | StationaryProblem]:
    """The problem with ``cfg.loss.hard``'s ansatz (unless it has one) and the config recording its name,
    dimension and kind (what is saved as ``config.toml`` and checked on resume)."""
    if not isinstance(problem, (PDEProblem, StationaryProblem)):
        raise TypeError(f"a PINN trains a PDEProblem or StationaryProblem, got {type(problem).__name__}; build one "
                        "(e.g. with problems.pdes.family_member) and pass it to sciml.fit")
    if problem.hard is None:
        try:
            problem = with_hard_constraints(problem, cfg.loss.hard)
        except ValueError as e:
            raise ConfigError("loss.hard", str(e)) from None
    rec = dataclasses.replace(cfg.problem, name=problem.name, d=problem.d,
                              kind="stationary" if is_stationary(problem) else "evolution")
    return dataclasses.replace(cfg, problem=rec), problem


# ----------------------------------------------------------------------------------------------------
class PINNMethodBase(MethodBase[Any]):
    """What PINN, Transfer and Family share. ``engine`` steps (a :class:`Trainer`, or a sharded family
    in a data-parallel family run); ``trainer`` is the trainer whose results :meth:`finish` writes."""

    command: ClassVar[str] = "pinn train"
    family: ClassVar[bool] = False  # the trainable tensors have a leading member axis

    def __init__(self, config: PINNConfig, engine: Any, *, dist: DistContext, label: str = "pinn",
                 extra_meta: Mapping[str, Any] | None = None):
        self.config, self.engine, self.dist, self.label = config, engine, dist, label
        self.extra_meta = dict(extra_meta or {})

    @property
    def writer(self) -> str:
        """What ``model.pt`` and the checkpoints record as their writer."""
        return f"sciml {self.command}"

    @property
    def trainer(self) -> Trainer:
        return self.engine if isinstance(self.engine, Trainer) else self.engine.local

    @property
    def n_steps(self) -> int:
        return self.engine.n_steps

    @property
    def max_seconds(self) -> float | None:
        """The config's wall-clock budget (``optim.max_seconds``), for ``fit`` when it is given none."""
        return self.config.optim.max_seconds

    def set_budget(self, seconds: float | None) -> None:
        """The run's wall-clock budget as ``fit`` enforces it (``--max-seconds`` wins over the config), so
        that ``laplacian.compile = "auto"`` weighs the compile against the budget the run really has."""
        self.trainer.budget_seconds = seconds

    def step(self, i: int) -> dict[str, float]:
        return self.engine.step(i)

    def state(self) -> dict[str, Any]:
        st = self.engine.state()
        if st is None:  # a non-main rank of a sharded family: rank 0 holds the gathered checkpoint
            return {}
        return {**st, "written_by": self.writer, "config": config_to_dict(self.config)}

    def load_state(self, st: Mapping[str, Any]) -> None:
        check_checkpoint_state(st, self.writer, self.trainer, family=self.family)
        self.engine.load(st)

    def meta(self) -> dict[str, Any]:
        tr = self.trainer
        return {"problem": self.config.problem.name, "method": self.label, "laplacian": type(tr.method).__name__,
                "n_trainable": self._n_trainable(), "world_size": self.dist.world_size, **self.extra_meta}

    def _n_trainable(self) -> int:
        return self.trainer.par.n_trainable

    def _final_trainer(self) -> Trainer:
        return self.trainer

    def finish(self, run: RunDir | None, result) -> Any:
        tr = self._final_trainer()
        if (result.status is Status.BUDGET and tr.test is not None
                and (not tr.history or tr.history[-1][0] != result.step)):
            # the budget stopped it between two evaluations: the saved network is the one to judge
            errors = tr.record_evaluation(result.step)
            result.metrics.update(errors)
            if run is not None:
                run.log_metrics(result.step - 1, **errors, seconds=result.seconds)
                run.flush_metrics()
        if tr.history:  # a run stopped between two evaluations reports the last one
            result.metrics.setdefault("rel_l2", tr.history[-1][1])
            result.metrics.setdefault("rel_l2_sq", tr.history[-1][2])
        payload = self._payload(tr)
        if run is not None:
            result.artefacts.update(write_run_outputs(run, tr, result, label=self.label, attrs=self._attrs()))
            result.artefacts["model"] = save_model(run.path / "model.pt", tr.module, payload.params, self.config,
                                                   self._model_meta(payload))
            run.write_meta(compiled=tr.compiled, train_seconds=round(tr.train_seconds, 3))
        return payload

    def _attrs(self) -> dict[str, Any]:
        return {}

    def _payload(self, tr: Trainer) -> TrainedPINN:
        return TrainedPINN(tr.module, {k: v.detach().clone() for k, v in tr.par.params().items()}, self.config,
                           self.config.problem.name, tr.t_shift, list(tr.history), tr.par.n_trainable,
                           tr.train_seconds, tr.compiled, self.label, tr)

    def _model_meta(self, p: TrainedPINN) -> dict[str, Any]:
        return {"written_by": self.writer, "problem": p.problem, "t_shift": p.t_shift,
                "history": [list(h) for h in p.history], "n_trainable": p.n_trainable,
                "train_seconds": p.train_seconds, "compiled": p.compiled, "method": p.method,
                "problem_params": dict(p.trainer.problem.params) if p.trainer is not None else {}}


class PINN(PINNMethodBase):
    """A PINN trained from scratch: ``sciml.fit(PINN, PINNConfig(...), problem, out=...)``.

    Payload: :class:`TrainedPINN`. ``PINN.load(run_dir)`` reads it back (also from a transfer run).
    """

    command = "pinn train"

    @classmethod
    def build(cls, config: PINNConfig, problem: PDEProblem, *, device: torch.device, dist: DistContext | None = None,
              laplacian: str | AbstractLaplacian | None = None) -> "PINN":
        """The network (xavier-normal weights from the global seed ``fit`` set), the collocation points
        (seeded by ``config.seed``) and the optimisers.

        Args:
            config: the run's config; ``problem.name`` and ``problem.d`` are filled in from ``problem``.
            problem: the PDE (``config.loss.hard`` adds the hard-constraint ansatz unless it has one).
            laplacian: a :data:`~sciml.autodiff.LAPLACIANS` name (recorded as ``laplacian.method``) or
                object (recorded in ``meta.json``), overriding ``config.laplacian.method``.

        Raises:
            ConfigError: the run cannot fit in memory, or ``loss.hard`` does not suit the problem.
        """
        dist = dist if dist is not None else DistContext(device=device)
        config, problem = resolve_problem(config, problem)
        extra = {}
        if isinstance(laplacian, str):  # validated like the config key
            config = replace_config(config, laplacian={**config_to_dict(config.laplacian), "method": laplacian})
        elif laplacian is not None:
            extra["laplacian_object"] = repr(laplacian)
        check_memory(config, problem.d, device)
        module = build_network(input_dim(config), config.model.widths, config.model.activation).to(
            device=device, dtype=dtype_of(config))
        trainer = Trainer(problem, module, _parametrisation(module, config, problem, device), config, device=device,
                          dist=dist,
                          laplacian=laplacian if laplacian is not None and not isinstance(laplacian, str) else None)
        return cls(config, trainer, dist=dist, extra_meta=extra)

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> TrainedPINN:
        """The trained network of a finished ``pinn train`` or ``pinn transfer`` run (its ``model.pt``).

        Raises:
            DataError: no ``model.pt``, a truncated or foreign file, or a family run's (naming the file and
                what wrote it).
        """
        blob, meta = read_model(run_dir, expect=("pinn train", "pinn transfer"))
        cfg = _config_of(blob, run_dir)
        module = build_network(input_dim(cfg), cfg.model.widths, cfg.model.activation).to(
            device=device, dtype=dtype_of(cfg))
        params = _checked_params(blob, module, run_dir, device, dtype_of(cfg))
        return TrainedPINN(module, params, cfg, str(meta.get("problem", cfg.problem.name)),
                           float(meta.get("t_shift", 0.0)), [tuple(h) for h in meta.get("history", [])],
                           int(meta.get("n_trainable", sum(v.numel() for v in params.values()))),
                           float(meta.get("train_seconds", 0.0)), bool(meta.get("compiled", False)),
                           str(meta.get("method", "pinn")))


def _parametrisation(module: nn.Module, cfg: PINNConfig, problem, device) -> Any:
    """A fresh network's trainable tensors: raw inputs, or standardised ones (``model.input_scale``)."""
    if cfg.model.input_scale == "none":
        return identity_parametrisation(module)
    mean, std = input_statistics(problem, sampler_of(cfg), t_shift=time_shift(problem), device=device,
                                 dtype=dtype_of(cfg))
    return standardised_parametrisation(module, mean, std)


# ----------------------------------------------------------------------------------------------------
def _writer_of_folder(folder: Path) -> str:
    """``", written by `sciml X`"`` from the folder's meta.json, or ``""``."""
    try:
        cmd = json.loads((folder / "meta.json").read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return ""
    return f" (the folder was written by `sciml {cmd}`)" if cmd else ""


def read_model(run_dir: str | Path, *, expect: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``model.pt`` of ``run_dir`` and its meta, checked to be a model written by one of the ``expect``
    commands (``"pinn train"``, ``"pinn transfer"``, ``"pinn family"``).

    Raises:
        DataError: the file is missing, unreadable (truncated, not a torch file) or was written by another
            command; the message names the file and what wrote it.
    """
    folder = Path(run_dir)
    path = folder / "model.pt"
    wanted = " or ".join(f"`sciml {e}`" for e in expect)
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist; pass the folder of a finished {wanted} run")
    if not path.is_file():
        raise DataError(f"{folder} has no model.pt{_writer_of_folder(folder)}; pass the folder of a finished "
                        f"{wanted} run")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a zip/pickle, foreign objects: all mean "not our model file"
        raise DataError(f"{path} is not a readable model file ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
                        f"{_writer_of_folder(folder)}; it must be the model.pt a {wanted} run writes") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("params"), dict) or not isinstance(blob.get("config"), dict):
        raise DataError(f"{path} was not written by {wanted} (it holds no params and config)"
                        f"{_writer_of_folder(folder)}; pass the folder of a finished {wanted} run")
    meta = blob.get("meta") if isinstance(blob.get("meta"), dict) else {}
    writer = meta.get("written_by", "sciml pinn train")  # model files without a writer are pinn train's
    if writer not in {f"sciml {e}" for e in expect}:
        raise DataError(f"{path} was written by `{writer}`, not by {wanted}; pass the folder of a {wanted} run")
    return blob, meta


def _config_of(blob: Mapping[str, Any], run_dir: str | Path) -> PINNConfig:
    """The PINN part of a model file's config (tables of other commands, e.g. ``[transfer]``, dropped)."""
    known = {f.name for f in dataclasses.fields(PINNConfig)}
    try:
        return load_config({k: v for k, v in blob["config"].items() if k in known}, PINNConfig,
                           source_name=str(Path(run_dir) / "model.pt"))
    except ConfigError as e:
        raise DataError(f"{e}; the model file does not belong to this version of sciml pinn") from None


def _checked_params(blob: Mapping[str, Any], module: nn.Module, run_dir: str | Path, device, dtype, *,
                    lead: tuple[int, ...] = ()) -> dict[str, Tensor]:
    want = {k: (*lead, *v.shape) for k, v in module.named_parameters()}
    got = {k: tuple(v.shape) for k, v in blob["params"].items() if isinstance(v, Tensor)}
    if got != want:
        bad = sorted(set(want) ^ set(got)) or [k for k in want if want[k] != got.get(k)]
        raise DataError(f"{Path(run_dir) / 'model.pt'}: its parameters do not match the network of its config "
                        f"(first difference: {bad[0]}); the file is damaged or was edited")
    return {k: v.to(device=device, dtype=dtype) for k, v in blob["params"].items()}


def check_checkpoint_state(st: Mapping[str, Any], writer: str, trainer: Trainer, *, family: bool) -> None:
    """Refuse a checkpoint written by another command or for other trainable tensors.

    Raises:
        CheckpointError: naming the checkpoint's step and writer and what does not match.
    """
    at = f"the checkpoint of step {st.get('step', '?')}"
    if not isinstance(st.get("theta"), Mapping):
        raise CheckpointError(f"{at} holds no PINN parameters (written by {st.get('written_by', 'another command')}); "
                              "start a new run in another folder")
    if st.get("written_by", writer) != writer:
        raise CheckpointError(f"{at} was written by `{st['written_by']}`, not `{writer}`; resume it with that command")
    mine = {k: tuple(v.shape[1:] if family else v.shape) for k, v in trainer.par.theta.items()}
    theirs = {k: tuple(v.shape[1:] if family else v.shape) for k, v in st["theta"].items()}
    if mine != theirs:
        diff = sorted(set(mine) ^ set(theirs)) or [k for k in mine if mine[k] != theirs.get(k)]
        raise CheckpointError(f"{at} is for another network (first difference: {diff[0]}); resume with the "
                              "run's own config, or start a new run in another folder")


def check_resume_checkpoint(out: str | Path, command: str) -> None:
    """Before resuming ``out``: its latest checkpoint must be readable, written by ``sciml COMMAND``,
    under the run's own ``config.toml``. Nothing is written.

    Raises:
        CheckpointError: naming the file and what wrote it.
    """
    import tomllib

    folder = Path(out)
    cks = sorted((folder / "checkpoints").glob("ckpt_*.pt"), key=lambda p: int(p.stem.split("_")[1])
                 if p.stem.split("_")[1].isdigit() else -1)
    if not cks or not (folder / "config.toml").is_file():
        return  # nothing to check: fit says what is missing
    path, writer = cks[-1], f"sciml {command}"
    older = f"; delete it to resume from {cks[-2].name}" if len(cks) > 1 else "; start a new run"
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or not a torch file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:100]}){older}") from None
    if not isinstance(ck, dict) or ck.get("written_by") != writer:
        who = ck.get("written_by") if isinstance(ck, dict) else None
        raise CheckpointError(f"{path} was written by {f'`{who}`' if who else 'something else'}, not `{writer}`"
                              f"{older}")
    try:
        saved = tomllib.loads((folder / "config.toml").read_text())
    except (ValueError, OSError):
        return  # fit's config check names the unreadable config.toml
    from sciml.run import dump_toml

    if tomllib.loads(dump_toml(ck.get("config", {}))) != saved:
        raise CheckpointError(f"{path} was written by `{writer}` under another config than {folder / 'config.toml'}"
                              f" (a checkpoint copied from another run?){older}")
