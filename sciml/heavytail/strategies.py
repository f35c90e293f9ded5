r"""The three generators as strategy objects (:data:`MODELS`): how each is built from the config and the
data, and one training step of each.

* ``gan`` -- the critic :math:`\phi` maximises :math:`E_{P_G}[\phi] - E_Q[f^*(\phi)]` minus the Lipschitz
  penalty (``critic.steps`` updates per generator update); the generator minimises
  :math:`E_{z}[\phi(G(z))]`. With ``L`` finite this trains on the W1-proximal divergence
  :math:`\inf_R D_f(R\|Q) + L W_1(P_G, R)`.
* ``particles`` (GPA) -- the particle cloud :math:`P = \{Y_i\}` plays the generator: after re-fitting
  the critic, :math:`Y \leftarrow Y - \Delta t\,\nabla\phi(Y)` (the gradient flow of
  :math:`P\mapsto D_f^{\Gamma_L}(P\|Q)`); with an L-Lipschitz critic each particle moves at most
  :math:`L\Delta t` per step.
* ``flow`` -- maximum likelihood with the W2 proximal: minimise
  ``nll * NLL + kinetic * E int |v|^2/2 + hjb * E int |HJB|``.

A strategy never holds state: the networks, optimisers, particles and random stream live in the
:class:`~sciml.heavytail.method.HeavyTail` run it is given, which checkpoints them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..registry import Registry
from .coordinates import COORDINATES, Coordinates
from .metrics import smoothed_hill
from .models import Generator, ParticleCloud, PotentialFlow

if TYPE_CHECKING:
    from .config import HeavyTailConfig
    from .method import HeavyTail

__all__ = ["GenerativeModel", "GANModel", "ParticleModel", "FlowModel", "MODELS"]


def _auto_nu(value: float, data: np.ndarray) -> float:
    """0 means: the Hill estimate of the data's radial tail index (averaged over k = 1%..5% of n)."""
    return float(value) if value > 0 else smoothed_hill(np.linalg.norm(data, axis=1))


class GenerativeModel:
    """One kind of generator.

    Attributes:
        name: its name in :data:`MODELS` (the config key ``model``).
        adversarial: trained against a critic (so the divergence and the Lipschitz constraint apply).
        defaults: the values of ``steps``, ``batch`` and ``critic.steps`` a config leaves unset (the
            measured recipes of docs/heavytail.md; ``critic_steps`` is absent for a model without a critic).
    """

    name: ClassVar[str] = ""
    adversarial: ClassVar[bool] = True
    defaults: ClassVar[dict[str, int]] = {"steps": 2000, "batch": 512, "critic_steps": 5}

    def resolve(self, cfg: "HeavyTailConfig", data: np.ndarray) -> dict[str, Any]:
        """What the config leaves to the data (sizes, tail indices given as 0); saved with the model."""
        return {"dim": int(data.shape[1])}

    def build(self, cfg: "HeavyTailConfig", info: dict[str, Any], *, device: torch.device,
              generator: torch.Generator | None) -> nn.Module:
        """The untrained generator: networks initialised from torch's global stream, anything else drawn
        from ``generator``."""
        raise NotImplementedError

    def coordinates(self, cfg: "HeavyTailConfig") -> Coordinates:
        """The coordinates ``u = T(x)`` the generator and critic work in (the data are mapped once)."""
        return COORDINATES.resolve("linear")

    def optimiser(self, cfg: "HeavyTailConfig", sampler: nn.Module) -> torch.optim.Optimizer | None:
        """The generator's optimiser (``None``: the step updates it directly)."""
        return None

    def step(self, run: "HeavyTail", i: int) -> dict[str, float]:
        """Step ``i`` of ``run``: metrics (the first one is shown in the progress bar)."""
        raise NotImplementedError

    def n_final(self, cfg: "HeavyTailConfig", sampler: nn.Module) -> int:
        """How many samples are drawn at the end for the metrics."""
        return cfg.n_samples

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: the generators a run can train: the config key ``model`` and ``--model`` offer these names
MODELS: Registry[GenerativeModel] = Registry("model", GenerativeModel)


def _with_ema(G: Generator, ema: float) -> Generator:
    """``G`` with moving-average buffers that start at its current weights."""
    G.ema = float(ema)
    for name, w in G.named_parameters():
        G.register_buffer(G._ema_name(name), w.detach().clone())
    return G


@MODELS.register("gan")
class GANModel(GenerativeModel):
    """GAN: an MLP generator on latent noise, in linear or log coordinates, against a Lipschitz critic."""

    name = "gan"
    defaults = {"steps": 1500, "batch": 2000, "critic_steps": 3}

    def coordinates(self, cfg):
        return COORDINATES.resolve(cfg.gan.coordinates)

    def resolve(self, cfg, data):
        g = cfg.gan
        info = {**super().resolve(cfg, data), "latent_dim": g.latent_dim or int(data.shape[1]),
                "latent_nu": _auto_nu(g.latent_nu, data) if g.latent.startswith("student") else 0.0}
        if g.scale:  # the data's spread (median absolute deviation) per coordinate, in the generator's coordinates
            u = self.coordinates(cfg).forward(torch.as_tensor(data, dtype=torch.float64)).numpy()
            info["spread"] = [float(v) for v in np.median(np.abs(u - np.median(u, axis=0)), axis=0)]
        return info

    def build(self, cfg, info, *, device, generator):
        g = cfg.gan
        G = Generator(info["latent_dim"], info["dim"], g.width, g.depth, g.activation, latent=g.latent,
                      latent_nu=info["latent_nu"], coordinates=g.coordinates, ema=0.0, scale=g.scale).to(device)
        if g.scale and generator is not None:  # training (a loaded model's weights replace these)
            G.match_spread(torch.as_tensor(info["spread"]), generator=generator)
        if g.ema > 0:  # the average starts from the initial weights
            G = _with_ema(G, g.ema)
        return G

    def optimiser(self, cfg, sampler):
        # the radial latent's shape logits get their own rate (gan.latent_lr): a few scalars every draw
        # shares, which at the network's 1e-3 could move about one unit over the run
        # (group 0: the networks, group 1 if any: the shape logits; step sets both rates from the config)
        shape = [p for n, p in sampler.named_parameters() if n == "radial_logit"]
        rest = [p for n, p in sampler.named_parameters() if n != "radial_logit"]
        groups = [{"params": rest}] + ([{"params": shape}] if shape else [])
        return torch.optim.Adam(groups, lr=cfg.gan.lr, betas=(0.5, 0.999))

    @staticmethod
    def learning_rate(cfg, i: int) -> float:
        """The generator's learning rate at step ``i``: a cosine from ``lr`` to ``lr * lr_decay`` over the
        run (a function of ``i`` alone, so a resumed run follows the same schedule)."""
        g = cfg.gan
        frac = i / max(cfg.steps - 1, 1)
        return g.lr * (g.lr_decay + (1 - g.lr_decay) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    def step(self, run, i):
        G, critic, bs = run.sampler, run.critic, run.batch_size
        # every group along the same cosine; the rates come from the config, not from the optimiser's groups,
        # so a checkpoint whose groups carry no extra keys (written before the radial latent) resumes too
        decay = self.learning_rate(run.config, i) / run.config.gan.lr
        for group, rate in zip(run.optimiser.param_groups, (run.config.gan.lr, run.config.gan.latent_lr)):
            group["lr"] = rate * decay
        reverse = run.config.gan.order == "data_gen"  # D_f(Q || P_G): the data take the E[phi] side
        for _ in range(run.config.critic.steps):
            with torch.no_grad():
                xg = G(G.noise(bs, generator=run.generator))
            m = run.critic_step(run.data_batch(), xg) if reverse else run.critic_step(xg, run.data_batch())
        phi = critic(G(G.noise(bs, generator=run.generator)))
        # the generator minimises the objective: E_P phi (P first) or -E_P f*(phi) (P second)
        loss = -run.divergence.f_star(phi).mean() if reverse else phi.mean()
        run.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        run.optimiser.step()
        G.update_ema()
        return {**m, "gen_loss": float(loss.detach())}


@MODELS.register("particles")
class ParticleModel(GenerativeModel):
    """Lipschitz-regularised generative particle flow (GPA): the particles move down the critic."""

    name = "particles"
    defaults = {"steps": 600, "batch": 1000, "critic_steps": 5}

    def coordinates(self, cfg):
        return COORDINATES.resolve(cfg.particles.coordinates)

    def resolve(self, cfg, data):
        return {**super().resolve(cfg, data), "n_particles": cfg.particles.n_particles or int(data.shape[0])}

    def build(self, cfg, info, *, device, generator):
        y = torch.randn(info["n_particles"], info["dim"], generator=generator, device=device,
                        dtype=torch.get_default_dtype())
        coords = self.coordinates(cfg)  # the initial cloud is Gaussian in data coordinates
        return ParticleCloud(coords.forward(cfg.particles.init_scale * y), coords)

    def step(self, run, i):
        cloud, bs = run.sampler, run.batch_size
        Y = cloud.particles
        for _ in range(run.config.critic.steps):
            m = run.critic_step(Y[run.batch_index(len(Y), bs)], run.data_batch())
        p = {k: v.detach() for k, v in run.critic.named_parameters()}
        v = run.critic_gradient(p, Y)
        cloud.particles = Y - run.config.particles.dt * v
        radius = cloud.coordinates.inverse(cloud.particles).norm(dim=1).max()
        return {**m, "max_speed": float(v.norm(dim=1).max()), "max_radius": float(radius)}

    def n_final(self, cfg, sampler):
        return min(cfg.n_samples, len(sampler))


@MODELS.register("flow")
class FlowModel(GenerativeModel):
    """Continuous normalising flow with a potential velocity and the W2 proximal (OT-Flow)."""

    name = "flow"
    adversarial = False
    defaults = {"steps": 2000, "batch": 512}

    def resolve(self, cfg, data):
        f = cfg.flow
        return {**super().resolve(cfg, data), "base_nu": _auto_nu(f.base_nu, data) if f.base == "student" else 0.0}

    def build(self, cfg, info, *, device, generator):
        f = cfg.flow
        return PotentialFlow(info["dim"], f.width, f.depth, f.activation, horizon=f.horizon, n_steps=f.n_steps,
                             divergence=f.divergence, probes=f.probes, base=f.base,
                             base_nu=info["base_nu"]).to(device)

    def optimiser(self, cfg, sampler):
        return torch.optim.Adam(sampler.parameters(), lr=cfg.flow.lr)

    def step(self, run, i):
        flow, f = run.sampler, run.config.flow
        z, ldiv, kin, hjb = flow.integrate(run.data_batch(), generator=run.generator)
        nll = -(flow.base_logpdf(z) + ldiv).mean()
        loss = f.nll * nll + f.kinetic * kin.mean() + f.hjb * hjb.mean()
        run.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        run.optimiser.step()
        return {"loss": float(loss.detach()), "nll": float(nll.detach()), "kinetic": float(kin.mean().detach()),
                "hjb": float(hjb.mean().detach())}
