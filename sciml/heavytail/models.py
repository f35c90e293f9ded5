r"""Generators: GAN generator with Gaussian or heavy-tailed latent noise, the particle cloud, and the
potential CNF. Each is a module with ``dim`` and ``sample(n, generator=)`` (:class:`Sampler`).

**Why heavy-tailed latents.** A Lipschitz map :math:`G` satisfies :math:`|G(z)| \le |G(0)| + L|z|`, so
:math:`P(|G(Z)|>r) \le P(|Z| > (r-|G(0)|)/L)`: Gaussian :math:`Z` gives sub-Gaussian outputs and no MLP
with Lipschitz activations can produce a power law (arXiv 2605.18931). A ReLU-type MLP is also
asymptotically positively homogeneous, so it keeps the tail index of a heavy-tailed latent; with a
Student-t latent the generator learns the body, the scale and the direction of the tail, and the
latent's degrees of freedom set the index (by default the Hill estimate of the data).

**Continuous normalising flow.** :math:`\dot x = v(x,t) = -\nabla_x\Phi(t,x)` maps data
(:math:`t=0`) to the base (:math:`t=T`); :math:`\log p(x) = \log p_{base}(x_T) + \int_0^T \nabla\cdot v\,dt`,
with the divergence from the autodiff core (exact, or Hutchinson with probes passed in). The W2 proximal
(OT-Flow) adds the kinetic energy :math:`\int_0^T \tfrac12|v|^2dt` and, optionally, the HJB residual
:math:`\int_0^T |\partial_t\Phi - \tfrac12|\nabla\Phi|^2|\,dt`.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from ..autodiff import batch, divergence as exact_divergence, divergence_estimate, gradient, point_function, rademacher
from ..nn.lipschitz import CriticMLP
from ..nn.mlp import MLP
from .coordinates import COORDINATES, Coordinates

__all__ = ["Sampler", "sample_latent", "Generator", "ParticleCloud", "PotentialFlow", "student_t_logpdf", "LATENTS"]

#: latent noise of the GAN generator (``gan.latent``): ``radial`` (a uniform direction times a radius with an
#: exponential tail whose shape is learned with the generator) and ``laplace`` (iid exponential tails), for a
#: generator in log coordinates, which turns them into power laws of a learned index; ``gaussian``; and the
#: Student-t options ``student`` / ``student_iid`` (the tail index put in through the degrees of freedom)
LATENTS = ("radial", "laplace", "gaussian", "student", "student_iid")

#: the radial latent's shape weights start at a_j = sigmoid(-3) = 0.047: nearly a pure Exp(1) radius
RADIAL_START = -3.0


@runtime_checkable
class Sampler(Protocol):
    """A trained generator: draws ``(n, dim)`` samples on its own device, randomness from ``generator``
    (``None``: torch's global stream)."""

    dim: int

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor: ...


def sample_latent(kind: str, n: int, dim: int, nu: float, *, generator: torch.Generator | None = None,
                  device=None, dtype=torch.float32) -> Tensor:
    """Latent noise ``(n, dim)``: ``laplace`` (iid standard Laplace, :math:`P(|z_j|>s) = e^{-s}`);
    ``gaussian``; ``student`` (multivariate t, one shared chi-square scale); ``student_iid`` (independent t
    coordinates). Drawn from ``generator`` (chi-square via numpy seeded from it, as torch's gamma sampler
    takes no generator). ``radial`` returns the raw draws ``(n, 2 dim)``: ``dim`` iid Exp(1) variables and
    ``dim`` Gaussians, which :meth:`Generator.latent_map` turns into a radius and a direction."""
    if kind == "radial":
        e = sample_latent("laplace", n, dim, nu, generator=generator, device=device, dtype=dtype).abs()
        g = torch.randn(n, dim, generator=generator, device=generator.device if generator is not None else None)
        return torch.cat([e, g.to(device=device, dtype=dtype)], dim=1)
    if kind == "laplace":
        v = torch.rand(n, dim, generator=generator, device=generator.device if generator is not None else None)
        # rand is in [0, 1): an exact 0 (one float32 draw in 2^24, about once per training run) would give
        # log(0), a latent of hundreds and a generated point at e^(hundreds); it becomes the median draw, so
        # 1 - 2|v| >= 2^-23 and |z| <= 16
        v = torch.where(v > 0, v, torch.full_like(v, 0.5))
        v = v.to(device=device, dtype=torch.float64) - 0.5  # float64: the log of 1 - 2|v| near 0
        return (-torch.sign(v) * torch.log1p(-2 * v.abs())).to(dtype)
    z = torch.randn(n, dim, generator=generator, device=generator.device if generator is not None else None)
    z = z.to(device=device, dtype=dtype)
    if kind == "gaussian":
        return z
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device if generator is not None else None))
    rng = np.random.default_rng(seed)
    shape = (n, 1) if kind == "student" else (n, dim)
    if kind not in LATENTS:
        raise ValueError(f"unknown latent {kind!r}")
    w = torch.as_tensor(rng.chisquare(nu, size=shape) / nu, device=device, dtype=dtype)
    return z / w.sqrt()


def student_t_logpdf(z: Tensor, nu: float) -> Tensor:
    """Log-density of the standard multivariate Student-t(nu) in ``z.shape[-1]`` dimensions."""
    d = z.shape[-1]
    return (math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - d / 2 * math.log(nu * math.pi)
            - (nu + d) / 2 * torch.log1p(z.pow(2).sum(-1) / nu))


class Generator(nn.Module):
    r"""GAN generator :math:`x = G(z)`: an MLP with 1-Lipschitz activations on latent noise.

    **The radial latent** (``latent = "radial"``, the default): :math:`z = R\,\theta`, :math:`\theta` uniform on
    the unit sphere and

    .. math:: R = \frac{E_1 + \sum_{j=2}^{k} a_j E_j}{1 + \sum_{j\ge2} a_j}, \quad E_j \sim
              \mathrm{Exp}(1)\ \text{iid}, \quad a_j = \mathrm{sigmoid}(\beta_j)\ \text{learned},

    (mean 1 whatever the :math:`a_j`, so they set the law's shape, not its scale). In log coordinates the
    generator makes :math:`\log|x|` grow about linearly in :math:`R` along each ray, so the tail of
    :math:`R` becomes the power law: :math:`a \to 0` gives :math:`P(R > s) \propto e^{-s}` (a pure power law
    of the slope's index), :math:`a = 1` the Gamma(k) law of an iid Laplace latent's L1 radius,
    :math:`P \propto s^{k-1}e^{-s}`, whose polynomial factor bends the tail lighter over the range the data
    cover, the more so the larger k. Learning :math:`a` lets the data choose between the two
    (docs/heavytail.md, "The radial latent").

    Args:
        latent_dim: dimension of z. out_dim: dimension of x.
        latent: the latent law (:data:`LATENTS`); ``latent_nu`` its Student-t degrees of freedom.
        coordinates: the network outputs ``u`` in these coordinates
            (:data:`~sciml.heavytail.coordinates.COORDINATES`); ``sample`` returns :math:`x = T^{-1}(u)`.
        scale: a learnable per-coordinate output scale, :math:`u_j = e^{\theta_j} N_j(z)` (``log_scale``
            holds :math:`\theta`); in log coordinates it is the tail parameter of coordinate j (the tail
            index of :math:`x_j` is inversely proportional to :math:`e^{\theta_j}`).
        ema: if > 0, buffers hold the exponential moving average :math:`\bar\theta \leftarrow ema\,\bar\theta
            + (1 - ema)\theta` of the weights (:meth:`update_ema` after each optimiser step), and ``sample``
            uses them: the averaged generator does not carry the last steps' adversarial oscillation.
    """

    def __init__(self, latent_dim: int, out_dim: int, width: int = 64, depth: int = 3, activation: str = "leaky_relu",
                 *, latent: str = "gaussian", latent_nu: float = 0.0, coordinates: str | Coordinates = "linear",
                 ema: float = 0.0, scale: bool = False):
        super().__init__()
        # the same Linear / 1-Lipschitz-activation stack as the critic
        self.net = CriticMLP(latent_dim, width, depth, activation, out_dim=out_dim)
        self.latent_dim, self.out_dim = latent_dim, out_dim
        self.latent, self.latent_nu = latent, float(latent_nu)
        self.coordinates = COORDINATES.resolve(coordinates)
        self.log_scale = nn.Parameter(torch.zeros(out_dim)) if scale else None
        # the radial latent's shape logits beta_j (none for one dimension: R = E_1)
        self.radial_logit = (nn.Parameter(torch.full((latent_dim - 1,), RADIAL_START))
                             if latent == "radial" else None)
        self.ema = float(ema)
        if self.ema > 0:
            for name, w in self.named_parameters():
                self.register_buffer(self._ema_name(name), w.detach().clone())

    @staticmethod
    def _ema_name(name: str) -> str:
        return "ema_" + name.replace(".", "_")

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged weights toward the current ones (no-op without ``ema``)."""
        if self.ema > 0:
            for name, w in self.named_parameters():
                getattr(self, self._ema_name(name)).lerp_(w, 1.0 - self.ema)

    def averaged(self, z: Tensor) -> Tensor:
        """:math:`G(z)` with the averaged weights (the current ones without ``ema``)."""
        if self.ema <= 0:
            return self(z)
        p = {name: getattr(self, self._ema_name(name)) for name, _ in self.named_parameters()}
        return torch.func.functional_call(self, p, (z,))

    @property
    def dim(self) -> int:
        return self.out_dim

    def latent_map(self, z: Tensor) -> Tensor:
        r"""The network's input from the raw draws of :meth:`noise`: ``z`` itself, or for the radial latent
        :math:`R\,\theta` (class docstring) from the ``2 latent_dim`` columns of Exp(1) and Gaussian draws."""
        if self.radial_logit is None:
            return z
        e, g = z[..., :self.latent_dim], z[..., self.latent_dim:]
        a = torch.sigmoid(self.radial_logit)
        radius = (e[..., 0] + (a * e[..., 1:]).sum(-1)) / (1 + a.sum())
        return radius.unsqueeze(-1) * g / g.norm(dim=-1, keepdim=True).clamp(min=1e-30)

    def forward(self, z: Tensor) -> Tensor:
        u = self.net(self.latent_map(z))
        return u if self.log_scale is None else u * self.log_scale.exp()

    @torch.no_grad()
    def match_spread(self, target: Tensor, *, generator: torch.Generator | None = None, n: int = 4096) -> None:
        """Set ``log_scale`` so that each output coordinate's median absolute deviation equals ``target``
        (the data's, in the generator's coordinates): the body's spread at the start, the tail left to
        training."""
        u = self.net(self.latent_map(self.noise(n, generator=generator)))
        mad = (u - u.median(dim=0).values).abs().median(dim=0).values
        self.log_scale.copy_(torch.log(target.to(u) / mad.clamp(min=1e-12)))

    def noise(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` latent draws on the network's device, in torch's default dtype."""
        dev = next(self.parameters()).device
        return sample_latent(self.latent, n, self.latent_dim, self.latent_nu, generator=generator, device=dev,
                             dtype=torch.get_default_dtype())

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, chunk: int = 10000) -> Tensor:
        """:math:`T^{-1}(G(z))` for ``n`` latent draws (in chunks of ``chunk``), averaged weights if ``ema``."""
        return torch.cat([self.coordinates.inverse(self.averaged(self.noise(min(chunk, n - i), generator=generator)))
                          for i in range(0, n, chunk)])


class ParticleCloud(nn.Module):
    """The particle flow's generator: the particles themselves, ``(n_particles, dim)`` in the flow's
    ``coordinates`` (a buffer, so it is saved and moved with the module). ``sample(n)`` returns the first
    ``n`` particles, mapped back to data coordinates."""

    def __init__(self, particles: Tensor, coordinates: str | Coordinates = "linear"):
        super().__init__()
        self.register_buffer("particles", particles)
        self.coordinates = COORDINATES.resolve(coordinates)

    @property
    def dim(self) -> int:
        return int(self.particles.shape[1])

    def __len__(self) -> int:
        return int(self.particles.shape[0])

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        if n > len(self):
            from ..run.errors import UsageError

            raise UsageError("n", f"the particle flow has {len(self)} particles; ask for at most that many samples "
                                  "(or train with more [particles] n_particles)")
        return self.coordinates.inverse(self.particles[:n].detach())


class PotentialFlow(nn.Module):
    r"""CNF with potential velocity :math:`v = -\nabla_x\Phi(t, x)`, :math:`\Phi` an MLP of :math:`(t, x)`.

    Args:
        dim: data dimension.
        horizon: T. n_steps: RK4 steps.
        divergence: ``"exact"`` (core ``divergence``, D forward passes) or ``"hutchinson"``
            (core ``divergence_estimate``; probes drawn outside from the generator passed to ``forward``).
        base: ``"gaussian"`` or ``"student"`` with ``base_nu``.
    """

    def __init__(self, dim: int, width: int = 32, depth: int = 2, activation: str = "tanh", *, horizon: float = 1.0,
                 n_steps: int = 8, divergence: str = "exact", probes: int = 1, base: str = "gaussian",
                 base_nu: float = 1.0):
        super().__init__()
        self.potential = MLP(dim + 1, 1, width, depth, activation)
        self.dim, self.horizon, self.n_steps = dim, horizon, n_steps
        self.div_kind, self.probes, self.base, self.base_nu = divergence, probes, base, base_nu
        phi = point_function(self.potential)
        self._grad = batch(gradient(phi))

        def field(pt: Any, x: Tensor) -> Tensor:  # v(x) at fixed t; params carry (weights, t)
            p, t = pt
            return -gradient(phi)(p, torch.cat([t.reshape(1), x]))[1:]

        self._div = batch(exact_divergence(field))
        self._div_est = batch(divergence_estimate(field), n_batched=2)

    def params(self) -> dict[str, Tensor]:
        return dict(self.potential.named_parameters())

    def base_logpdf(self, z: Tensor) -> Tensor:
        if self.base == "gaussian":
            return -0.5 * z.pow(2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return student_t_logpdf(z, self.base_nu)

    def _terms(self, p, t: float, x: Tensor, probes: Tensor | None, need_div: bool):
        tt = torch.full((x.shape[0], 1), t, dtype=x.dtype, device=x.device)
        g = self._grad(p, torch.cat([tt, x], dim=1))
        dphi_dt, v = g[:, 0], -g[:, 1:]
        div = None
        if need_div:
            tp = (p, torch.as_tensor(t, dtype=x.dtype, device=x.device))
            div = self._div(tp, x) if probes is None else self._div_est(tp, x, probes)
        return v, div, dphi_dt

    def integrate(self, x: Tensor, *, reverse: bool = False, with_terms: bool = True,
                  generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """RK4 from t=0 to T (or T to 0 with ``reverse``).

        Returns:
            ``(x_end, int div v dt, int |v|^2/2 dt, int |HJB| dt)`` (the last three zero when
            ``with_terms`` is False).
        """
        p = self.params()
        h = self.horizon / self.n_steps
        n = x.shape[0]
        probes = None
        if with_terms and self.div_kind == "hutchinson":
            probes = rademacher((n, self.probes, self.dim), generator=generator, device=x.device, dtype=x.dtype)
        zero = x.new_zeros(n)
        ldiv, kin, hjb = zero, zero, zero
        sign = -1.0 if reverse else 1.0
        for i in range(self.n_steps):
            t0 = self.horizon - i * h if reverse else i * h

            def rhs(t, y):
                v, div, dphi = self._terms(p, t, y, probes, with_terms)
                if not with_terms:
                    return sign * v, None
                r = (dphi - 0.5 * v.pow(2).sum(-1)).abs()
                return sign * v, (div, 0.5 * v.pow(2).sum(-1), r)

            k1, a1 = rhs(t0, x)
            k2, a2 = rhs(t0 + sign * h / 2, x + h / 2 * k1)
            k3, a3 = rhs(t0 + sign * h / 2, x + h / 2 * k2)
            k4, a4 = rhs(t0 + sign * h, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            if with_terms:
                ldiv = ldiv + h / 6 * (a1[0] + 2 * a2[0] + 2 * a3[0] + a4[0])
                kin = kin + h / 6 * (a1[1] + 2 * a2[1] + 2 * a3[1] + a4[1])
                hjb = hjb + h / 6 * (a1[2] + 2 * a2[2] + 2 * a3[2] + a4[2])
        return x, ldiv, kin, hjb

    def log_prob(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        r""":math:`\log p(x) = \log p_{base}(x_T) + \int_0^T\nabla\cdot v\,dt`."""
        z, ldiv, _, _ = self.integrate(x, generator=generator)
        return self.base_logpdf(z) + ldiv

    def sample_base(self, n: int, *, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> Tensor:
        kind = "gaussian" if self.base == "gaussian" else "student"
        return sample_latent(kind, n, self.dim, self.base_nu, generator=generator, device=device, dtype=dtype)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, device=None, dtype=None,
               chunk: int = 10000) -> Tensor:
        """Draw from the base and integrate backward from T to 0 (default: on the flow's device, in
        torch's default dtype)."""
        device = device if device is not None else next(self.parameters()).device
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        out = []
        for i in range(0, n, chunk):
            z = self.sample_base(min(chunk, n - i), generator=generator, device=device, dtype=dtype)
            with torch.enable_grad():  # the velocity is an input gradient
                x, *_ = self.integrate(z, reverse=True, with_terms=False)
            out.append(x.detach())
        return torch.cat(out)
