"""Configs for ``sciml heavytail train`` (frozen dataclasses, validated by :func:`sciml.run.load_config`).

TOML layout: top-level keys, then the tables ``[critic]``, ``[gan]``, ``[particles]``, ``[flow]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..nn.lipschitz import LIPSCHITZ_ACTIVATIONS
from ..run import ConfigError, param
from .constraints import CONSTRAINTS
from .coordinates import COORDINATES
from .models import LATENTS
from .objectives import DIVERGENCES
from .strategies import MODELS

__all__ = ["CriticConfig", "GANConfig", "ParticleConfig", "FlowConfig", "HeavyTailConfig"]


@dataclass(frozen=True)
class CriticConfig:
    """The discriminator phi (GAN and particle flow)."""

    width: int = param(64, ge=1, doc="hidden width")
    depth: int = param(3, ge=1, doc="hidden layers")
    activation: str = param("relu", choices=tuple(LIPSCHITZ_ACTIVATIONS))
    lr: float = param(1e-3, gt=0, doc="Adam learning rate of the critic")
    steps: int = param(5, ge=1, doc="critic updates per generator/particle step")


@dataclass(frozen=True)
class GANConfig:
    """GAN generator: an MLP on latent noise, ``x = T^{-1}(G(z))`` with ``T`` the coordinates.

    Default: log coordinates and Laplace noise, so the tail index of each direction is learned (the
    generator's asymptotic slope). ``latent = "student"`` (or ``student_iid``) with ``coordinates =
    "linear"`` is the option that puts the index in: the degrees of freedom of the latent."""

    coordinates: str = param("log", choices=COORDINATES.names(),
                             doc="generator and critic work in u = T(x); log: u = sign(x) log(1+|x|)")
    latent: str = param("laplace", choices=LATENTS,
                        doc="latent noise; a Lipschitz map of Gaussian noise cannot make power-law tails; "
                            "student / student_iid put the data's Hill index in (with coordinates = linear)")
    latent_nu: float = param(0.0, ge=0, doc="latent Student-t degrees of freedom; 0 = smoothed Hill estimate of the data")
    latent_dim: int = param(0, ge=0, doc="latent dimension; 0 = data dimension")
    width: int = param(64, ge=1)
    depth: int = param(3, ge=1)
    activation: str = param("leaky_relu", choices=tuple(LIPSCHITZ_ACTIVATIONS))
    lr: float = param(1e-3, gt=0, doc="Adam learning rate of the generator")
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
    steps: int = param(2000, ge=1, doc="generator / particle / flow steps")
    batch: int = param(512, ge=0, doc="minibatch size; 0 = full batch")
    seed: int = param(0)
    n_samples: int = param(50000, ge=1, doc="samples drawn at the end for the metrics (GAN, flow)")
    log_every: int = param(50, ge=1)
    checkpoint_every: int = param(500, ge=1)
    critic: CriticConfig = field(default_factory=CriticConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    particles: ParticleConfig = field(default_factory=ParticleConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)

    def __post_init__(self):
        if not MODELS[self.model].adversarial:
            return  # the flow has no critic: divergence, alpha and constraint do not apply
        if self.divergence == "alpha" and self.alpha < 1:
            raise ConfigError("alpha", "alpha < 1 is not supported for training (its conjugate is +inf for phi >= 0); "
                                       "use alpha > 1 or alpha = 1 (KL)")
        if self.divergence == "wasserstein" and self.constraint == "none":
            raise ConfigError("constraint", "the Wasserstein objective needs a Lipschitz critic; use 'gp' or 'spectral'")
