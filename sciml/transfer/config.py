"""Configs of ``sciml pinn transfer | family``: a PINN config plus the ``[transfer]`` table.

One TOML file can serve all three ``sciml pinn`` commands (``configs/pinn/*.toml``); ``pinn train``
keeps the ``[transfer]`` table in its record and does not use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from sciml.pinn.config import PINNConfig
from sciml.run import param

from .strategies import TRANSFER_STRATEGIES

__all__ = ["TransferConfig", "TransferRunConfig", "s_optimizer_for"]


@dataclass(frozen=True)
class TransferConfig:
    method: str = param("svd", choices=TRANSFER_STRATEGIES.names(),
                        doc="svd = SVD-PINN (paper); sigma_only = singular values only; the rest are baselines")
    targets: tuple[float, ...] = param((50.0,), doc="family parameter(s) to transfer to (command line)")
    layers: str = param("hidden_square", choices=("hidden_square", "all_hidden"),
                        doc="which weights to factor: the square hidden-to-hidden ones, or every hidden layer")
    rank: int = param(0, ge=0, doc="keep the top-r singular values trainable (0: full rank)")
    s_optimizer: str = param("sgd", choices=("sgd", "adam"), doc="optimiser of the singular values")
    s_lr: float = param(1e-2, gt=0, doc="learning rate of the singular values")
    s_momentum: float = param(0.0, ge=0, lt=1, doc="SGD momentum of s (the paper: none)")


@dataclass(frozen=True)
class TransferRunConfig(PINNConfig):
    """A transfer or family run: the training keys of :class:`PINNConfig` (the network, the family and
    ``d`` are taken from the pre-trained run) and the ``[transfer]`` table."""

    transfer: TransferConfig = field(default_factory=TransferConfig)


def s_optimizer_for(t: TransferConfig) -> Callable[[list[Tensor]], torch.optim.Optimizer]:
    """The optimiser of the singular values that ``t`` names (the trainer's ``s_optimizer``)."""
    if t.s_optimizer == "sgd":
        return lambda s: torch.optim.SGD(s, lr=t.s_lr, momentum=t.s_momentum)
    return lambda s: torch.optim.Adam(s, lr=t.s_lr)
