"""sciml: scientific machine learning on one torch.func autodiff core."""

__version__ = "0.1.0"
