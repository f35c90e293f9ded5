"""Networks shared by the methods."""

from .mlp import MLP

__all__ = ["MLP"]
