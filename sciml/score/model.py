r"""The score model :math:`s_\theta(x, t) \approx \nabla_x \log p_t(x)` and an exponential moving average.

The network's raw output is divided by the SDE's noise scale :math:`\sigma(t)`, since the true score has
size :math:`\sim 1/\sigma(t)` (so the network learns O(1) outputs at every t). Optionally, for Langevin
SDEs, the reference score is added: :math:`s_\theta = \nabla\log\pi + \mathrm{net}/\sigma`, so the network
learns only the correction to the fitted mixture ("prior residual").
"""

from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .sde import SDE, LangevinSDE, bc

__all__ = ["ScoreModel", "EMA"]


class ScoreModel(nn.Module):
    """``s(x, t) = net(x, t) / noise_scale(t) [+ grad log pi(x)]``.

    Args:
        net: a network of ``(x, t)`` returning x's shape (:mod:`sciml.nn.score_nets`).
        sde: the forward SDE (supplies the noise scale and, for Langevin, the reference score).
        prior_residual: add the Langevin target's score (only for :class:`LangevinSDE`).
    """

    def __init__(self, net: nn.Module, sde: SDE, *, prior_residual: bool = False):
        super().__init__()
        if prior_residual and not isinstance(sde, LangevinSDE):
            raise ValueError("prior_residual needs a LangevinSDE (a reference density to add the score of)")
        self.net, self.sde, self.prior_residual = net, sde, prior_residual

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        out = self.net(x, t) / bc(self.sde.noise_scale(t), x)
        if self.prior_residual:
            out = out + self.sde.target_score(x)
        return out


class EMA:
    r"""Exponential moving average of a module's parameters: :math:`\bar\theta \leftarrow d\,\bar\theta + (1-d)\theta`.

    Uses the warm-up :math:`d_k = \min(d, (1+k)/(10+k))` so early averages are not dominated by the
    random initialisation.
    """

    def __init__(self, module: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}
        self.n_updates = 0

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = min(self.decay, (1 + self.n_updates) / (10 + self.n_updates))
        for k, v in module.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)
        self.n_updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow, "n_updates": self.n_updates}

    def load_state_dict(self, st: dict) -> None:
        self.decay, self.n_updates = st["decay"], st["n_updates"]
        self.shadow = {k: v.clone() for k, v in st["shadow"].items()}

    @contextmanager
    def applied(self, module: nn.Module):
        """Temporarily load the averaged weights into ``module``."""
        saved = copy.deepcopy(module.state_dict())
        module.load_state_dict(self.shadow)
        try:
            yield module
        finally:
            module.load_state_dict(saved)
