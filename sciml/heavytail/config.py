"""Configs for ``sciml heavytail train`` (frozen dataclasses, validated by :func:`sciml.run.load_config`).

TOML layout: top-level keys, then the tables ``[critic]``, ``[gan]``, ``[particles]``, ``[flow]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..nn.lipschitz import LIPSCHITZ_ACTIVATIONS
from ..run import ConfigError, param
from .constraints import CONSTRAINTS
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
    """GAN generator: an MLP on latent noise."""

    latent: str = param("student", choices=LATENTS,
                        doc="latent noise; a Lipschitz map of Gaussian noise cannot make power-law tails")
    latent_nu: float = param(0.0, ge=0, doc="latent Student-t degrees of freedom; 0 = smoothed Hill estimate of the data")
    latent_dim: int = param(0, ge=0, doc="latent dimension; 0 = data dimension")
    width: int = param(64, ge=1)
    depth: int = param(3, ge=1)
    activation: str = param("leaky_relu", choices=tuple(LIPSCHITZ_ACTIVATIONS))
    lr: float = param(1e-3, gt=0, doc="Adam learning rate of the generator")


@dataclass(frozen=True)
class ParticleConfig:
    """Lipschitz-regularised generative particle flow: Y <- Y - dt grad phi(Y)."""

    n_particles: int = param(0, ge=0, doc="number of particles; 0 = as many as data points")
    dt: float = param(1.0, gt=0, doc="time step; with L the per-step move is at most dt*L")
    init_scale: float = param(1.0, gt=0, doc="particles start as N(0, init_scale^2 I)")


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
