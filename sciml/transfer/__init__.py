"""SVD-PINN transfer learning (Gao, Cheung, Ng, arXiv 2211.08760), baselines, and family runs.

``transfer(pretrained, cfg, target=...)`` re-trains a pre-trained PINN for one family member with a
strategy (:class:`SVDTransfer` by default); ``solve_family`` trains K members at once with vmap.
See ``docs/pinn.md``.
"""

from .api import solve_family, strategy_of, transfer
from .family import FamilyTrainer, stack_parametrisation
from .strategies import (FrozenHidden, FullFineTune, LastLayer, Scratch, SVDTransfer, TransferStrategy,
                         linear_weights, strategy_from_name)

__all__ = ["transfer", "solve_family", "strategy_of", "FamilyTrainer", "stack_parametrisation",
           "TransferStrategy", "SVDTransfer", "FullFineTune", "LastLayer", "FrozenHidden", "Scratch",
           "linear_weights", "strategy_from_name"]
