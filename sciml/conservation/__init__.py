"""Conservation-law discovery from trajectories by neural deflation. See ``docs/conservation.md``.

``sciml.fit(Deflation, DiscoveryConfig(...), trajectories, out=...)`` -> ``Result[Discovery]``;
``Deflation.load(run_dir)`` -> the same :class:`Discovery`.
"""

from .candidate import Candidate, LawFit, candidate_seeds
from .checks import constancy, span_check
from .config import DiscoveryConfig, NetworkConfig
from .count import COUNT_RULES, CountDecision, CountRule, FloorRule, JumpRule, count_rule
from .data import PointSet, finite_difference_velocity, make_points
from .discover import Deflation
from .features import DEFAULT_FEATURES, FEATURES, Atom, Feature
from .losses import alignment_residual, deflation_factor, orthonormal_span, point_loss, poisson_bracket
from .model import ConservedQuantity, LearnedInvariant
from .results import Discovery, load_discovery

__all__ = [
    "Deflation", "Discovery", "DiscoveryConfig", "NetworkConfig", "LawFit", "Candidate", "candidate_seeds",
    "load_discovery", "COUNT_RULES", "CountRule", "CountDecision", "JumpRule", "FloorRule", "count_rule",
    "constancy", "span_check", "PointSet", "finite_difference_velocity", "make_points",
    "alignment_residual", "deflation_factor", "orthonormal_span", "point_loss", "poisson_bracket",
    "ConservedQuantity", "LearnedInvariant", "FEATURES", "DEFAULT_FEATURES", "Feature", "Atom",
]
