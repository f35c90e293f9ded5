"""The autodiff core: per-point derivative operators on ``torch.func``, lifted over batches with vmap.

Imports nothing else from sciml but the dependency-free :mod:`sciml.registry`; every method stands on it. See ``docs/autodiff.md``.
"""

from .activations import ACTIVATIONS, Activation, Sin, get_activation, register_activation
from .compile import compile_loss
from .forward import UnsupportedModelError, forward_quadratic_trace, mlp_structure
from .laplacian import (
    SDGD,
    AbstractLaplacian,
    Derivatives,
    EvolutionDerivatives,
    ForwardLaplacian,
    LAPLACIANS,
    HessianTrace,
    Hutchinson,
    NestedAutograd,
    default_laplacian,
    evolution_terms,
)
from .operators import (
    batch,
    divergence,
    divergence_estimate,
    gaussian,
    gradient,
    hessian,
    hvp,
    jacobian,
    point_function,
    rademacher,
    value_and_gradient,
)

__all__ = [
    "ACTIVATIONS", "Activation", "Sin", "get_activation", "register_activation",
    "compile_loss", "UnsupportedModelError", "forward_quadratic_trace", "mlp_structure",
    "AbstractLaplacian", "Derivatives", "EvolutionDerivatives", "ForwardLaplacian", "HessianTrace",
    "LAPLACIANS", "Hutchinson", "NestedAutograd", "SDGD", "default_laplacian", "evolution_terms",
    "batch", "divergence", "divergence_estimate", "gaussian", "gradient", "hessian", "hvp", "jacobian",
    "point_function", "rademacher", "value_and_gradient",
]
