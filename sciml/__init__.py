"""sciml: scientific machine learning on one torch.func autodiff core.

``sciml.fit(Method, config, problem, out=...)`` trains any wing (:mod:`sciml.run.method`); each
wing's method class has ``load(run_dir)`` to read a finished run back.
"""

__version__ = "0.1.0"

__all__ = ["fit", "Result", "Status", "derive_seed"]


def __getattr__(name: str):  # lazy, so that `sciml --help` does not import torch
    if name in __all__:
        from . import run

        return getattr(run, name)
    raise AttributeError(f"module 'sciml' has no attribute {name!r}")
