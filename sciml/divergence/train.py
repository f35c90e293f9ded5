r"""Training entry points: ``train(cfg, data)`` for the three generators, and ``sample(run, n)``.

* **GAN** -- critic :math:`\phi` maximises :math:`E_{P_G}[\phi] - E_Q[f^*(\phi)]` minus the Lipschitz
  penalty (``critic.steps`` updates per generator update); the generator minimises
  :math:`E_{z}[\phi(G(z))]`. With ``L`` finite this trains on the W1-proximal divergence
  :math:`\inf_R D_f(R\|Q) + L W_1(P_G, R)`.
* **particles** (GPA) -- the particle cloud :math:`P = \{Y_i\}` plays the generator: after re-fitting
  the critic, :math:`Y \leftarrow Y - \Delta t\,\nabla\phi(Y)` (the gradient flow of
  :math:`P\mapsto D_f^{\Gamma_L}(P\|Q)`); with an L-Lipschitz critic each particle moves at most
  :math:`L\Delta t` per step.
* **flow** -- maximum likelihood with the W2 proximal: minimise
  ``nll * NLL + kinetic * E int |v|^2/2 + hjb * E int |HJB|``.

Every run writes a run directory (config, metrics, atomic checkpoints, ``results.h5`` with the samples
and the metrics) and returns a :class:`sciml.run.Result`; a non-finite loss stops it with
``Status.DIVERGED`` and the last good checkpoint kept.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..autodiff import batch, gradient, point_function
from ..io import DataError
from ..nn.lipschitz import CriticMLP
from ..run import ConfigError, Result, RunDir, load_config, resolve_device, rng_state, set_rng_state, train_loop
from .config import HeavyTailConfig
from .constraints import make_constraint
from .metrics import evaluate_samples, smoothed_hill
from .models import Generator, PotentialFlow, sample_latent
from .objectives import WassersteinCritic, make_divergence, variational_objective

__all__ = ["train", "sample", "load_model", "prepare_data"]


def prepare_data(data: Any, *, min_rows: int = 50, source: str = "data") -> np.ndarray:
    """Validate samples: a finite numeric array ``(n,)`` or ``(n, D)`` with at least ``min_rows`` rows."""
    arr = np.asarray(data)
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{source}: non-numeric samples (dtype {arr.dtype})")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataError(f"{source}: samples must have shape (n,) or (n, D), got {arr.shape}")
    if arr.shape[0] < min_rows:
        raise DataError(f"{source}: {arr.shape[0]} samples; at least {min_rows} are needed to see a tail")
    if not np.isfinite(arr).all():
        raise DataError(f"{source}: {int((~np.isfinite(arr)).sum())} NaN/inf values; drop those rows")
    return arr.astype(np.float64)


def _auto_nu(value: float, data: np.ndarray) -> float:
    """0 means: the Hill estimate of the data's radial tail index (averaged over k = 1%..5% of n)."""
    return float(value) if value > 0 else smoothed_hill(np.linalg.norm(data, axis=1))


def _build(cfg: HeavyTailConfig, dim: int, info: dict[str, Any], device) -> dict[str, Any]:
    """Networks and optimisers for ``cfg`` (``info`` carries the resolved latent/base nu and sizes)."""
    parts: dict[str, Any] = {}
    if cfg.model in ("gan", "particles"):
        c = cfg.critic
        parts["critic"] = CriticMLP(dim, c.width, c.depth, c.activation).to(device)
        parts["opt_critic"] = torch.optim.Adam(parts["critic"].parameters(), lr=c.lr, betas=(0.5, 0.999))
    if cfg.model == "gan":
        g = cfg.gan
        parts["gen"] = Generator(info["latent_dim"], dim, g.width, g.depth, g.activation).to(device)
        parts["opt_gen"] = torch.optim.Adam(parts["gen"].parameters(), lr=g.lr, betas=(0.5, 0.999))
    if cfg.model == "flow":
        f = cfg.flow
        parts["flow"] = PotentialFlow(dim, f.width, f.depth, f.activation, horizon=f.horizon, n_steps=f.n_steps,
                                      divergence=f.divergence, probes=f.probes, base=f.base,
                                      base_nu=info.get("base_nu", 1.0)).to(device)
        parts["opt_flow"] = torch.optim.Adam(parts["flow"].parameters(), lr=f.lr)
    return parts


def _info(cfg: HeavyTailConfig, data: np.ndarray) -> dict[str, Any]:
    dim = data.shape[1]
    info: dict[str, Any] = {"dim": dim}
    if cfg.model == "gan":
        info["latent_dim"] = cfg.gan.latent_dim or dim
        info["latent_nu"] = _auto_nu(cfg.gan.latent_nu, data) if cfg.gan.latent != "gaussian" else 0.0
    if cfg.model == "particles":
        info["n_particles"] = cfg.particles.n_particles or data.shape[0]
    if cfg.model == "flow":
        info["base_nu"] = _auto_nu(cfg.flow.base_nu, data) if cfg.flow.base == "student" else 0.0
    return info


def train(cfg: HeavyTailConfig, data: Any, *, run: RunDir | str | Path | None = None, device: str = "cpu",
          problem: Any = None, resume: bool = False, evaluate: bool = True) -> Result:
    """Train a heavy-tail generative model on samples ``data`` (``(n, D)``).

    Args:
        cfg: the run's config.
        data: training samples (validated: finite, at least 50 rows).
        run: run directory (``None``: nothing written).
        device: ``cpu``, ``cuda``, ``auto``.
        problem: optional :class:`problems.heavy_tails.HeavyTailProblem` for exact-tail metrics.
        resume: continue from the run's latest checkpoint.
        evaluate: compute the tail metrics at the end.

    Returns:
        Result with status, message, final metrics (training and evaluation), ``extra["samples"]``
        (numpy, generated) and ``extra["parts"]`` (the networks).
    """
    data = prepare_data(data)
    dev = resolve_device(device)
    dtype = torch.get_default_dtype()
    if isinstance(run, (str, Path)):
        run = RunDir(run)
    gen_t = torch.Generator(device=dev).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    info = _info(cfg, data)
    parts = _build(cfg, info["dim"], info, dev)
    X = torch.as_tensor(data, dtype=dtype, device=dev)
    n_data = X.shape[0]
    bs = cfg.batch or n_data
    div = WassersteinCritic() if cfg.wasserstein else make_divergence(cfg.alpha)
    constraint = make_constraint(cfg.constraint, cfg.lipschitz, cfg.gp_weight)
    if cfg.wasserstein and not constraint.bounded:
        raise ConfigError("constraint", "the Wasserstein objective needs a Lipschitz critic ('gp' or 'spectral')")
    state_extra: dict[str, Tensor] = {}
    if cfg.model == "particles":
        state_extra["Y"] = cfg.particles.init_scale * torch.randn(info["n_particles"], info["dim"], generator=gen_t,
                                                                   device=dev, dtype=dtype)

    def batch_idx(n_from: int, n: int) -> Tensor:
        return torch.randint(0, n_from, (min(n, n_from),), generator=gen_t, device=dev)

    critic = parts.get("critic")
    phi = point_function(critic) if critic is not None else None

    def critic_step(x_gen: Tensor, x_data: Tensor) -> dict[str, float]:
        p = dict(critic.named_parameters())
        obj = variational_objective(div, critic(x_gen).squeeze(-1), critic(x_data).squeeze(-1))
        t = constraint.draw(min(len(x_gen), len(x_data)), generator=gen_t, device=dev, dtype=dtype)
        pen = constraint.penalty(phi, p, x_data, x_gen, t)
        opt = parts["opt_critic"]
        opt.zero_grad(set_to_none=True)
        (pen - obj).backward()
        opt.step()
        constraint.project_(critic)
        return {"objective": float(obj.detach()), "penalty": float(pen.detach())}

    def latent(n: int) -> Tensor:
        g = cfg.gan
        return sample_latent(g.latent, n, info["latent_dim"], info["latent_nu"], generator=gen_t, device=dev, dtype=dtype)

    grad_phi = batch(gradient(phi)) if phi is not None else None

    def step(i: int) -> dict[str, float]:
        if cfg.model == "gan":
            G = parts["gen"]
            for _ in range(cfg.critic.steps):
                with torch.no_grad():
                    xg = G(latent(bs))
                m = critic_step(xg, X[batch_idx(n_data, bs)])
            z = latent(bs)
            loss = critic(G(z)).mean()
            parts["opt_gen"].zero_grad(set_to_none=True)
            loss.backward()
            parts["opt_gen"].step()
            return {**m, "gen_loss": float(loss.detach())}
        if cfg.model == "particles":
            Y = state_extra["Y"]
            for _ in range(cfg.critic.steps):
                m = critic_step(Y[batch_idx(len(Y), bs)], X[batch_idx(n_data, bs)])
            p = {k: v.detach() for k, v in critic.named_parameters()}
            v = grad_phi(p, Y)
            state_extra["Y"] = Y - cfg.particles.dt * v
            speed = v.norm(dim=1)
            return {**m, "max_speed": float(speed.max()), "max_radius": float(state_extra["Y"].norm(dim=1).max())}
        flow = parts["flow"]
        f = cfg.flow
        xb = X[batch_idx(n_data, bs)]
        z, ldiv, kin, hjb = flow.integrate(xb, generator=gen_t)
        nll = -(flow.base_logpdf(z) + ldiv).mean()
        loss = f.nll * nll + f.kinetic * kin.mean() + f.hjb * hjb.mean()
        parts["opt_flow"].zero_grad(set_to_none=True)
        loss.backward()
        parts["opt_flow"].step()
        return {"loss": float(loss.detach()), "nll": float(nll.detach()), "kinetic": float(kin.mean().detach()),
                "hjb": float(hjb.mean().detach())}

    def get_state() -> dict[str, Any]:
        st = {k: v.state_dict() for k, v in parts.items()}
        st.update({k: v.detach().cpu() for k, v in state_extra.items()})
        st["info"] = info
        st["rng"] = rng_state(gen_t)
        return st

    def load_state(st: dict[str, Any]) -> None:
        for k, v in parts.items():
            v.load_state_dict(st[k])
        for k in state_extra:
            state_extra[k] = st[k].to(dev)
        set_rng_state(st["rng"], gen_t)

    if run is not None:
        run.save_config(cfg)
        run.write_meta(model=cfg.model, data_shape=list(data.shape), device=str(dev), **info,
                       problem=getattr(problem, "name", None))
    t0 = time.perf_counter()
    result = train_loop(step, cfg.steps, run=run, state=get_state if run is not None else None, load=load_state,
                        resume=resume, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                        desc=f"heavytail {cfg.model}")
    seconds = time.perf_counter() - t0
    n_draw = min(cfg.n_samples, len(state_extra["Y"])) if cfg.model == "particles" else cfg.n_samples
    samples = _draw(cfg, parts, state_extra, info, n_draw, gen_t, dev).cpu().numpy().astype(np.float64)
    metrics = dict(result.metrics)
    metrics["seconds"] = seconds
    if evaluate:
        metrics.update(evaluate_samples(samples, problem, reference=data, seed=cfg.seed))
    result.metrics = metrics
    result.extra.update(samples=samples, parts=parts, info=info)
    if run is not None:
        run.write_results({"samples": samples}, {**{k: v for k, v in metrics.items()}, "status": result.status.value})
        run.write_meta(status=result.status.value, message=result.message)
        result.artefacts["results"] = run.path / "results.h5"
    return result


def _draw(cfg: HeavyTailConfig, parts: dict[str, Any], state_extra: dict[str, Tensor], info: dict[str, Any], n: int,
          gen_t: torch.Generator, dev) -> Tensor:
    if cfg.model == "particles":
        Y = state_extra["Y"]
        if n > len(Y):
            raise ConfigError("n", f"the particle flow has {len(Y)} particles; ask for at most that many samples "
                                   "(or train with more [particles] n_particles)")
        return Y[:n].detach()
    if cfg.model == "gan":
        out = []
        with torch.no_grad():
            for i in range(0, n, 10000):
                z = sample_latent(cfg.gan.latent, min(10000, n - i), info["latent_dim"], info["latent_nu"],
                                  generator=gen_t, device=dev, dtype=torch.get_default_dtype())
                out.append(parts["gen"](z))
        return torch.cat(out)
    return parts["flow"].sample(n, generator=gen_t, device=dev, dtype=torch.get_default_dtype())


def load_model(run: str | Path, device: str = "cpu") -> tuple[HeavyTailConfig, dict[str, Any], dict[str, Any], dict[str, Tensor]]:
    """Rebuild a trained model from its run directory: ``(cfg, parts, info, state_extra)``."""
    path = Path(run)
    if not (path / "config.toml").is_file():
        raise DataError(f"{path}: not a heavytail run directory (no config.toml)")
    cfg = load_config(path / "config.toml", HeavyTailConfig)
    rd = RunDir(path)
    st = rd.load_checkpoint()
    if st is None:
        raise DataError(f"{path}: no checkpoint found; the run did not get far enough to save one")
    dev = resolve_device(device)
    info = st["info"]
    parts = _build(cfg, info["dim"], info, dev)
    for k, v in parts.items():
        v.load_state_dict(st[k])
    extra = {"Y": st["Y"].to(dev)} if "Y" in st else {}
    return cfg, parts, info, extra


def sample(run: str | Path, n: int, *, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """``n`` samples ``(n, D)`` from a trained run (particles: the first ``n`` particles)."""
    cfg, parts, info, extra = load_model(run, device)
    dev = resolve_device(device)
    g = torch.Generator(device=dev).manual_seed(seed)
    return _draw(cfg, parts, extra, info, n, g, dev).cpu().numpy().astype(np.float64)
