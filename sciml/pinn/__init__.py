"""PINNs for (high-dimensional) evolution PDEs on the autodiff core.

Define a :class:`PDEProblem` (or take one from ``problems.pdes``), then :func:`train` it from a
config; :mod:`sciml.transfer` re-uses a trained network for other members of the family.
See ``docs/pinn.md``.
"""

from .api import Pretrained, load_pretrained, problem_from_config, train
from .config import (LaplacianConfig, LossConfig, ModelConfig, OptimConfig, PINNConfig, ProblemConfig,
                     SamplingConfig, TransferConfig)
from .network import ReLU3, build_network, laplacian_for
from .problem import Ball, Box, HardDirichlet, PDEProblem
from .sampling import Points, RadialUniformBall, UniformBall, sample_boundary, sample_domain, sample_points
from .solver import Parametrisation, Trainer, identity_parametrisation, pinn_loss, predict, relative_l2

__all__ = [
    "train", "load_pretrained", "Pretrained", "problem_from_config",
    "PINNConfig", "ProblemConfig", "ModelConfig", "SamplingConfig", "LossConfig", "LaplacianConfig",
    "OptimConfig", "TransferConfig",
    "ReLU3", "build_network", "laplacian_for",
    "Ball", "Box", "HardDirichlet", "PDEProblem",
    "Points", "UniformBall", "RadialUniformBall", "sample_points", "sample_domain", "sample_boundary",
    "Parametrisation", "Trainer", "identity_parametrisation", "pinn_loss", "predict", "relative_l2",
]
