"""The score wing's config: a frozen dataclass per TOML table (``[sde]``, ``[model]``, ``[train]``,
``[sample]``); strategy keys take their choices from the registries (:data:`~sciml.score.sde.SDES`,
:data:`~sciml.score.objectives.OBJECTIVES`, :data:`~sciml.score.objectives.WEIGHTINGS`,
:data:`~sciml.score.samplers.SAMPLERS`), so a registered strategy is at once a valid config value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..run import param
from .objectives import CONTROL_VARIATES, OBJECTIVES, WEIGHTINGS
from .samplers import SAMPLERS
from .sde import SDES

__all__ = ["SDEConfig", "ModelConfig", "TrainConfig", "SampleConfig", "ScoreConfig", "ARCHS", "COVARIANCES",
           "default_objective"]

ARCHS = ("mlp", "unet")
COVARIANCES = ("full", "diag", "spherical", "tied")  # scikit-learn's GaussianMixture covariance types


@dataclass(frozen=True)
class SDEConfig:
    kind: str = param("vp", choices=SDES.names(),
                      doc="vp (OU), ve, or langevin_gmm (Langevin toward a GMM fitted to the data)")
    T: float = param(1.0, gt=0, doc="terminal time")
    beta_min: float | None = param(None, gt=0, doc="vp / langevin: beta(0) (default 0.1)")
    beta_max: float | None = param(None, gt=0, doc="vp / langevin: beta(T) (default 20 for vp, 2 for langevin_gmm)")
    sigma_min: float = param(0.01, gt=0, doc="ve: smallest noise level")
    sigma_max: float = param(10.0, gt=0, doc="ve: largest noise level (about the largest data distance)")
    n_components: int = param(3, ge=1, doc="langevin_gmm: mixture components")
    covariance: str = param("full", choices=COVARIANCES, doc="langevin_gmm: GMM covariance type")
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
    arch: str = param("mlp", choices=ARCHS, doc="mlp for vectors, unet for (C, H, W) images")
    width: int = param(128, ge=1, doc="mlp hidden width")
    depth: int = param(3, ge=1, doc="mlp hidden layers")
    embed_dim: int = param(32, ge=2, doc="time-embedding width")
    base_channels: int = param(32, ge=8, doc="unet channels at full resolution")
    prior_residual: bool | None = param(None, doc="langevin_gmm: s = grad log p_GMM + net / sigma(t), the network "
                                                  "learns the correction (default: true for langevin_gmm)")


@dataclass(frozen=True)
class TrainConfig:
    objective: str = param("dsm", choices=OBJECTIVES.names(), doc="dsm (exact kernel, linear SDEs) or ndsm")
    steps: int = param(3000, ge=1, doc="optimiser steps")
    batch_size: int = param(512, ge=2)
    lr: float = param(2e-3, gt=0)
    ema_decay: float = param(0.999, ge=0, lt=1)
    grad_clip: float = param(1.0, ge=0, doc="gradient-norm clip (0: off)")
    weighting: str = param("noise_variance", choices=WEIGHTINGS.names(), doc="time weighting lambda(t)")
    eps: float = param(1e-3, gt=0, lt=1, doc="dsm: smallest training time")
    n_time_steps: int | None = param(None, ge=2, doc="ndsm: Euler-Maruyama grid steps on [0, T] (default: 200, "
                                                     "more if the Langevin drift is stiff)")
    control_variates: str = param("learned", choices=CONTROL_VARIATES, doc="ndsm control variates")
    cv_lr: float = param(1e-2, gt=0, doc="learning rate of the control-variate coefficients")
    cv_second_order: bool = param(False, doc="ndsm: add the second-order control variate (D+1 extra JVPs "
                                             "per step: about 3x slower steps in 2-d)")
    bank_paths: int = param(1024, ge=1, doc="ndsm: forward paths kept in the bank")
    refresh_every: int = param(100, ge=1, doc="ndsm: re-simulate the paths every this many steps")
    standardize: bool = param(True, doc="shift by the data mean and divide by the data std (undone at sampling)")


@dataclass(frozen=True)
class SampleConfig:
    sampler: str = param("em", choices=SAMPLERS.names(),
                         doc="em | heun (reverse SDE) | ode | ode_rk4 (probability flow)")
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
        if self.train.objective == "dsm" and not SDES[self.sde.kind].has_gaussian_kernel:
            raise ValueError(f"train.objective 'dsm' needs a linear SDE (sde.kind vp or ve); use 'ndsm' for "
                             f"{self.sde.kind}")
        if self.model.prior_residual is True and self.sde.kind != "langevin_gmm":
            raise ValueError("model.prior_residual needs sde.kind = 'langevin_gmm'")


def default_objective(kind: str) -> str:
    """The objective an SDE trains with unless told: ``dsm`` where the kernel is Gaussian, else ``ndsm``."""
    return "dsm" if SDES[kind].has_gaussian_kernel else "ndsm"
