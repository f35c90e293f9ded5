"""Conservation-law discovery from trajectories by neural deflation. See ``docs/conservation.md``."""

from .checks import constancy, span_check
from .count import CountDecision, FloorRule, JumpRule
from .data import PointSet, finite_difference_velocity, make_points
from .discover import Discovery, DiscoveryConfig, LawFit, NetworkConfig, discover
from .losses import alignment_residual, deflation_factor, orthonormal_span, point_loss, poisson_bracket
from .model import ConservedQuantity, LearnedInvariant

__all__ = [
    "constancy", "span_check", "CountDecision", "JumpRule", "FloorRule", "PointSet", "finite_difference_velocity",
    "make_points", "Discovery", "DiscoveryConfig", "LawFit", "NetworkConfig", "discover",
    "alignment_residual", "deflation_factor", "orthonormal_span", "point_loss", "poisson_bracket",
    "ConservedQuantity", "LearnedInvariant",
]
