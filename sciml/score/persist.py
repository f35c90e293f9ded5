"""Reading a trained score model back from its run directory (:meth:`ScoreTraining.load`).

``RUN/config.toml`` gives the architecture, ``RUN/model.pt`` (or, for a run that never finished, the
newest ``RUN/checkpoints/ckpt_<step>.pt``) the weights, coefficients, normaliser and mixture. Every
way these files can be unusable (missing, truncated, written by something else, not matching the
config) is one :class:`~sciml.run.errors.CheckpointError` (a missing run: :class:`~sciml.io.DataError`)
naming the file; nothing is written, not even a folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..io import DataError
from ..run import load_config
from ..run.errors import CheckpointError
from .build import build_net, build_objective, build_sde
from .config import ScoreConfig
from .gmm import GMM
from .model import ScoreModel

__all__ = ["read_run", "state_file", "read_state"]

_NEEDED = ("ema", "shift", "scale", "event_shape", "t_min")


def state_file(path: Path) -> Path:
    """``model.pt``, else the newest checkpoint of the run in ``path``."""
    from .method import MODEL_FILE

    model = path / MODEL_FILE
    if model.is_file():
        return model
    ckpts = []
    for p in (path / "checkpoints").glob("ckpt_*.pt"):
        try:
            ckpts.append((int(p.stem.split("_", 1)[1]), p))
        except ValueError:
            continue
    if not ckpts:
        raise DataError(f"{path}: no {MODEL_FILE} and no checkpoint in {path / 'checkpoints'}; the run never saved "
                        "one (train it again, or --resume it)")
    return max(ckpts)[1]


def read_state(file: Path) -> dict[str, Any]:
    """The saved state in ``file``, checked to be a score model's (tensors only: nothing is executed)."""
    try:
        st = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, a text file, a pickle of other objects
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{file}: cannot be read ({type(e).__name__}: {first}); the file is truncated or not a "
                        "sciml score model: train again, or sample from the run's latest checkpoint") from None
    missing = [k for k in _NEEDED if not isinstance(st, Mapping) or k not in st]
    if missing:
        raise CheckpointError(f"{file}: not a sciml score model (missing {missing}); pass a run directory written by "
                        "`sciml score train`")
    return st


def read_run(path: Path, device: torch.device):
    """The :class:`~sciml.score.method.ScoreRun` saved in the run directory ``path``."""
    if not (path / "config.toml").is_file():
        raise DataError(f"{path}: not a score run directory (no config.toml); pass the folder written by "
                        "`sciml score train --out`")
    cfg = load_config(path / "config.toml", ScoreConfig)
    file = state_file(path)
    st = read_state(file)
    try:
        return _assemble(cfg, st, device)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise CheckpointError(f"{file}: does not match the run's config.toml ({type(e).__name__}: {first}); the files "
                        "come from different runs") from None


def _assemble(cfg: ScoreConfig, st: Mapping[str, Any], device: torch.device):
    from .method import ScoreRun

    event_shape = tuple(int(s) for s in st["event_shape"])
    gmm = st.get("gmm")
    gmm = GMM(*(gmm[k].to(device) for k in ("weights", "means", "prec_chol"))) if gmm is not None else None
    sde = build_sde(cfg.sde, event_shape, gmm)
    with torch.random.fork_rng(devices=[]):  # reading a model does not move the caller's random stream
        net = build_net(cfg.model, event_shape)
        objective = build_objective(cfg.train, sde)
    net.load_state_dict(st["ema"]["shadow"])
    net.to(device)
    cv = getattr(objective, "cv", None)
    if cv is not None:
        cv.load_state_dict(st["cv"])
        cv.to(device)
    residual = cfg.model.prior_residual if cfg.model.prior_residual is not None else cfg.sde.kind == "langevin_gmm"
    model = ScoreModel(net, sde, prior_residual=residual).eval()
    return ScoreRun(cfg, model, sde, st["shift"].to(device), st["scale"].to(device), float(st["t_min"]), objective,
                    gmm, int(st.get("step", 0)))
