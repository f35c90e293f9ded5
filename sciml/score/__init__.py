"""Score-based generative models with linear or nonlinear noising dynamics (DSM / NDSM).

See ``docs/score.md``. The pieces: forward SDEs (:mod:`.sde`), GMM fitting for Langevin drifts
(:mod:`.gmm`), objectives and control variates (:mod:`.objectives`), the score model and EMA
(:mod:`.model`), samplers (:mod:`.samplers`), mode metrics (:mod:`.metrics`), and the entry points
``train`` / ``load_run`` / ``generate`` (:mod:`.train`).
"""

from .gmm import GMM, fit_gmm
from .model import EMA, ScoreModel
from .objectives import DSM, NDSM, ControlVariates, NoiseVarianceWeighting, PathBank, UniformWeighting
from .samplers import EulerMaruyama, ProbabilityFlow, StochasticHeun, sample
from .sde import SDE, VESDE, VPSDE, LangevinSDE, NonlinearSDE, StandardNormal
from .train import ScoreConfig, ScoreRun, load_run, train

__all__ = [
    "GMM", "fit_gmm", "EMA", "ScoreModel", "DSM", "NDSM", "ControlVariates", "NoiseVarianceWeighting",
    "PathBank", "UniformWeighting", "EulerMaruyama", "ProbabilityFlow", "StochasticHeun", "sample",
    "SDE", "VESDE", "VPSDE", "LangevinSDE", "NonlinearSDE", "StandardNormal",
    "ScoreConfig", "ScoreRun", "load_run", "train",
]
