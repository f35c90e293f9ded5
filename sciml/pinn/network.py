r"""PINN networks: the core's MLP, plus the SVD-PINN code's :math:`\mathrm{ReLU}^3/6` activation.

The released SVD-PINN code uses :math:`\sigma(z) = \max(z, 0)^3 / 6` (so :math:`\sigma' = \max(z,0)^2/2`,
:math:`\sigma'' = \max(z, 0)`), which is registered with the core here (:func:`sciml.autodiff.register_activation`), so ReLU^3
networks get the exact forward Laplacian and the fast Hutchinson/SDGD paths like any other MLP.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from sciml.autodiff import LAPLACIANS, AbstractLaplacian, register_activation
from sciml.autodiff.activations import Activation
from sciml.nn.mlp import MLP

__all__ = ["ReLU3", "RELU3", "build_network", "laplacian_for"]


def _relu3(z: Tensor):
    p = z.clamp_min(0)
    p2 = p * p
    return p2 * p / 6, p2 / 2, p


RELU3 = Activation("relu3", _relu3)


class ReLU3(nn.Module):
    """:math:`\\max(z, 0)^3 / 6`, the SVD-PINN code's activation (C^2, so the PDE residual is continuous)."""

    def forward(self, z: Tensor) -> Tensor:
        return _relu3(z)[0]


register_activation(ReLU3, RELU3)


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


def laplacian_for(module: nn.Module, method: str | AbstractLaplacian = "auto", d: int = 10, probes: int = 16,
                  auto_exact_max_d: int = 64) -> AbstractLaplacian:
    """The Laplacian strategy for ``module`` at spatial dimension ``d``.

    Args:
        method: a :data:`~sciml.autodiff.LAPLACIANS` name, an :class:`AbstractLaplacian` object (used as
            is), or ``"auto"``: the exact forward Laplacian up to ``auto_exact_max_d``, SDGD above (the
            exact methods cost O(d) tangents per point, SDGD ``probes``).
        probes: probes (Hutchinson) or sampled dimensions (SDGD, at most ``d``).
    """
    if method == "auto":
        method = "forward" if d <= auto_exact_max_d else "sdgd"
    return LAPLACIANS.resolve(method, probes=probes, d=d)
