r"""The score wing's method for :func:`sciml.fit`: :class:`ScoreTraining` trains a score model on samples,
its payload is a :class:`ScoreRun` (the trained model with what sampling needs)::

    res = sciml.fit(ScoreTraining, ScoreConfig(), data, out="runs/score")   # data: (N, D) or (N, C, H, W)
    srun = ScoreTraining.load("runs/score")                                # the same ScoreRun, from disk
    x = srun.generate(1000)

A run is reproducible from its config, its data and the seed. A checkpoint holds everything the
remaining steps depend on: network, EMA, optimiser (with the control-variate coefficients), the
NDSM path bank, the fitted mixture, the data normaliser, and the random streams; so a run killed at
any point and resumed ends bit-identical to an uninterrupted one. ``RUN/model.pt`` holds what
sampling needs (EMA weights, coefficients, normaliser, mixture), read by :meth:`ScoreTraining.load`
without the data.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor

from ..io import DataError
from ..run import (ConfigError, MethodBase, Result, RunDir, UsageError, atomic_torch_save, config_to_dict,
                   get_logger, load_config, rng_state, set_rng_state)
from .build import (auto_steps, build_net, build_objective, build_sde, check_memory, check_stiffness,
                    stiffness_problem, training_memory)
from .config import ScoreConfig
from .data import check_samples
from .gmm import GMM, fit_gmm
from .model import EMA, ScoreModel
from .objectives import NDSM, Objective, PathBank
from .persist import read_run
from .samplers import Sampler, sample_batches
from .sde import SDE

__all__ = ["ScoreTraining", "ScoreRun", "MODEL_FILE"]

log = get_logger("score")

MODEL_FILE = "model.pt"
_FORMAT = "sciml.score.model/1"


# ---- the payload ------------------------------------------------------------------------------------

@dataclass
class ScoreRun:
    """A trained score model with what sampling needs.

    Attributes:
        cfg: the run's config.
        model: :class:`ScoreModel` with the EMA weights, in eval mode.
        sde: the forward SDE (for ``langevin_gmm`` its target is :attr:`gmm`).
        shift, scale: the data normaliser, ``x_model = (x - shift) / scale``.
        t_min: the smallest training time (sampling stops there).
        objective: the training objective, with its learned control-variate coefficients (NDSM).
        gmm: the mixture fitted to the standardised data (``langevin_gmm``), else ``None``.
        step: training steps behind these weights.
    """

    cfg: ScoreConfig
    model: ScoreModel
    sde: SDE
    shift: Tensor
    scale: Tensor
    t_min: float
    objective: Objective
    gmm: GMM | None = None
    step: int = 0

    def sampling_steps(self, n_steps: int | None = None, *, option: str | None = None) -> int:
        """Reverse-time steps: ``n_steps``, else the config's, else 500 raised for a stiff drift.

        Raises:
            ConfigError: (``UsageError`` naming ``option`` if given) the steps are too coarse for the drift.
        """
        steps = n_steps or auto_steps(self.sde, self.cfg.sample.n_steps, 500, self.sde.T - self.t_min)
        what = option or ("n_steps" if n_steps else "sample.n_steps")
        problem = stiffness_problem(self.sde, (self.sde.T - self.t_min) / steps, what)
        if problem is not None:
            raise UsageError(option, problem) if option else ConfigError(what, problem)
        return steps

    def batches(self, n: int, *, sampler: Sampler | str | None = None, n_steps: int | None = None,
                batch_size: int | None = None, generator: torch.Generator | None = None,
                show_progress: bool = True) -> Iterator[Tensor]:
        """``n`` samples in data units, batch by batch (memory of one batch), by the config's sampler
        unless one (a name or a :class:`~sciml.score.samplers.Sampler`) is given here."""
        steps = self.sampling_steps(n_steps)
        self.model.eval()
        if generator is None:  # draw on the model's device (the prior and the noise live there)
            generator = torch.Generator(device=self.shift.device).manual_seed(int(torch.randint(0, 2**62, (1,))))
        for x in sample_batches(self.model, self.sde, n, sampler=sampler or self.cfg.sample.sampler, n_steps=steps,
                                t_min=self.t_min, batch_size=batch_size or self.cfg.sample.batch_size,
                                generator=generator, show_progress=show_progress):
            yield x * self.scale + self.shift

    def generate(self, n: int, *, sampler: Sampler | str | None = None, n_steps: int | None = None,
                 batch_size: int | None = None, generator: torch.Generator | None = None,
                 show_progress: bool = True) -> Tensor:
        """``n`` samples in data units, ``(n, *event_shape)`` (see :meth:`batches`)."""
        return torch.cat(list(self.batches(n, sampler=sampler, n_steps=n_steps, batch_size=batch_size,
                                           generator=generator, show_progress=show_progress)))


# ---- the method -------------------------------------------------------------------------------------

def _fingerprint(data: Tensor) -> str:
    """A hash of the training data, so that a resume with other data is refused."""
    flat = data.detach().cpu().contiguous().reshape(-1)
    return hashlib.blake2b(flat.numpy().tobytes() + str(tuple(data.shape)).encode(), digest_size=12).hexdigest()


def _gmm_state(gmm: GMM | None) -> dict[str, Tensor] | None:
    if gmm is None:
        return None
    return {"weights": gmm.weights.cpu(), "means": gmm.means.cpu(), "prec_chol": gmm.prec_chol.cpu()}


class ScoreTraining(MethodBase[ScoreRun]):
    """Train a score model (DSM or NDSM) on samples; the payload is a :class:`ScoreRun`.

    ``build(config, data, *, device, dist=None, gmm=None)``: ``data`` is a tensor (or array)
    ``(N, *event_shape)``; ``gmm`` a reference mixture for ``langevin_gmm`` in the standardised units
    (default: fitted to the data). Metrics per step: ``loss`` (and ``loss_var`` for NDSM).
    """

    command = "score train"

    @classmethod
    def build(cls, config: ScoreConfig, problem: Any, *, device: torch.device | str = "cpu", dist: Any = None,
              gmm: GMM | None = None) -> "ScoreTraining":
        """Check the config and the samples, then build (nothing is allocated for a run that cannot fit).

        Raises:
            ConfigError: an invalid config, too few samples for the mixture, unstable steps, or a run
                that needs more memory than the device has (naming the key to lower).
            DataError: samples that are not a finite real tensor of at least two distinct rows.
        """
        if dist is not None and getattr(dist, "distributed", False):
            from ..run.distributed import DistributedUnsupported

            raise DistributedUnsupported("score training is single-process; its batches fit one device")
        config = load_config(config_to_dict(config), ScoreConfig)  # the limits of every key, for Python users too
        return cls(config, check_samples(problem), torch.device(device), gmm)

    def __init__(self, config: ScoreConfig, data: Tensor, device: torch.device, gmm: GMM | None = None):
        cfg = self.config = config
        self.n_steps, self.device = cfg.train.steps, device
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed)  # the stream seed_everything gives
        data = data.to(device=device, dtype=torch.get_default_dtype())
        self.n_data, self.event_shape, self.data_id = data.shape[0], tuple(data.shape[1:]), _fingerprint(data)
        if cfg.train.standardize:
            self.shift, self.scale = data.mean(0), data.std().clamp_min(1e-8)
        else:
            self.shift, self.scale = torch.zeros_like(data[0]), torch.ones((), dtype=data.dtype, device=device)
        self.xn = (data - self.shift) / self.scale
        self.gmm = self._mixture(gmm)
        self.sde = build_sde(cfg.sde, self.event_shape, self.gmm)
        self._check_before_allocating()
        self.net = build_net(cfg.model, self.event_shape).to(device)
        residual = cfg.model.prior_residual if cfg.model.prior_residual is not None else cfg.sde.kind == "langevin_gmm"
        self.model = ScoreModel(self.net, self.sde, prior_residual=residual)
        self.objective = build_objective(cfg.train, self.sde)
        self.cv = getattr(self.objective, "cv", None)
        if self.cv is not None:
            self.cv.to(device)
        groups = [{"params": self.net.parameters(), "lr": cfg.train.lr}]
        if self.cv is not None and self.cv.learn:
            groups.append({"params": self.cv.parameters(), "lr": cfg.train.cv_lr})
        self.opt = torch.optim.Adam(groups)
        self.ema = EMA(self.net, cfg.train.ema_decay)
        ndsm = isinstance(self.objective, NDSM)
        self.bank = PathBank(self.sde, self.objective.times(device, data.dtype)) if ndsm else None
        if self.gmm is not None:
            log.info("GMM weights %s", [round(float(w), 4) for w in self.gmm.weights])

    def _mixture(self, gmm: GMM | None) -> GMM | None:
        """The Langevin target: the given mixture, or one fitted to the standardised data."""
        cfg = self.config.sde
        if cfg.kind != "langevin_gmm":
            return None
        if gmm is not None:
            if gmm.dim != self.xn[0].numel():
                raise ConfigError("gmm", f"the mixture is {gmm.dim}-dimensional but the samples have "
                                         f"{self.xn[0].numel()} coordinates")
            return gmm.to(device=self.device, dtype=self.xn.dtype)
        if self.n_data < 2 * cfg.n_components:
            raise ConfigError("sde.n_components", f"{self.n_data} samples are too few for a {cfg.n_components}-"
                                                  "component GMM (at least 2 per component); lower it or give "
                                                  "more data")
        return fit_gmm(self.xn, cfg.n_components, covariance_type=cfg.covariance, reg_covar=cfg.reg_covar,
                       seed=self.config.seed).to(device=self.device)

    def _check_before_allocating(self) -> None:
        """Stable step sizes and enough memory, before the network and the bank exist."""
        cfg = self.config
        ndsm_steps = auto_steps(self.sde, cfg.train.n_time_steps, 200) if cfg.train.objective == "ndsm" else None
        if ndsm_steps is not None:
            check_stiffness(self.sde, self.sde.T / ndsm_steps, "train.n_time_steps")
        check_stiffness(self.sde, self.sde.T / auto_steps(self.sde, cfg.sample.n_steps, 500), "sample.n_steps")
        parts = training_memory(cfg, self.event_shape, self.n_data, ndsm_steps, self.device)
        check_memory(parts, self.device, "this training run")
        if ndsm_steps is not None and cfg.train.n_time_steps is None and ndsm_steps > 200:
            log.info("stiff Langevin drift: using %d NDSM time steps", ndsm_steps)  # after every refusal

    def step(self, i: int) -> dict[str, float]:
        tc = self.config.train
        self.model.train()
        if self.bank is not None:
            # the bank is re-simulated on its own schedule; between refreshes it is state (checkpointed)
            if i % tc.refresh_every == 0 or self.bank.paths is None:
                idx = torch.randint(0, self.n_data, (min(tc.bank_paths, self.n_data),), generator=self.gen,
                                    device=self.device)
                self.bank.refresh(self.xn[idx], generator=self.gen)
            x_prev, k = self.bank.draw(tc.batch_size, generator=self.gen)
            loss, info = self.objective.loss(self.model, x_prev, k, generator=self.gen)
        else:
            idx = torch.randint(0, self.n_data, (tc.batch_size,), generator=self.gen, device=self.device)
            loss, info = self.objective.loss(self.model, self.xn[idx], generator=self.gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), tc.grad_clip)
        self.opt.step()
        self.ema.update(self.net)
        return info

    def _sampling_state(self) -> dict[str, Any]:
        """What sampling needs (also in every checkpoint): EMA, coefficients, normaliser, mixture."""
        return {"format": _FORMAT, "ema": self.ema.state_dict(), "cv": self.cv.state_dict() if self.cv else None,
                "shift": self.shift.cpu(), "scale": self.scale.cpu(), "event_shape": list(self.event_shape),
                "t_min": self.objective.t_min, "gmm": _gmm_state(self.gmm)}

    def state(self) -> dict[str, Any]:
        paths = self.bank.paths if self.bank is not None else None
        return {**self._sampling_state(), "net": self.net.state_dict(), "opt": self.opt.state_dict(),
                "rng": rng_state(self.gen), "bank": paths.cpu() if paths is not None else None,
                "data": self.data_id}

    def load_state(self, st: Mapping[str, Any]) -> None:
        if st.get("data") != self.data_id:
            raise DataError("the samples differ from those of the run being resumed (another file, problem, "
                            "--n-data or seed); resume with the run's own data, or start a new run")
        self.net.load_state_dict(st["net"])
        self.ema.load_state_dict(st["ema"])
        self.opt.load_state_dict(st["opt"])
        set_rng_state(st["rng"], self.gen)
        if self.cv is not None:
            self.cv.load_state_dict(st["cv"])
        if self.gmm is not None:  # the run's own mixture, exactly (a refit may differ in the last bits)
            for name, t in st["gmm"].items():
                getattr(self.gmm, name).copy_(t)
        if self.bank is not None:
            self.bank.paths = st["bank"].to(self.device) if st["bank"] is not None else None

    def meta(self) -> dict[str, Any]:
        return {"n_data": self.n_data, "event_shape": list(self.event_shape), "data_fingerprint": self.data_id}

    def finish(self, run: RunDir | None, result: Result[ScoreRun]) -> ScoreRun:
        """The payload (EMA weights); with a run directory, ``model.pt`` for :meth:`load`."""
        net = copy.deepcopy(self.net)
        net.load_state_dict(self.ema.shadow)
        model = ScoreModel(net, self.sde, prior_residual=self.model.prior_residual).eval()
        if run is not None:
            atomic_torch_save({**self._sampling_state(), "step": result.step}, run.path / MODEL_FILE)
            result.artefacts["model"] = run.path / MODEL_FILE
        return ScoreRun(self.config, model, self.sde, self.shift, self.scale, self.objective.t_min, self.objective,
                        self.gmm, result.step)

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> ScoreRun:
        """The :class:`ScoreRun` of a run directory: ``config.toml`` and ``model.pt`` (or, for a run that
        never finished, its latest checkpoint); no data needed.

        Raises:
            DataError: not a score run directory. CheckpointError: a model or checkpoint file that is
                truncated or foreign.
        """
        return read_run(Path(run_dir), torch.device(device))
