r"""Builders from a :class:`~sciml.score.config.ScoreConfig` (SDE, network, objective), the explicit-step
stability rule, and the memory a run will need, estimated before anything large is allocated.

**Stiffness.** Explicit Euler steps of a Langevin drift toward a mixture blow up when
:math:`L\,\Delta t > 1`, :math:`L = \tfrac12\beta_{max}\max_k\lambda_{max}(P_k)`; grids left to their
default are refined until :math:`L\,\Delta t \le 0.8`, grids that are given are refused above 1.

**Memory.** A training run holds the network five times (parameters, gradients, Adam's two moments,
the EMA copy) and a sixth for the payload, the activations of every network call of a step
(:math:`B \times a` per call, :math:`a` the activations of one sample, counted without building the
network), and for NDSM the path bank
(:math:`N \times P \times D` states). A run whose estimate exceeds the device's free memory is refused
with the numbers and the key that dominates, before the network exists.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..io.data import available_memory, format_bytes
from ..run import ConfigError, UsageError
from .config import ModelConfig, SDEConfig, TrainConfig
from .gmm import GMM
from .objectives import OBJECTIVES, ControlVariates, Objective
from .sde import SDE, SDES, LangevinSDE

__all__ = ["build_sde", "build_net", "build_objective", "auto_steps", "stiffness_problem", "check_stiffness",
           "net_footprint", "free_memory", "check_memory", "training_memory", "sampling_memory"]


def build_sde(cfg: SDEConfig, event_shape: tuple[int, ...], gmm: GMM | None = None) -> SDE:
    """The SDE named by ``cfg.kind`` (:data:`~sciml.score.sde.SDES`); ``langevin_gmm`` needs the mixture."""
    if cfg.kind == "langevin_gmm" and gmm is None:
        raise ValueError("langevin_gmm needs a fitted GMM")
    beta_min, beta_max = cfg.betas
    return SDES.resolve(cfg.kind, event_shape=tuple(event_shape), target=gmm, beta_min=beta_min, beta_max=beta_max,
                        sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, T=cfg.T)


def build_net(cfg: ModelConfig, event_shape: tuple[int, ...]) -> torch.nn.Module:
    """``ScoreMLP`` on the flattened sample, or ``SmallUNet`` for (C, H, W) images with even H, W."""
    from ..nn.score_nets import ScoreMLP, SmallUNet

    if cfg.arch == "mlp":
        return ScoreMLP(math.prod(event_shape), cfg.width, cfg.depth, cfg.embed_dim)
    if len(event_shape) != 3:
        raise ConfigError("model.arch", f"unet needs image data (N, C, H, W); got samples of shape {event_shape}")
    if event_shape[1] % 2 or event_shape[2] % 2:
        raise ConfigError("model.arch", f"unet halves the image: height and width must be even, got {event_shape[1:]}"
                                        "; pad or crop the images, or use model.arch = 'mlp'")
    return SmallUNet(event_shape[0], cfg.base_channels, 2 * cfg.embed_dim)


def auto_steps(sde: SDE, given: int | None, default: int, span: float | None = None) -> int:
    """``given`` if set, else ``default`` raised so that stiffness x step <= 0.8 (explicit-step stability)."""
    if given is not None:
        return given
    lip = sde.drift_lipschitz() if isinstance(sde, LangevinSDE) else None
    if lip is None:
        return default
    return max(default, math.ceil(lip * (span or sde.T) / 0.8))


def build_objective(cfg: TrainConfig, sde: SDE) -> Objective:
    """The objective named by ``cfg.objective`` (:data:`~sciml.score.objectives.OBJECTIVES`); NDSM gets
    its control variates and a grid of :func:`auto_steps` steps."""
    cv = None
    if cfg.objective == "ndsm" and cfg.control_variates != "none":
        cv = ControlVariates(learn=cfg.control_variates == "learned", second_order=cfg.cv_second_order)
    return OBJECTIVES.resolve(cfg.objective, sde=sde, weighting=cfg.weighting, eps=cfg.eps,
                              n_steps=auto_steps(sde, cfg.n_time_steps, 200), control_variates=cv)


def stiffness_problem(sde: SDE, dt: float | None, what: str) -> str | None:
    """Why explicit steps of size ``dt`` of ``sde``'s drift are unstable (``None``: they are not)."""
    lip = sde.drift_lipschitz() if isinstance(sde, LangevinSDE) else None
    if lip is None or dt is None or lip * dt <= 1.0:
        return None
    need = math.ceil(lip * sde.T)
    return (f"explicit steps are unstable: the Langevin drift's stiffness {lip:.3g} times the step {dt:.3g} is "
            f"{lip * dt:.2f} > 1; raise {what} to at least {need}, or lower sde.beta_max, or raise sde.reg_covar "
            "(the GMM's sharpest component sets the stiffness)")


def check_stiffness(sde: SDE, dt: float | None, key: str) -> None:
    """Raise :class:`ConfigError` naming ``key`` if explicit steps of size ``dt`` are unstable."""
    problem = stiffness_problem(sde, dt, key)
    if problem is not None:
        raise ConfigError(key, problem)


def net_footprint(cfg: ModelConfig, event_shape: tuple[int, ...]) -> tuple[int, int]:
    """``(parameters, activations of one sample)`` of the network, without building it.

    The MLP is counted in closed form (its size grows with ``width**2 * depth``, so a network far too
    large to allocate is measured in no time); the U-Net, of fixed depth, is run on the ``meta`` device,
    where tensors have shapes but no memory, without drawing from the random stream.
    """
    if cfg.arch == "mlp":
        d, w, e, k = math.prod(event_shape), cfg.width, cfg.embed_dim, cfg.depth
        f = 2 * max(e // 2, 1)  # sinusoidal features of the time embedding
        params = (f * e + e) + (d + e) * w + w + (k - 1) * (w * w + w + e * w + w) + w * d + d
        return params, 2 * e + w + k * w + 2 * (k - 1) * w + d
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        net = build_net(cfg, event_shape)
        n_params = sum(p.numel() for p in net.parameters())
        acts = [0]

        def count(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            acts[0] += output.numel() if isinstance(output, torch.Tensor) else 0

        leaves = [m for m in net.modules() if not any(True for _ in m.children())]
        hooks = [m.register_forward_hook(count) for m in leaves]
        net(torch.zeros((1, *event_shape)), torch.zeros(1))
        for h in hooks:
            h.remove()
    return n_params, acts[0]


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` (CUDA: the driver's free memory; CPU: :func:`available_memory`)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return available_memory()


def check_memory(parts: dict[str, tuple[int, str]], device: torch.device, what: str,
                 option: str | None = None) -> None:
    """Refuse when the parts (``name -> (bytes, the key that sets it)``) exceed the device's free memory.

    Raises:
        ConfigError: naming the key of the largest part (or :class:`UsageError` naming ``option``).
    """
    free = free_memory(device)
    total = sum(b for b, _ in parts.values())
    if free is None or total <= free:
        return
    name, (_, key) = max(parts.items(), key=lambda kv: kv[1][0])
    shown = ", ".join(f"{n} {format_bytes(b)}" for n, (b, _) in parts.items() if b)
    msg = (f"{what} needs about {format_bytes(total)} of memory ({shown}) but {device.type} has "
           f"{format_bytes(free)} free; lower {option or key}")
    if option is not None:
        raise UsageError(option, msg)
    raise ConfigError(key, msg)


def _culprit(growth: dict[str, float]) -> str:
    """The key that grows a part the most over its default (``key -> factor``)."""
    return max(growth.items(), key=lambda kv: kv[1])[0]


def training_memory(cfg: Any, event_shape: tuple[int, ...], n_data: int, ndsm_steps: int | None,
                    device: torch.device) -> dict[str, tuple[int, str]]:
    """The memory of a training run, by part: ``name -> (bytes, the config key that sets it)``."""
    item = torch.empty((), dtype=torch.get_default_dtype()).element_size()
    n_params, acts = net_footprint(cfg.model, event_shape)
    d = math.prod(event_shape)
    calls = 1 if ndsm_steps is None else 2 + (2 * (d + 1) if cfg.train.cv_second_order else 0)
    m, t = cfg.model, cfg.train
    size = {"model.base_channels": (m.base_channels / 32) ** 2} if m.arch == "unet" else \
        {"model.width": (m.width / 128) ** 2, "model.depth": m.depth / 3}
    parts = {"network and optimiser state": (6 * n_params * item, _culprit(size)),
             "activations": (2 * calls * t.batch_size * (acts + 4 * d) * item,
                             _culprit({"train.batch_size": t.batch_size / 512, **size}))}
    if ndsm_steps is not None:
        paths = min(t.bank_paths, n_data)
        parts["path bank"] = (2 * ndsm_steps * paths * d * item,
                              _culprit({"train.n_time_steps": ndsm_steps / 200, "train.bank_paths": paths / 1024}))
    if device.type != "cpu":
        parts["data on the device"] = (2 * n_data * d * item, "the number of samples")
    return parts


def sampling_memory(cfg: ModelConfig, event_shape: tuple[int, ...], batch_size: int) -> dict[str, tuple[int, str]]:
    """The memory of sampling ``batch_size`` samples at once (activations without gradients, the
    sampler's stages)."""
    item = torch.empty((), dtype=torch.get_default_dtype()).element_size()
    _, acts = net_footprint(cfg, event_shape)
    return {"one batch": (2 * batch_size * (acts + 8 * math.prod(event_shape)) * item, "sample.batch_size")}
