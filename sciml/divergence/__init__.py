"""Heavy-tailed generative modelling with Wasserstein-proximal alpha-divergences (GANs and flows).

See ``docs/heavytail.md``. Entry points: :func:`train` and :func:`sample`; objectives in
:mod:`.objectives`, Lipschitz constraints in :mod:`.constraints`, generators in :mod:`.models`, tail
metrics in :mod:`.metrics`.
"""

from .config import CriticConfig, FlowConfig, GANConfig, HeavyTailConfig, ParticleConfig
from .constraints import GradientPenalty, LipschitzConstraint, SpectralNormalization, Unconstrained, make_constraint
from .metrics import ccdf_l1, evaluate_samples, hill, smoothed_hill, tail_probabilities
from .models import Generator, PotentialFlow, sample_latent
from .objectives import (AlphaDivergence, FDivergence, KLDivergence, WassersteinCritic, discrete_divergence,
                         gaussian_alpha_divergence, make_divergence, variational_objective)
from .train import load_model, sample, train

__all__ = [
    "CriticConfig", "FlowConfig", "GANConfig", "HeavyTailConfig", "ParticleConfig",
    "GradientPenalty", "LipschitzConstraint", "SpectralNormalization", "Unconstrained", "make_constraint",
    "ccdf_l1", "evaluate_samples", "hill", "smoothed_hill", "tail_probabilities",
    "Generator", "PotentialFlow", "sample_latent",
    "AlphaDivergence", "FDivergence", "KLDivergence", "WassersteinCritic", "discrete_divergence",
    "gaussian_alpha_divergence", "make_divergence", "variational_objective",
    "load_model", "sample", "train",
]
