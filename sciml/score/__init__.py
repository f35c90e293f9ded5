"""Score-based generative models with linear or nonlinear noising dynamics (DSM / NDSM).

See ``docs/score.md``. Train with ``sciml.fit(ScoreTraining, ScoreConfig(...), data, out=...)``; the
payload is a :class:`ScoreRun` (``ScoreTraining.load(run_dir)`` reads it back), which samples with
``generate(n)``. The pieces: forward SDEs (:mod:`.sde`, registry :data:`SDES`), GMM fitting for
Langevin drifts (:mod:`.gmm`), objectives, weightings and control variates (:mod:`.objectives`,
registries :data:`OBJECTIVES`, :data:`WEIGHTINGS`), the score model and EMA (:mod:`.model`),
samplers (:mod:`.samplers`, registry :data:`SAMPLERS`), mode metrics (:mod:`.metrics`), the config
(:mod:`.config`), builders and memory estimates (:mod:`.build`), sample checks and files (:mod:`.data`).
"""

from .config import ModelConfig, SampleConfig, ScoreConfig, SDEConfig, TrainConfig
from .data import check_samples, load_samples
from .gmm import GMM, fit_gmm
from .method import ScoreRun, ScoreTraining
from .model import EMA, ScoreModel
from .objectives import (DSM, NDSM, OBJECTIVES, WEIGHTINGS, ControlVariates, NoiseVarianceWeighting, Objective,
                         PathBank, UniformWeighting, Weighting)
from .samplers import SAMPLERS, EulerMaruyama, ProbabilityFlow, Sampler, StochasticHeun, sample, sample_batches
from .sde import SDE, SDES, VESDE, VPSDE, LangevinSDE, NonlinearSDE, StandardNormal

__all__ = [
    "ScoreTraining", "ScoreRun", "ScoreConfig", "SDEConfig", "ModelConfig", "TrainConfig", "SampleConfig",
    "SDES", "OBJECTIVES", "WEIGHTINGS", "SAMPLERS",
    "GMM", "fit_gmm", "EMA", "ScoreModel", "Objective", "DSM", "NDSM", "ControlVariates", "Weighting",
    "NoiseVarianceWeighting", "UniformWeighting", "PathBank", "Sampler", "EulerMaruyama", "ProbabilityFlow",
    "StochasticHeun", "sample", "sample_batches", "SDE", "VESDE", "VPSDE", "LangevinSDE", "NonlinearSDE",
    "StandardNormal", "check_samples", "load_samples",
]
