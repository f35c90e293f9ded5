r"""PINN networks: the core's MLP, plus the SVD-PINN code's :math:`\mathrm{ReLU}^3/6` activation.

The released SVD-PINN code uses :math:`\sigma(z) = \max(z, 0)^3 / 6` (so :math:`\sigma' = \max(z,0)^2/2`,
:math:`\sigma'' = \max(z, 0)`), which the core's activation registry does not list. :func:`laplacian_for`
hands such a network to the core's forward-Laplacian kernel
(:func:`sciml.autodiff.forward_quadratic_trace`) with an explicit structure, so the exact Laplacian
stays one forward + one adjoint sweep; the stochastic methods fall back to Hessian-vector products.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from sciml.autodiff import (
    SDGD, AbstractLaplacian, Derivatives, ForwardLaplacian, HessianTrace, Hutchinson, UnsupportedModelError,
    forward_quadratic_trace, mlp_structure,
)
from sciml.autodiff.activations import Activation
from sciml.autodiff.forward import MLPStructure
from sciml.nn.mlp import MLP

__all__ = ["ReLU3", "RELU3", "build_network", "laplacian_for", "StructuredForwardLaplacian"]


def _relu3(z: Tensor):
    p = z.clamp_min(0)
    p2 = p * p
    return p2 * p / 6, p2 / 2, p


RELU3 = Activation("relu3", _relu3)


class ReLU3(nn.Module):
    """:math:`\\max(z, 0)^3 / 6`, the SVD-PINN code's activation (C^2, so the PDE residual is continuous)."""

    def forward(self, z: Tensor) -> Tensor:
        return _relu3(z)[0]


def build_network(in_dim: int, widths: Sequence[int], activation: str = "tanh") -> nn.Sequential:
    """An MLP ``in_dim -> widths -> 1`` with xavier-normal weights and zero biases.

    ``activation`` is any of the core's (tanh, sin, ...) or ``"relu3"``.
    """
    if activation != "relu3":
        return MLP(in_dim, 1, widths=tuple(widths), activation=activation)
    net = MLP(in_dim, 1, widths=tuple(widths), activation="tanh")
    for i, m in enumerate(net):
        if isinstance(m, nn.Tanh):
            net[i] = ReLU3()
    net.activation = "relu3"
    return net


def _structure(module: nn.Module) -> MLPStructure:
    """The core's ``mlp_structure``, also accepting :class:`ReLU3` layers."""
    weights, biases, acts = [], [], []
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            weights.append(f"{name}.weight")
            biases.append(f"{name}.bias" if sub.bias is not None else None)
        elif isinstance(sub, ReLU3):
            acts.append(RELU3)
        elif not isinstance(sub, nn.Sequential):
            probe = nn.Sequential(nn.Linear(1, 1), sub, nn.Linear(1, 1))
            acts.append(mlp_structure(probe).activations[0])
    if len(acts) != len(weights) - 1:
        raise UnsupportedModelError("expected alternating Linear and activation layers ending in Linear")
    return MLPStructure(tuple(weights), tuple(biases), tuple(acts))


@dataclass(frozen=True)
class StructuredForwardLaplacian(AbstractLaplacian):
    """Exact forward Laplacian for an MLP whose structure is given (used for ReLU^3 networks)."""

    structure: MLPStructure

    def __call__(self, f, params, x, *, dims=None, noise=None, generator=None, with_gradient=False,
                 chunk_size=None) -> Derivatives:
        d = x.shape[-1]
        idx = torch.arange(d, device=x.device) if dims is None else torch.as_tensor(list(dims), device=x.device)
        tangents = torch.zeros(d, idx.numel(), dtype=x.dtype, device=x.device)
        tangents[idx, torch.arange(idx.numel(), device=x.device)] = 1
        value, lap, grad = forward_quadratic_trace(self.structure, params, x, tangents, with_gradient=with_gradient)
        return Derivatives(value.squeeze(-1), lap.squeeze(-1), None if grad is None else grad.squeeze(-2))


def laplacian_for(module: nn.Module, method: str = "auto", d: int = 10, probes: int = 16,
                  auto_exact_max_d: int = 64) -> AbstractLaplacian:
    """The Laplacian strategy for ``module`` at spatial dimension ``d``.

    Args:
        method: ``"auto"`` (exact forward Laplacian up to ``auto_exact_max_d``, SDGD above), ``"forward"``,
            ``"hessian"``, ``"hutchinson"`` or ``"sdgd"``.
        probes: probes (Hutchinson) or sampled dimensions (SDGD).
    """
    if method == "auto":
        method = "forward" if d <= auto_exact_max_d else "sdgd"
    if method == "forward":
        try:
            mlp_structure(module)
            return ForwardLaplacian()
        except UnsupportedModelError:
            return StructuredForwardLaplacian(_structure(module))
    if method == "hessian":
        return HessianTrace()
    if method == "hutchinson":
        return Hutchinson(probes)
    if method == "sdgd":
        return SDGD(min(probes, d))
    raise ValueError(f"unknown Laplacian method {method!r}; choose auto, forward, hessian, hutchinson or sdgd")
