"""Heavy-tailed generative modelling with Wasserstein-proximal alpha-divergences (GANs, particle flows,
normalising flows).

See ``docs/heavytail.md``. Train with ``sciml.fit(HeavyTail, HeavyTailConfig(...), data)``; read a run
back with ``HeavyTail.load(run_dir)`` (a :class:`HeavyTailModel` with ``sample(n, generator=)``).
Registries: :data:`MODELS` (gan, particles, flow), :data:`DIVERGENCES` (alpha, kl, wasserstein),
:data:`CONSTRAINTS` (gp, spectral, none), :data:`COORDINATES` (linear, log: where the generator and critic work). Objectives in :mod:`.objectives`, Lipschitz constraints in
:mod:`.constraints`, networks in :mod:`.models`, the generators' strategies in :mod:`.strategies`, tail
metrics in :mod:`.metrics`, the authors' 110-d submanifold metric in :mod:`.submanifold`.
"""

from .config import CriticConfig, FlowConfig, GANConfig, HeavyTailConfig, ParticleConfig
from .constraints import (CONSTRAINTS, GradientPenalty, LipschitzConstraint, SpectralNormalization, Unconstrained,
                          make_constraint)
from .coordinates import COORDINATES, Coordinates, LinearCoordinates, LogCoordinates
from .data import prepare_data, training_bytes
from .method import HeavyTail, HeavyTailModel
from .metrics import ccdf_l1, evaluate_samples, hill, smoothed_hill, tail_probabilities
from .models import Generator, ParticleCloud, PotentialFlow, Sampler, sample_latent
from .objectives import (DIVERGENCES, AlphaDivergence, FDivergence, KLDivergence, WassersteinCritic,
                         discrete_divergence, gaussian_alpha_divergence, make_divergence, variational_objective)
from .strategies import MODELS, FlowModel, GANModel, GenerativeModel, ParticleModel
from .submanifold import (authors_powers, cauchy_power_sf, off_manifold_distance, submanifold_ccdf_l1,
                          submanifold_metrics)

__all__ = [
    "HeavyTail", "HeavyTailModel",
    "CriticConfig", "FlowConfig", "GANConfig", "HeavyTailConfig", "ParticleConfig",
    "MODELS", "GenerativeModel", "GANModel", "ParticleModel", "FlowModel",
    "COORDINATES", "Coordinates", "LinearCoordinates", "LogCoordinates",
    "CONSTRAINTS", "GradientPenalty", "LipschitzConstraint", "SpectralNormalization", "Unconstrained",
    "make_constraint",
    "DIVERGENCES", "AlphaDivergence", "FDivergence", "KLDivergence", "WassersteinCritic", "discrete_divergence",
    "gaussian_alpha_divergence", "make_divergence", "variational_objective",
    "ccdf_l1", "evaluate_samples", "hill", "smoothed_hill", "tail_probabilities",
    "authors_powers", "cauchy_power_sf", "off_manifold_distance", "submanifold_ccdf_l1", "submanifold_metrics",
    "Generator", "ParticleCloud", "PotentialFlow", "Sampler", "sample_latent",
    "prepare_data", "training_bytes",
]
