"""SVD-PINN transfer learning (Gao, Cheung, Ng, arXiv 2211.08760), baselines, and family runs.

``sciml.fit(Transfer, cfg, target, source=PINN.load(run))`` re-trains a pre-trained PINN for one
family member with a strategy (:class:`SVDTransfer` by default, any of :data:`TRANSFER_STRATEGIES`);
``sciml.fit(Family, cfg, members, source=...)`` trains K members at once with vmap.
See ``docs/pinn.md``.
"""

from .config import TransferConfig, TransferRunConfig, s_optimizer_for
from .family import FamilyObjective, ShardedFamily, family_trainer, stack_parametrisation
from .methods import Family, TrainedFamily, Transfer
from .strategies import (TRANSFER_STRATEGIES, FrozenHidden, FullFineTune, LastLayer, Scratch, SVDTransfer,
                         TransferStrategy, linear_weights)

__all__ = ["Transfer", "Family", "TrainedFamily", "TransferConfig", "TransferRunConfig", "s_optimizer_for",
           "FamilyObjective", "ShardedFamily", "family_trainer", "stack_parametrisation",
           "TRANSFER_STRATEGIES", "TransferStrategy", "SVDTransfer", "FullFineTune", "LastLayer", "FrozenHidden",
           "Scratch", "linear_weights"]
