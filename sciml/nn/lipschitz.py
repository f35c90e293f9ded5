r"""Lipschitz networks: a critic MLP, hard spectral normalisation, Lipschitz bounds and estimates.

A composition of layers is Lipschitz with constant at most the product of the layers' constants. With
1-Lipschitz activations (ReLU, leaky ReLU, ELU, tanh, softplus) an MLP whose ``n`` weight matrices each
have spectral norm :math:`L^{1/n}` is :math:`L`-Lipschitz. :func:`spectral_normalize_` rescales the
weights to exactly that norm after an optimiser step (the authors' GPA code does the same: exact
normalisation, not clipping).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

__all__ = ["LIPSCHITZ_ACTIVATIONS", "CriticMLP", "linear_layers", "spectral_norms", "spectral_normalize_",
           "lipschitz_upper_bound", "input_gradient_norms"]

#: activations with Lipschitz constant 1 (so weight spectral norms bound the network's constant)
LIPSCHITZ_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


class CriticMLP(nn.Sequential):
    """``in -> [Linear -> act] x depth -> Linear -> 1``: a scalar critic (discriminator) network.

    Args:
        in_dim: input dimension.
        width: hidden width.
        depth: hidden layers.
        activation: a 1-Lipschitz activation from :data:`LIPSCHITZ_ACTIVATIONS`.
        out_dim: output size (1 for a critic).
    """

    def __init__(self, in_dim: int, width: int = 64, depth: int = 3, activation: str = "relu", out_dim: int = 1):
        if activation not in LIPSCHITZ_ACTIVATIONS:
            raise ValueError(f"activation {activation!r} unknown; choose one of {sorted(LIPSCHITZ_ACTIVATIONS)}")
        layers: list[nn.Module] = []
        prev = in_dim
        for _ in range(depth):
            layers += [nn.Linear(prev, width), LIPSCHITZ_ACTIVATIONS[activation]()]
            prev = width
        layers.append(nn.Linear(prev, out_dim))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim


def linear_layers(module: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``module`` in order."""
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def spectral_norms(module: nn.Module) -> list[float]:
    """Exact largest singular value of each linear layer's weight."""
    return [float(torch.linalg.matrix_norm(m.weight.detach(), ord=2)) for m in linear_layers(module)]


@torch.no_grad()
def spectral_normalize_(module: nn.Module, lipschitz: float) -> None:
    r"""Rescale every linear weight in place to spectral norm :math:`L^{1/n}` (``n`` linear layers), so the
    network (with 1-Lipschitz activations) is :math:`L`-Lipschitz."""
    layers = linear_layers(module)
    target = float(lipschitz) ** (1.0 / len(layers))
    for m in layers:
        s = torch.linalg.matrix_norm(m.weight, ord=2)
        m.weight.mul_(target / s.clamp_min(1e-12))


def lipschitz_upper_bound(module: nn.Module) -> float:
    """Product of the weights' spectral norms: an upper bound on the Lipschitz constant (1-Lipschitz
    activations assumed)."""
    out = 1.0
    for s in spectral_norms(module):
        out *= s
    return out


def input_gradient_norms(f: Callable[..., Tensor], params: Any, x: Tensor, *, chunk_size: int | None = None) -> Tensor:
    r""":math:`|\nabla_x f(x_i)|` at each row of ``x`` for a per-point scalar function ``f(params, x)``,
    through the autodiff core's vmapped gradient. Its maximum is a lower bound on the Lipschitz constant."""
    from ..autodiff import batch, gradient

    return batch(gradient(f), chunk_size=chunk_size)(params, x).norm(dim=-1)
