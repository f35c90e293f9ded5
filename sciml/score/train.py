"""Entry points: ``train(cfg, data)`` -> Result, ``load_run(path)`` -> ScoreRun, ``ScoreRun.generate(n)``.

A run is reproducible from its config and seed. The checkpoint holds everything needed to sample
without the data: network, EMA weights, optimiser, control-variate coefficients, the data normaliser
and, for Langevin SDEs, the fitted mixture (so sampling never refits it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..run import (ConfigError, Result, RunDir, get_logger, load_config, param, rng_state,
                   seed_everything, set_rng_state, train_loop)
from .gmm import GMM, fit_gmm
from .model import EMA, ScoreModel
from .objectives import DSM, NDSM, ControlVariates, NoiseVarianceWeighting, PathBank, UniformWeighting
from .samplers import SAMPLERS, sample
from .sde import SDE, VESDE, VPSDE, LangevinSDE

__all__ = ["SDEConfig", "ModelConfig", "TrainConfig", "SampleConfig", "ScoreConfig", "ScoreRun", "train",
           "load_run", "build_sde", "build_net"]

log = get_logger("score")


@dataclass(frozen=True)
class SDEConfig:
    kind: str = param("vp", choices=("vp", "ve", "langevin_gmm"),
                      doc="vp (OU), ve, or langevin_gmm (Langevin toward a GMM fitted to the data)")
    T: float = param(1.0, gt=0, doc="terminal time")
    beta_min: float | None = param(None, gt=0, doc="vp / langevin: beta(0) (default 0.1)")
    beta_max: float | None = param(None, gt=0, doc="vp / langevin: beta(T) (default 20 for vp, 2 for langevin_gmm)")
    sigma_min: float = param(0.01, gt=0, doc="ve: smallest noise level")
    sigma_max: float = param(10.0, gt=0, doc="ve: largest noise level (about the largest data distance)")
    n_components: int = param(3, ge=1, doc="langevin_gmm: mixture components")
    covariance: str = param("full", choices=("full", "diag", "spherical", "tied"), doc="langevin_gmm: GMM covariance type")
    reg_covar: float = param(1e-4, ge=0, doc="langevin_gmm: added to covariance diagonals")

    @property
    def betas(self) -> tuple[float, float]:
        """(beta_min, beta_max) with the per-kind defaults filled in."""
        return (self.beta_min if self.beta_min is not None else 0.1,
                self.beta_max if self.beta_max is not None else (20.0 if self.kind == "vp" else 2.0))

    def __post_init__(self):
        if self.betas[1] < self.betas[0]:
            raise ValueError(f"sde.beta_max ({self.betas[1]}) must be >= sde.beta_min ({self.betas[0]})")
        if self.sigma_max <= self.sigma_min:
            raise ValueError(f"sde.sigma_max ({self.sigma_max}) must be > sde.sigma_min ({self.sigma_min})")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = param("mlp", choices=("mlp", "unet"), doc="mlp for vectors, unet for (C, H, W) images")
    width: int = param(128, ge=1, doc="mlp hidden width")
    depth: int = param(3, ge=1, doc="mlp hidden layers")
    embed_dim: int = param(32, ge=2, doc="time-embedding width")
    base_channels: int = param(32, ge=8, doc="unet channels at full resolution")
    prior_residual: bool | None = param(None, doc="langevin_gmm: s = grad log p_GMM + net / sigma(t), the network "
                                                  "learns the correction (default: true for langevin_gmm)")


@dataclass(frozen=True)
class TrainConfig:
    objective: str = param("dsm", choices=("dsm", "ndsm"), doc="dsm (exact kernel, linear SDEs) or ndsm")
    steps: int = param(3000, ge=1, doc="optimiser steps")
    batch_size: int = param(512, ge=2)
    lr: float = param(2e-3, gt=0)
    ema_decay: float = param(0.999, ge=0, lt=1)
    grad_clip: float = param(1.0, ge=0, doc="gradient-norm clip (0: off)")
    weighting: str = param("noise_variance", choices=("noise_variance", "uniform"), doc="time weighting lambda(t)")
    eps: float = param(1e-3, gt=0, lt=1, doc="dsm: smallest training time")
    n_time_steps: int | None = param(None, ge=2, doc="ndsm: Euler-Maruyama grid steps on [0, T] (default: 200, "
                                                     "more if the Langevin drift is stiff)")
    control_variates: str = param("learned", choices=("learned", "fixed", "none"), doc="ndsm control variates")
    cv_lr: float = param(1e-2, gt=0, doc="learning rate of the control-variate coefficients")
    cv_second_order: bool = param(False, doc="ndsm: add the second-order control variate (D+1 extra JVPs "
                                             "per step: about 3x slower steps in 2-d)")
    bank_paths: int = param(1024, ge=1, doc="ndsm: forward paths kept in the bank")
    refresh_every: int = param(100, ge=1, doc="ndsm: re-simulate the paths every this many steps")
    standardize: bool = param(True, doc="shift by the data mean and divide by the data std (undone at sampling)")


@dataclass(frozen=True)
class SampleConfig:
    sampler: str = param("em", choices=tuple(SAMPLERS), doc="em | heun (reverse SDE) | ode | ode_rk4 (probability flow)")
    n_steps: int | None = param(None, ge=1, doc="default: 500, more if the Langevin drift is stiff")
    batch_size: int = param(4096, ge=1)


@dataclass(frozen=True)
class ScoreConfig:
    seed: int = param(0)
    sde: SDEConfig = field(default_factory=SDEConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    log_every: int = param(100, ge=1)
    checkpoint_every: int = param(1000, ge=1)

    def __post_init__(self):
        if self.train.objective == "dsm" and self.sde.kind == "langevin_gmm":
            raise ValueError("train.objective 'dsm' needs a linear SDE (sde.kind vp or ve); use 'ndsm' for "
                             "langevin_gmm")
        if self.model.prior_residual is True and self.sde.kind != "langevin_gmm":
            raise ValueError("model.prior_residual needs sde.kind = 'langevin_gmm'")


# ---- builders ---------------------------------------------------------------------------------------

def build_sde(cfg: SDEConfig, event_shape: tuple[int, ...], gmm: GMM | None = None) -> SDE:
    if cfg.kind == "vp":
        return VPSDE(event_shape, *cfg.betas, cfg.T)
    if cfg.kind == "ve":
        return VESDE(event_shape, cfg.sigma_min, cfg.sigma_max, cfg.T)
    if gmm is None:
        raise ValueError("langevin_gmm needs a fitted GMM")
    return LangevinSDE(gmm, event_shape, *cfg.betas, cfg.T)


def build_net(cfg: ModelConfig, event_shape: tuple[int, ...]) -> torch.nn.Module:
    from ..nn.score_nets import ScoreMLP, SmallUNet

    if cfg.arch == "mlp":
        return ScoreMLP(math.prod(event_shape), cfg.width, cfg.depth, cfg.embed_dim)
    if len(event_shape) != 3:
        raise ConfigError("model.arch", f"unet needs image data (N, C, H, W); got samples of shape {event_shape}")
    return SmallUNet(event_shape[0], cfg.base_channels, 2 * cfg.embed_dim)


def _weighting(name: str):
    return NoiseVarianceWeighting() if name == "noise_variance" else UniformWeighting()


def auto_steps(sde: SDE, given: int | None, default: int, span: float | None = None) -> int:
    """``given`` if set, else ``default`` raised so that stiffness x step <= 0.8 (explicit-step stability)."""
    if given is not None:
        return given
    lip = sde.drift_lipschitz() if isinstance(sde, LangevinSDE) else None
    if lip is None:
        return default
    return max(default, math.ceil(lip * (span or sde.T) / 0.8))


def build_objective(cfg: TrainConfig, sde: SDE):
    if cfg.objective == "dsm":
        return DSM(sde, weighting=_weighting(cfg.weighting), eps=cfg.eps)
    second = cfg.cv_second_order
    cv = (None if cfg.control_variates == "none"
          else ControlVariates(learn=cfg.control_variates == "learned", second_order=second))
    return NDSM(sde, n_steps=auto_steps(sde, cfg.n_time_steps, 200), weighting=_weighting(cfg.weighting), control_variates=cv)


# ---- the trained object -----------------------------------------------------------------------------

@dataclass
class ScoreRun:
    """A trained score model with what sampling needs.

    Attributes:
        cfg: the run's config; model: :class:`ScoreModel` (EMA weights loaded); sde: forward SDE;
        shift, scale: the data normaliser (``x_model = (x - shift) / scale``); t_min: smallest time.
    """

    cfg: ScoreConfig
    model: ScoreModel
    sde: SDE
    shift: Tensor
    scale: Tensor
    t_min: float
    extra: dict[str, Any] = field(default_factory=dict)

    def generate(self, n: int, *, sampler: str | None = None, n_steps: int | None = None,
                 batch_size: int | None = None, generator: torch.Generator | None = None,
                 show_progress: bool = True) -> Tensor:
        """``n`` samples in data units, by the config's sampler unless one is named here."""
        name = sampler or self.cfg.sample.sampler
        if name not in SAMPLERS:
            raise ConfigError("sample.sampler", f"must be one of {list(SAMPLERS)}, got {name!r}")
        n_steps = n_steps or auto_steps(self.sde, self.cfg.sample.n_steps, 500, self.sde.T - self.t_min)
        _check_stiffness(self.sde, (self.sde.T - self.t_min) / n_steps, "sample.n_steps")
        self.model.eval()
        if generator is None:  # draw on the model's device (the prior and the noise live there)
            dev = self.shift.device
            generator = torch.Generator(device=dev).manual_seed(int(torch.randint(0, 2**62, (1,))))
        x = sample(self.model, self.sde, n, sampler=SAMPLERS[name](), n_steps=n_steps,
                   t_min=self.t_min, batch_size=batch_size or self.cfg.sample.batch_size,
                   generator=generator, show_progress=show_progress)
        return x * self.scale + self.shift


def _check_stiffness(sde: SDE, dt: float | None, key: str) -> None:
    """Explicit Euler steps of a stiff Langevin drift blow up; say so before training, with the fix."""
    lip = sde.drift_lipschitz() if isinstance(sde, LangevinSDE) else None
    if lip is None or dt is None or lip * dt <= 1.0:
        return
    need = math.ceil(lip * sde.T)
    raise ConfigError(key, f"explicit steps are unstable: the Langevin drift's stiffness {lip:.3g} times the "
                           f"step {dt:.3g} is {lip * dt:.2f} > 1; raise {key} to at least {need}, or lower "
                           "sde.beta_max, or raise sde.reg_covar (the GMM's sharpest component sets the stiffness)")


def _normaliser(data: Tensor, standardize: bool) -> tuple[Tensor, Tensor]:
    if not standardize:
        return torch.zeros_like(data[0]), torch.ones((), dtype=data.dtype, device=data.device)
    return data.mean(0), data.std().clamp_min(1e-8)


def _assemble(cfg: ScoreConfig, event_shape, device, gmm: GMM | None):
    sde = build_sde(cfg.sde, event_shape, gmm)
    net = build_net(cfg.model, event_shape).to(device)
    residual = cfg.model.prior_residual if cfg.model.prior_residual is not None else cfg.sde.kind == "langevin_gmm"
    model = ScoreModel(net, sde, prior_residual=residual)
    objective = build_objective(cfg.train, sde)
    if isinstance(objective, NDSM) and objective.cv is not None:
        objective.cv.to(device)
    return sde, model, objective


def train(cfg: ScoreConfig, data: Tensor, *, run: RunDir | None = None, device: str | torch.device = "cpu",
          resume: bool = False, show_progress: bool = True) -> Result:
    """Train a score model on ``data`` (N, *event_shape).

    Returns:
        Result; ``extra["run"]`` is the :class:`ScoreRun` (EMA weights), ``extra["seconds"]`` the wall time,
        ``extra["loss_var"]`` the last logged mini-batch variance of the per-sample objective.
    """
    device = torch.device(device)
    gen = seed_everything(cfg.seed, device)
    data = data.to(device=device, dtype=torch.get_default_dtype())
    if data.shape[0] < 2:
        raise ValueError("need at least 2 samples")
    event_shape = tuple(data.shape[1:])
    ck = run.load_checkpoint() if (resume and run is not None) else None
    if ck is not None:
        shift, scale = ck["shift"].to(device), ck["scale"].to(device)
    else:
        shift, scale = _normaliser(data, cfg.train.standardize)
    xn = (data - shift) / scale
    gmm = None
    if cfg.sde.kind == "langevin_gmm":
        if ck is not None:
            gmm = GMM(*(ck["gmm"][k].to(device) for k in ("weights", "means", "prec_chol")))
        else:
            if data.shape[0] < 2 * cfg.sde.n_components:
                raise ValueError(f"{data.shape[0]} samples are too few for a {cfg.sde.n_components}-component GMM")
            gmm = fit_gmm(xn, cfg.sde.n_components, covariance_type=cfg.sde.covariance,
                          reg_covar=cfg.sde.reg_covar, seed=cfg.seed).to(device=device)
            log.info("fitted GMM weights %s", [round(float(w), 4) for w in gmm.weights])
    sde, model, objective = _assemble(cfg, event_shape, device, gmm)
    tc = cfg.train
    if isinstance(objective, NDSM):
        _check_stiffness(sde, objective.dt, "train.n_time_steps")
        if tc.n_time_steps is None and objective.n_steps > 200:
            log.info("stiff Langevin drift: using %d NDSM time steps", objective.n_steps)
    _check_stiffness(sde, sde.T / auto_steps(sde, cfg.sample.n_steps, 500), "sample.n_steps")
    groups = [{"params": model.net.parameters(), "lr": tc.lr}]
    cv = getattr(objective, "cv", None)
    if cv is not None and cv.learn:
        groups.append({"params": cv.parameters(), "lr": tc.cv_lr})
    opt = torch.optim.Adam(groups)
    ema = EMA(model.net, tc.ema_decay)
    bank = PathBank(sde, objective.times(device, data.dtype)) if isinstance(objective, NDSM) else None
    n_data = xn.shape[0]

    def step(i: int) -> dict[str, float]:
        model.train()
        if bank is not None:
            if i % tc.refresh_every == 0 or bank.paths is None:
                idx = torch.randint(0, n_data, (min(tc.bank_paths, n_data),), generator=gen, device=device)
                bank.refresh(xn[idx], generator=gen)
            x_prev, k = bank.draw(tc.batch_size, generator=gen)
            loss, info = objective.loss(model, x_prev, k, generator=gen)
        else:
            idx = torch.randint(0, n_data, (tc.batch_size,), generator=gen, device=device)
            loss, info = objective.loss(model, xn[idx], generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.net.parameters(), tc.grad_clip)
        opt.step()
        ema.update(model.net)
        return info

    def state() -> dict[str, Any]:
        st = {"net": model.net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
              "rng": rng_state(gen), "shift": shift.cpu(), "scale": scale.cpu(), "event_shape": event_shape,
              "t_min": objective.t_min}
        if cv is not None:
            st["cv"] = cv.state_dict()
        if gmm is not None:
            st["gmm"] = {"weights": gmm.weights.cpu(), "means": gmm.means.cpu(), "prec_chol": gmm.prec_chol.cpu()}
        return st

    def load(st: dict[str, Any]) -> None:
        model.net.load_state_dict(st["net"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        set_rng_state(st["rng"], gen)
        if cv is not None and "cv" in st:
            cv.load_state_dict(st["cv"])

    if run is not None:
        run.save_config(cfg)
        run.write_meta(method="score", device=str(device), n_data=n_data, event_shape=list(event_shape))
    res = train_loop(step, tc.steps, run=run, state=state, load=load, resume=resume, log_every=cfg.log_every,
                     checkpoint_every=cfg.checkpoint_every, desc=f"score {tc.objective}")
    model.net.load_state_dict(ema.shadow)
    model.eval()
    res.extra["run"] = ScoreRun(cfg, model, sde, shift, scale, objective.t_min,
                                extra={"gmm": gmm, "objective": objective})
    if run is not None:
        run.write_meta(status=res.status.value, message=res.message)
    return res


def load_run(path: str | Path, *, device: str | torch.device = "cpu") -> ScoreRun:
    """Rebuild a trained model from a run directory (config + latest checkpoint; EMA weights)."""
    from ..io import DataError

    path = Path(path)
    if not (path / "config.toml").is_file():
        raise DataError(f"{path}: not a score run directory (no config.toml); pass the folder written by "
                        "`sciml score train --out`")
    cfg = load_config(path / "config.toml", ScoreConfig)
    rd = RunDir(path)
    ck = rd.load_checkpoint(map_location=device)
    if ck is None:
        raise DataError(f"{path}: no checkpoint in {path / 'checkpoints'}; the run never saved one")
    device = torch.device(device)
    gmm = None
    if "gmm" in ck:
        gmm = GMM(*(ck["gmm"][k].to(device) for k in ("weights", "means", "prec_chol")))
    sde, model, _ = _assemble(cfg, tuple(ck["event_shape"]), device, gmm)
    model.net.load_state_dict(ck["ema"]["shadow"])
    model.eval()
    return ScoreRun(cfg, model, sde, ck["shift"].to(device), ck["scale"].to(device), float(ck["t_min"]),
                    extra={"gmm": gmm, "step": int(ck["step"])})
