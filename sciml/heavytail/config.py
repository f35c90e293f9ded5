"""Configs for ``sciml heavytail train`` (frozen dataclasses, validated by :func:`sciml.run.load_config`).

TOML layout: top-level keys, then the tables ``[critic]``, ``[gan]``, ``[particles]``, ``[flow]``.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from ..nn.lipschitz import LIPSCHITZ_ACTIVATIONS
from ..run import ConfigError, param
from .constraints import CONSTRAINTS
from .coordinates import COORDINATES
from .models import LATENTS
from .objectives import DIVERGENCES
from .strategies import MODELS

__all__ = ["CriticConfig", "GANConfig", "ParticleConfig", "FlowConfig", "HeavyTailConfig", "unused_option"]


@dataclass(frozen=True)
class CriticConfig:
    """The discriminator phi (GAN and particle flow)."""

    width: int = param(64, ge=1, doc="hidden width")
    depth: int = param(3, ge=1, doc="hidden layers")
    activation: str = param("relu", choices=tuple(LIPSCHITZ_ACTIVATIONS))
    lr: float = param(1e-3, gt=0, doc="Adam learning rate of the critic")
    steps: int | None = param(None, ge=1, doc="critic updates per generator/particle step; unset: the model's "
                                              "default (GAN 3, particles 5)")


@dataclass(frozen=True)
class GANConfig:
    """GAN generator: an MLP on latent noise, ``x = T^{-1}(G(z))`` with ``T`` the coordinates.

    Default: log coordinates and the radial latent (a uniform direction times an exponential-tailed radius
    whose shape is learned), so the tail index of each direction is learned (the generator's asymptotic
    slope). ``latent = "student"`` (or ``student_iid``) with ``coordinates =
    "linear"`` is the option that puts the index in: the degrees of freedom of the latent."""

    coordinates: str = param("log", choices=COORDINATES.names(),
                             doc="generator and critic work in u = T(x); log: u = sign(x) log(1+|x|)")
    latent: str = param("radial", choices=LATENTS,
                        doc="latent noise; radial: a uniform direction times an exponential-tailed radius whose "
                            "shape is learned; laplace: iid Laplace; a Lipschitz map of Gaussian noise cannot make "
                            "power-law tails; student / student_iid put the data's Hill index in (with coordinates "
                            "= linear)")
    latent_nu: float = param(0.0, ge=0, doc="latent Student-t degrees of freedom; 0 = smoothed Hill estimate of the data")
    latent_lr: float = param(0.03, gt=0, doc="Adam learning rate of the radial latent's shape weights (along the "
                                             "generator's cosine)")
    latent_dim: int = param(0, ge=0, doc="latent dimension; 0 = data dimension")
    width: int = param(64, ge=1)
    depth: int = param(3, ge=1)
    activation: str = param("leaky_relu", choices=tuple(LIPSCHITZ_ACTIVATIONS))
    lr: float = param(1e-3, gt=0, doc="Adam learning rate of the generator")
    lr_decay: float = param(0.1, gt=0, le=1, doc="the generator's learning rate falls along a cosine from lr to "
                                                 "lr * lr_decay at the last step; 1 = constant")
    order: str = param("data_gen", choices=("data_gen", "gen_data"),
                       doc="data_gen: train on D_f(Q || P_G), which for alpha > 1 punishes generated tails lighter "
                           "than the data's; gen_data: D_f(P_G || Q) as in the authors' code (zero-forcing: "
                           "light tails cost little)")
    scale: bool = param(False, doc="a learnable output scale per coordinate, started at the data's spread; "
                                  "with log coordinates the tail parameter of each coordinate")
    ema: float = param(0.0, ge=0, lt=1, doc="samples come from the moving average of the generator's weights "
                                             "with this decay; 0 = the last weights")


@dataclass(frozen=True)
class ParticleConfig:
    """Lipschitz-regularised generative particle flow: U <- U - dt grad_u phi(U), U = T(Y) the particles in
    the coordinates ``T`` (log: each step moves 1 + |y_j| by at most the factor exp(L dt))."""

    coordinates: str = param("log", choices=COORDINATES.names(),
                             doc="the flow and critic work in u = T(y); log: u = sign(y) log(1+|y|); "
                                 "linear: the constant-step flow, at most L dt per step")
    n_particles: int = param(0, ge=0, doc="number of particles; 0 = as many as data points")
    dt: float = param(0.3, gt=0, doc="time step; with L the per-step move is at most dt*L (in the flow's coordinates)")
    init_scale: float = param(1.0, gt=0, doc="particles start as N(0, init_scale^2 I) (in data coordinates)")


@dataclass(frozen=True)
class FlowConfig:
    """Continuous normalising flow v = -grad Phi(t, x) with the W2 proximal (OT-Flow)."""

    width: int = param(32, ge=1)
    depth: int = param(2, ge=1)
    activation: str = param("tanh", choices=("tanh", "softplus", "silu", "sin", "gelu"))
    horizon: float = param(1.0, gt=0, doc="final time T")
    n_steps: int = param(8, ge=1, doc="RK4 steps over [0, T]")
    kinetic: float = param(1.0, ge=0, doc="weight of the kinetic energy (W2 proximal); 0 = plain CNF")
    hjb: float = param(0.0, ge=0, doc="weight of the HJB residual penalty (OT-Flow)")
    nll: float = param(1.0, gt=0, doc="weight of the negative log-likelihood")
    divergence: str = param("exact", choices=("exact", "hutchinson"), doc="how div v is computed")
    probes: int = param(1, ge=1, doc="Hutchinson probes per point")
    base: str = param("gaussian", choices=("gaussian", "student"), doc="base (latent) distribution")
    base_nu: float = param(0.0, ge=0, doc="Student-t base dof; 0 = Hill estimate of the data")
    lr: float = param(1e-2, gt=0)


@dataclass(frozen=True)
class HeavyTailConfig:
    """A heavy-tail generative run."""

    model: str = param("gan", choices=MODELS.names(), doc="the generator: gan, particles (GPA) or flow (OT-Flow)")
    divergence: str = param("alpha", choices=DIVERGENCES.names(),
                            doc="objective of the critic (GAN, particles): alpha = the alpha-divergence "
                                "(alpha = 1: KL), kl, wasserstein = the WGAN objective E_P phi - E_Q phi")
    alpha: float = param(2.0, gt=0, doc="alpha of the alpha-divergence (1 = KL)")
    lipschitz: float = param(1.0, gt=0, doc="L of the W1 proximal (critic Lipschitz bound)")
    constraint: str = param("gp", choices=CONSTRAINTS.names(),
                            doc="gp = one-sided gradient penalty, spectral = hard normalisation, none = plain f-divergence")
    gp_weight: float = param(10.0, ge=0, doc="beta of the gradient penalty")
    steps: int | None = param(None, ge=1, doc="generator / particle / flow steps; unset: the model's default "
                                               "(GAN 1500, particles 600, flow 2000)")
    batch: int | None = param(None, ge=0, doc="minibatch size; 0 = full batch; unset: the model's default "
                                               "(GAN 2000, particles 1000, flow 512)")
    seed: int = param(0)
    n_samples: int = param(50000, ge=1, doc="samples drawn at the end for the metrics (GAN, flow)")
    log_every: int = param(50, ge=1)
    checkpoint_every: int = param(500, ge=1)
    critic: CriticConfig = field(default_factory=CriticConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    particles: ParticleConfig = field(default_factory=ParticleConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self):
        unused = unused_option(self)
        if unused is not None:
            raise ConfigError(*unused)
        # what the config leaves unset takes the model's measured recipe (a frozen dataclass: set in place once)
        d = MODELS[self.model].defaults
        if self.steps is None:
            object.__setattr__(self, "steps", d["steps"])
        if self.batch is None:
            object.__setattr__(self, "batch", d["batch"])
        if self.critic.steps is None and "critic_steps" in d:
            object.__setattr__(self, "critic", replace(self.critic, steps=d["critic_steps"]))
        if not MODELS[self.model].adversarial:
            return  # the flow has no critic: divergence, alpha and constraint do not apply
        if self.divergence == "alpha" and self.alpha < 1:
            raise ConfigError("alpha", "alpha < 1 is not supported for training (its conjugate is +inf for phi >= 0); "
                                       "use alpha > 1 or alpha = 1 (KL)")
        if self.divergence == "wasserstein" and self.constraint == "none":
            raise ConfigError("constraint", "the Wasserstein objective needs a Lipschitz critic; use 'gp' or 'spectral'")


def _changed(cfg: Any) -> list[str]:
    """The fields of the dataclass ``cfg`` whose value differs from the field's default, in order.

    An option is "set" when it differs from its default: a value equal to the default (``--alpha 2`` with
    ``--model flow``) cannot be told from an option left alone, and is accepted."""
    out = []
    for f in fields(cfg):
        default = f.default if f.default is not MISSING else f.default_factory()
        if getattr(cfg, f.name) != default:
            out.append(f.name)
    return out


def _first_changed(table: Any, prefix: str) -> str | None:
    keys = _changed(table)
    return f"{prefix}.{keys[0]}" if keys else None


def unused_option(cfg: HeavyTailConfig) -> tuple[str, str] | None:
    """``(key, why)`` for the first option set away from its default that the run would not use, else None.

    Refused rather than ignored: the flow has no critic (``divergence``, ``alpha``, ``lipschitz``,
    ``constraint``, ``gp_weight``, ``[critic]``); each table belongs to its own model (``[gan]``,
    ``[particles]``, ``[flow]``); ``alpha`` only shapes ``divergence = "alpha"``; ``lipschitz`` needs a
    constraint and ``gp_weight`` the gradient penalty; ``gan.latent_nu`` a Student-t latent, ``flow.base_nu``
    a Student-t base, ``flow.probes`` the Hutchinson estimator."""
    top = set(_changed(cfg))
    if not MODELS[cfg.model].adversarial:
        for key in ("divergence", "alpha", "lipschitz", "constraint", "gp_weight"):
            if key in top:
                return key, f"does nothing for model = '{cfg.model}' (it has no critic); drop it"
        if "critic" in top:
            return _first_changed(cfg.critic, "critic"), f"does nothing for model = '{cfg.model}' (it has no critic); drop it"
    for table in ("gan", "particles", "flow"):
        if table in top and table != cfg.model:
            return (_first_changed(getattr(cfg, table), table),
                    f"the [{table}] table is for model = '{table}', not '{cfg.model}'; drop it or set model = '{table}'")
    if "alpha" in top and cfg.divergence != "alpha":
        return "alpha", f"does nothing with divergence = '{cfg.divergence}'; drop it or set divergence = 'alpha'"
    if "lipschitz" in top and cfg.constraint == "none":
        return "lipschitz", "does nothing with constraint = 'none' (no Lipschitz bound); drop it or use 'gp' or 'spectral'"
    if "gp_weight" in top and cfg.constraint != "gp":
        return "gp_weight", f"is the gradient penalty's weight; it does nothing with constraint = '{cfg.constraint}'"
    if cfg.gan.latent_nu != 0 and not cfg.gan.latent.startswith("student"):
        return "gan.latent_nu", f"does nothing with gan.latent = '{cfg.gan.latent}'; set gan.latent = 'student' or drop it"
    if cfg.gan.latent_lr != GANConfig.latent_lr and cfg.gan.latent != "radial":
        return "gan.latent_lr", f"is the radial latent's learning rate; it does nothing with gan.latent = '{cfg.gan.latent}'"
    if cfg.flow.base_nu != 0 and cfg.flow.base != "student":
        return "flow.base_nu", "does nothing with flow.base = 'gaussian'; set flow.base = 'student' or drop it"
    if cfg.flow.probes != 1 and cfg.flow.divergence != "hutchinson":
        return "flow.probes", "does nothing with flow.divergence = 'exact'; set flow.divergence = 'hutchinson' or drop it"
    return None
