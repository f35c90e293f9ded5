"""PINNs for (high-dimensional) evolution and stationary PDEs on the autodiff core.

Define a :class:`PDEProblem` or a :class:`StationaryProblem` (or take one from ``problems.pdes`` /
``problems.highd``), then train it with
``sciml.fit(PINN, PINNConfig(...), problem, out=...)``; ``PINN.load(out)`` reads the trained network
back, and :mod:`sciml.transfer` re-uses it for other members of the family. See ``docs/pinn.md``.
"""

from .config import (ACTIVATIONS, LaplacianConfig, LossConfig, ModelConfig, OptimConfig, PINNConfig, ProblemConfig,
                     SamplingConfig)
from .method import PINN, CheckpointError, PINNMethodBase, TrainedPINN, check_memory, memory_estimate
from .network import ReLU3, build_network, laplacian_for
from .problem import (Ball, Box, DistanceAnsatz, HardDirichlet, PDEProblem, StationaryProblem, ball_distance,
                      box_distance, is_stationary)
from .sampling import SAMPLERS, Points, RadialUniformBall, UniformBall, sample_boundary, sample_domain, sample_points
from .solver import (MemberObjective, Objective, Parametrisation, Trainer, identity_parametrisation, pinn_loss,
                     predict, predict_stationary, relative_l2, stationary_loss, with_hard_constraints)

__all__ = [
    "PINN", "TrainedPINN", "PINNMethodBase", "CheckpointError", "check_memory", "memory_estimate",
    "PINNConfig", "ProblemConfig", "ModelConfig", "SamplingConfig", "LossConfig", "LaplacianConfig",
    "OptimConfig", "ACTIVATIONS",
    "ReLU3", "build_network", "laplacian_for",
    "Ball", "Box", "HardDirichlet", "PDEProblem", "StationaryProblem", "DistanceAnsatz", "ball_distance",
    "box_distance", "is_stationary",
    "SAMPLERS", "Points", "UniformBall", "RadialUniformBall", "sample_points", "sample_domain", "sample_boundary",
    "Parametrisation", "Trainer", "Objective", "MemberObjective", "identity_parametrisation", "pinn_loss",
    "predict", "predict_stationary", "stationary_loss", "relative_l2", "with_hard_constraints",
]
