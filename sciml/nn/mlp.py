"""A plain MLP that the forward Laplacian understands."""

from __future__ import annotations

from typing import Sequence

from torch import nn

from ..autodiff.activations import Sin, get_activation

_MODULES = {
    "tanh": nn.Tanh,
    "sin": Sin,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "gelu": nn.GELU,
}


class MLP(nn.Sequential):
    """``in -> [Linear -> activation] x depth -> Linear -> out``, an ``nn.Sequential``.

    Being a ``Sequential`` of ``nn.Linear`` and elementwise activations, it is supported by
    :class:`sciml.autodiff.ForwardLaplacian`. No normalisation layers (they would break vmap).

    Args:
        in_dim: input dimension.
        out_dim: output dimension.
        width: hidden width (ignored when ``widths`` is given).
        depth: number of hidden layers.
        activation: one of tanh, sin, sigmoid, silu, softplus, gelu.
        widths: explicit hidden widths, e.g. ``(300, 300)``.
        init: ``"xavier_normal"`` (zero biases, as the SVD-PINN and DeepXDE codes) or ``"default"``
            (torch's).
    """

    def __init__(self, in_dim: int, out_dim: int = 1, width: int = 128, depth: int = 4,
                 activation: str = "tanh", *, widths: Sequence[int] | None = None,
                 init: str = "xavier_normal"):
        get_activation(activation)  # validates the name with a helpful error
        if activation not in _MODULES:
            raise ValueError(f"activation {activation!r} has no module; choose one of {sorted(_MODULES)}")
        hidden = list(widths) if widths is not None else [width] * depth
        if any(h < 1 for h in hidden) or in_dim < 1 or out_dim < 1:
            raise ValueError(f"dimensions must be positive: in={in_dim}, hidden={hidden}, out={out_dim}")
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), _MODULES[activation]()]
            prev = h
        layers.append(nn.Linear(prev, out_dim))
        super().__init__(*layers)
        self.in_dim, self.out_dim, self.activation = in_dim, out_dim, activation
        if init == "xavier_normal":
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
                    nn.init.zeros_(m.bias)
        elif init != "default":
            raise ValueError(f"init must be 'xavier_normal' or 'default', got {init!r}")
