"""Elementwise activations with closed-form first and second derivatives.

The forward Laplacian needs sigma, sigma' and sigma'' of every nonlinearity; keeping them in one
registry means a new activation is one entry here and is then usable everywhere (networks, forward
Laplacian, tests against ``torch.func.hessian``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["Activation", "ACTIVATIONS", "get_activation", "activation_of_module", "register_activation", "Sin"]


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity with its derivatives.

    Attributes:
        name: registry key.
        derivs: ``z -> (sigma(z), sigma'(z), sigma''(z))``, computed together because they share work.
    """

    name: str
    derivs: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]

    def __call__(self, z: Tensor) -> Tensor:
        return self.derivs(z)[0]


def _tanh(z: Tensor):
    t = torch.tanh(z)
    d1 = 1 - t * t
    return t, d1, -2 * t * d1


def _sin(z: Tensor):
    s = torch.sin(z)
    return s, torch.cos(z), -s


def _sigmoid(z: Tensor):
    s = torch.sigmoid(z)
    d1 = s * (1 - s)
    return s, d1, d1 * (1 - 2 * s)


def _silu(z: Tensor):
    s = torch.sigmoid(z)
    d1s = s * (1 - s)
    return z * s, s + z * d1s, d1s * (2 + z * (1 - 2 * s))


def _softplus(z: Tensor):
    s = torch.sigmoid(z)
    return torch.nn.functional.softplus(z), s, s * (1 - s)


def _gelu(z: Tensor):
    phi = torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return z * cdf, cdf + z * phi, phi * (2 - z * z)


def _identity(z: Tensor):
    return z, torch.ones_like(z), torch.zeros_like(z)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("tanh", _tanh),
        Activation("sin", _sin),
        Activation("sigmoid", _sigmoid),
        Activation("silu", _silu),
        Activation("softplus", _softplus),
        Activation("gelu", _gelu),
        Activation("identity", _identity),
    )
}


def get_activation(name: str) -> Activation:
    """Look up an activation by name, with an error that lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class Sin(nn.Module):
    """``sin`` as a module (torch has none), so SIREN-style MLPs work with the forward Laplacian."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


_MODULE_ACTIVATIONS: dict[type, Activation] = {}


def register_activation(module_type: type[nn.Module], activation: Activation) -> None:
    """Teach the forward Laplacian (and the fast Hutchinson/SDGD paths) a new elementwise activation.

    Args:
        module_type: the ``nn.Module`` class applying the activation elementwise.
        activation: its closed-form ``(sigma, sigma', sigma'')``; also added to :data:`ACTIVATIONS`.

    Example::

        def relu3(z):                  # max(z, 0)^3 / 6, the SVD-PINN code's activation
            p = z.clamp_min(0)
            return p**3 / 6, p**2 / 2, p
        register_activation(ReLU3, Activation("relu3", relu3))
    """
    existing = ACTIVATIONS.get(activation.name)
    if existing is not None and existing is not activation:
        raise ValueError(f"an activation named {activation.name!r} is already registered")
    ACTIVATIONS[activation.name] = activation
    _MODULE_ACTIVATIONS[module_type] = activation


def activation_of_module(module: nn.Module) -> Activation | None:
    """Map a torch activation module to the registry, or ``None`` if it is not a supported one."""
    for cls, act in _MODULE_ACTIVATIONS.items():
        if isinstance(module, cls):
            return act
    if isinstance(module, nn.Tanh):
        return ACTIVATIONS["tanh"]
    if isinstance(module, Sin):
        return ACTIVATIONS["sin"]
    if isinstance(module, nn.Sigmoid):
        return ACTIVATIONS["sigmoid"]
    if isinstance(module, nn.SiLU):
        return ACTIVATIONS["silu"]
    if isinstance(module, nn.Softplus) and module.beta == 1 and module.threshold >= 20:
        return ACTIVATIONS["softplus"]
    if isinstance(module, nn.GELU) and module.approximate == "none":
        return ACTIVATIONS["gelu"]
    if isinstance(module, nn.Identity):
        return ACTIVATIONS["identity"]
    return None
