r"""The heavy-tail method for :func:`sciml.fit`: one class, :class:`HeavyTail`, for the three generators
(GAN, particle flow, normalising flow: the strategies of :data:`~sciml.heavytail.strategies.MODELS`).

::

    res = sciml.fit(HeavyTail, HeavyTailConfig(model="gan"), data, out="runs/t15", problem=prob)
    model = HeavyTail.load("runs/t15")          # HeavyTailModel, the same as res.payload
    x = model.sample(10000, generator=torch.Generator().manual_seed(1))

A run writes, besides what :func:`sciml.fit` writes, ``results.h5`` (the samples the final metrics
were computed on, the metrics as attributes) and ``model.pt`` (the trained generator and critic).
Checkpoints hold everything the remaining steps depend on: the generator (networks or particles), the
critic, both optimisers, the run's random stream and torch's, and a fingerprint of the data (a run is
resumed only on the data it was started with).

Random streams: networks are initialised from torch's global stream seeded by :func:`sciml.fit`; every
draw during training (minibatches, latent noise, penalty interpolates, Hutchinson probes, the initial
particles) and the final samples come from one generator seeded with ``config.seed`` itself, the
stream the docs' tables were drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ..autodiff import batch, gradient, point_function
from ..io import DataError
from ..nn.lipschitz import CriticMLP
from ..run import (CheckpointError, ConfigError, MethodBase, Result, RunDir, UsageError, atomic_torch_save,
                   load_config, read_torch_file, require_memory, resolve_device, rng_state, set_rng_state)
from ..run.distributed import DistributedUnsupported
from .config import HeavyTailConfig
from .constraints import LipschitzConstraint, make_constraint
from .data import fingerprint, prepare_data, training_bytes
from .metrics import evaluate_samples
from .models import ParticleCloud, Sampler
from .objectives import DIVERGENCES, AlphaDivergence, FDivergence, WassersteinCritic, variational_objective
from .strategies import MODELS, GenerativeModel

__all__ = ["HeavyTail", "HeavyTailModel"]


@dataclass
class HeavyTailModel:
    """A trained heavy-tail generator: the payload of a :class:`HeavyTail` run.

    Attributes:
        config: the run's config.
        sampler: the generator (:class:`~sciml.heavytail.models.Generator`,
            :class:`~sciml.heavytail.models.ParticleCloud` or :class:`~sciml.heavytail.models.PotentialFlow`).
        critic: the trained critic (``None`` for the flow).
        info: what the config left to the data (``dim``, ``latent_nu``, ``n_particles``, ``base_nu``, ...).
        samples: the ``(n, D)`` draws the final metrics were computed on (``results.h5``).
        metrics: the final metrics (training and tail metrics).
    """

    config: HeavyTailConfig
    sampler: Sampler
    critic: CriticMLP | None
    info: dict[str, Any]
    samples: np.ndarray | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.sampler.dim)

    @property
    def device(self) -> torch.device:
        return next(iter(self.sampler.state_dict().values())).device  # of the parameters or the particles

    @property
    def capacity(self) -> int | None:
        """The most samples one call can return (the particle flow: its particles; else unbounded)."""
        return len(self.sampler) if isinstance(self.sampler, ParticleCloud) else None

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples ``(n, D)`` on the generator's device (particles: the first ``n``), randomness
        from ``generator`` (``None``: torch's global stream).

        Raises:
            UsageError: ``n`` is negative, above :attr:`capacity`, or does not fit in memory.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise UsageError("n", f"must be a whole number >= 0, got {n!r}")
        e = torch.finfo(torch.get_default_dtype()).bits // 8
        require_memory(3 * e * int(n) * self.dim, self.device, option="n",
                       what=f"drawing {n} samples of dimension {self.dim}", fix="draw fewer at a time")
        return self.sampler.sample(int(n), generator=generator)


def _networks(cfg: HeavyTailConfig, model: GenerativeModel, info: Mapping[str, Any], device: torch.device,
              generator: torch.Generator | None) -> tuple[CriticMLP | None, nn.Module]:
    """The critic (adversarial models) and the generator, in this order (torch's global stream)."""
    c = cfg.critic
    critic = CriticMLP(info["dim"], c.width, c.depth, c.activation).to(device) if model.adversarial else None
    return critic, model.build(cfg, dict(info), device=device, generator=generator)


def _check_objective(div: FDivergence, constraint: LipschitzConstraint) -> None:
    if isinstance(div, AlphaDivergence) and div.alpha < 1:
        raise ConfigError("divergence", "alpha < 1 is not supported for training (its conjugate is +inf for "
                                        "phi >= 0); use alpha > 1 or alpha = 1 (KL)")
    if isinstance(div, WassersteinCritic) and not constraint.bounded:
        raise ConfigError("constraint", "the Wasserstein objective needs a Lipschitz critic; use 'gp' or 'spectral'")


class HeavyTail(MethodBase[HeavyTailModel]):
    """Train a heavy-tailed generative model on samples with :func:`sciml.fit`.

    ``build(config, data, *, device, problem=None, divergence=None, constraint=None, evaluate=True)``:

    * ``data``: samples ``(n,)`` or ``(n, D)``, finite, at least 50 rows.
    * ``problem``: a heavy-tail problem with exact survival functions (``problems/heavy_tails.py``) for
      the exact-tail metrics; without it the data are the reference.
    * ``divergence``, ``constraint``: a name or an object (:data:`~sciml.heavytail.objectives.DIVERGENCES`,
      :data:`~sciml.heavytail.constraints.CONSTRAINTS`); default: the config's.
    * ``evaluate``: compute the tail metrics of the final samples.

    Payload: :class:`HeavyTailModel`; ``HeavyTail.load(run_dir)`` reads it back.
    """

    command = "heavytail train"

    def __init__(self, config: HeavyTailConfig, data: np.ndarray, *, device: torch.device, problem: Any = None,
                 divergence: str | FDivergence | None = None, constraint: str | LipschitzConstraint | None = None,
                 evaluate: bool = True):
        cfg = self.config = config
        self.model: GenerativeModel = MODELS.resolve(cfg.model)
        self.data, self.fingerprint, self.problem, self.evaluate = data, fingerprint(data), problem, evaluate
        self.device, dtype = device, torch.get_default_dtype()
        self.divergence = DIVERGENCES.resolve(cfg.divergence if divergence is None else divergence, alpha=cfg.alpha)
        self.constraint = make_constraint(cfg.constraint if constraint is None else constraint, cfg.lipschitz,
                                          cfg.gp_weight)
        if self.model.adversarial:
            _check_objective(self.divergence, self.constraint)
        # every draw of the run comes from this stream, seeded with the seed itself (see the module docstring)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.info = self.model.resolve(cfg, data)
        self.critic, self.sampler = _networks(cfg, self.model, self.info, device, self.generator)
        self.opt_critic = (torch.optim.Adam(self.critic.parameters(), lr=cfg.critic.lr, betas=(0.5, 0.999))
                           if self.critic is not None else None)
        self.optimiser = self.model.optimiser(cfg, self.sampler)
        # the critic and the generator work in the model's coordinates u = T(x) (identity unless log)
        self.coordinates = self.model.coordinates(cfg)
        self.X = self.coordinates.forward(torch.as_tensor(data, dtype=dtype, device=device))
        self.batch_size = cfg.batch or len(data)
        if self.critic is not None:
            self._phi = point_function(self.critic)
            self._grad_phi = batch(gradient(self._phi))

    @classmethod
    def build(cls, config: HeavyTailConfig, data: Any, *, device: torch.device, dist: Any = None, problem: Any = None,
              divergence: str | FDivergence | None = None, constraint: str | LipschitzConstraint | None = None,
              evaluate: bool = True) -> "HeavyTail":
        if dist is not None and getattr(dist, "distributed", False):
            raise DistributedUnsupported("heavytail training has no data-parallel mode (the generator and critic "
                                         "updates alternate in one process); run it as one process")
        arr = prepare_data(data)
        n, dim = arr.shape
        require_memory(training_bytes(config, n, dim), device, option="data",
                       what=f"training a {config.model} on {n} samples of dimension {dim}",
                       fix="use fewer or lower-dimensional samples, or a smaller batch / n_samples / n_particles")
        return cls(config, arr, device=torch.device(device), problem=problem, divergence=divergence,
                   constraint=constraint, evaluate=evaluate)

    @property
    def n_steps(self) -> int:
        return self.config.steps

    # --- what the strategies call --------------------------------------------------------------
    def batch_index(self, n_from: int, n: int) -> Tensor:
        """``min(n, n_from)`` indices drawn with replacement from ``range(n_from)``."""
        return torch.randint(0, n_from, (min(n, n_from),), generator=self.generator, device=self.device)

    def data_batch(self) -> Tensor:
        return self.X[self.batch_index(len(self.X), self.batch_size)]

    def critic_gradient(self, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
        r""":math:`\nabla_x\phi` at every row of ``x``."""
        return self._grad_phi(params, x)

    def critic_step(self, x_gen: Tensor, x_data: Tensor) -> dict[str, float]:
        r"""One ascent step of :math:`E_{gen}[\phi] - E_{data}[f^*(\phi)]` minus the Lipschitz penalty."""
        critic = self.critic
        p = dict(critic.named_parameters())
        obj = variational_objective(self.divergence, critic(x_gen).squeeze(-1), critic(x_data).squeeze(-1))
        t = self.constraint.draw(min(len(x_gen), len(x_data)), generator=self.generator, device=self.device,
                                 dtype=self.X.dtype)
        pen = self.constraint.penalty(self._phi, p, x_data, x_gen, t)
        self.opt_critic.zero_grad(set_to_none=True)
        (pen - obj).backward()
        self.opt_critic.step()
        self.constraint.project_(critic)
        return {"objective": float(obj.detach()), "penalty": float(pen.detach())}

    # --- the Method protocol -------------------------------------------------------------------
    def step(self, i: int) -> dict[str, float]:
        return self.model.step(self, i)

    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = {"sampler": self.sampler.state_dict(), "info": dict(self.info),
                              "rng": rng_state(self.generator), "data": self.fingerprint}
        for name in ("critic", "opt_critic", "optimiser"):
            part = getattr(self, name)
            if part is not None:
                st[name] = part.state_dict()
        return st

    def load_state(self, st: Mapping[str, Any]) -> None:
        if st.get("data") != self.fingerprint:
            raise DataError(f"the samples ({len(self.data)} x {self.data.shape[1]}) differ from those the run was "
                            "started with; resume with the same data (same --data file, or the same --problem, "
                            "--nu, --dim and --n-data), or start a new run")
        self.sampler.load_state_dict(st["sampler"])
        for name in ("critic", "opt_critic", "optimiser"):
            part = getattr(self, name)
            if part is not None:
                part.load_state_dict(st[name])
        set_rng_state(st["rng"], self.generator)

    def meta(self) -> dict[str, Any]:
        return {"model": self.config.model, "data_shape": list(self.data.shape), **self.info,
                "problem": getattr(self.problem, "name", None), "divergence": repr(self.divergence),
                "constraint": repr(self.constraint),
                "coordinates": repr(self.coordinates)}

    def finish(self, run: RunDir | None, result: Result) -> HeavyTailModel:
        """Draw the final samples, compute the tail metrics, write ``results.h5`` and ``model.pt``."""
        cfg = self.config
        n = self.model.n_final(cfg, self.sampler)
        samples = self.sampler.sample(n, generator=self.generator).cpu().numpy().astype(np.float64)
        metrics = dict(result.metrics)
        if self.evaluate:
            metrics.update(evaluate_samples(samples, self.problem, reference=self.data, seed=cfg.seed))
        result.metrics = metrics
        model = HeavyTailModel(cfg, self.sampler, self.critic, dict(self.info), samples, metrics)
        if run is not None:
            result.artefacts["results"] = run.write_results({"samples": samples},
                                                            {**metrics, "status": result.status.value})
            result.artefacts["model"] = run.path / "model.pt"
            atomic_torch_save({"model": cfg.model, "info": dict(self.info), "sampler": self.sampler.state_dict(),
                               "critic": self.critic.state_dict() if self.critic is not None else None},
                              run.path / "model.pt")
        return model

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> HeavyTailModel:
        """The trained model of the run in ``run_dir`` (its ``config.toml``, ``model.pt``, ``results.h5``).

        Raises:
            DataError: not a heavy-tail run directory, or a damaged ``results.h5``.
            CheckpointError: ``model.pt`` missing (the run did not finish), damaged or of another model.
            ConfigError: an unreadable ``config.toml``.
        """
        path = Path(run_dir)
        if not path.is_dir():
            raise DataError(f"{path}: no such run directory; give the --out folder of 'sciml heavytail train'")
        if not (path / "config.toml").is_file():
            raise DataError(f"{path}: not a heavytail run directory (no config.toml)")
        cfg = load_config(path / "config.toml", HeavyTailConfig)
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        st = _read_model(path / "model.pt", cfg)
        # building draws initial weights that the saved ones replace: leave the caller's stream alone
        with torch.random.fork_rng(devices=[]):
            critic, sampler = _networks(cfg, MODELS.resolve(cfg.model), st["info"], dev, None)
        try:
            sampler.load_state_dict(st["sampler"])
            if critic is not None:
                critic.load_state_dict(st["critic"])
        except (RuntimeError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{path / 'model.pt'}: does not match {path / 'config.toml'} "
                            f"({_first_line(e)}); was the config edited? train the run again") from None
        samples, metrics = _read_results(path / "results.h5")
        return HeavyTailModel(cfg, sampler, critic, dict(st["info"]), samples, metrics)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


def _read_model(p: Path, cfg: HeavyTailConfig) -> dict[str, Any]:
    if not p.is_file():
        status = _run_status(p.parent)
        fix = ("the run diverged: train it again with a smaller learning rate" if status == "diverged" else
               "it was removed: train the run again" if status == "success" else
               "the run has not finished: continue it with 'sciml heavytail train ... --resume'")
        raise CheckpointError(f"{p}: missing (the run's status is {status}); {fix}")
    st = read_torch_file(p, "cpu", what="model file")
    if not isinstance(st, dict) or st.get("model") != cfg.model or "info" not in st or "sampler" not in st:
        raise CheckpointError(f"{p}: not the {cfg.model} model its config.toml describes; train the run again")
    return st


def _run_status(run: Path) -> str:
    import json

    try:
        return str(json.loads((run / "meta.json").read_text()).get("status", "unknown"))
    except (OSError, ValueError, AttributeError):
        return "unknown"


def _read_results(p: Path) -> tuple[np.ndarray | None, dict[str, float]]:
    if not p.is_file():
        return None, {}
    import h5py

    try:
        with h5py.File(p, "r") as fh:
            samples = np.asarray(fh["samples"][()]) if "samples" in fh else None
            metrics = {k: float(v) for k, v in fh.attrs.items() if k != "status"}
    except Exception as e:  # truncated or not HDF5
        raise DataError(f"{p}: cannot be read ({_first_line(e)}); the file is damaged: train the run again") from None
    return samples, metrics

