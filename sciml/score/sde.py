r"""Forward noising SDEs :math:`dX = b(X, t)\,dt + g(t)\,dW` on :math:`t \in [0, T]`, behind one interface.

* :class:`VPSDE` (Ornstein-Uhlenbeck / variance preserving): :math:`b = -\tfrac12\beta(t)x`,
  :math:`g = \sqrt{\beta(t)}`, :math:`\beta(t) = \beta_{min} + t(\beta_{max}-\beta_{min})`. Gaussian kernel
  :math:`X_t | x_0 \sim \mathcal N(\alpha_t x_0, (1-\alpha_t^2) I)`, :math:`\alpha_t = e^{-\frac12\int_0^t\beta}`.
* :class:`VESDE` (variance exploding): :math:`b = 0`, :math:`\sigma(t) = \sigma_{min}(\sigma_{max}/\sigma_{min})^t`,
  :math:`g = \sigma(t)\sqrt{2\log(\sigma_{max}/\sigma_{min})}`; kernel :math:`\mathcal N(x_0, (\sigma(t)^2-\sigma_{min}^2)I)`.
* :class:`NonlinearSDE`: any user drift :math:`b(x, t)` (no closed-form kernel; train with NDSM).
* :class:`LangevinSDE`: overdamped Langevin toward a target density :math:`\pi` (e.g. a GMM fitted to the
  data), :math:`b = \tfrac12\beta(t)\nabla\log\pi(x)`, :math:`g = \sqrt{\beta(t)}`. For every schedule
  :math:`\pi` is invariant, so the forward process relaxes to :math:`\pi`, which is also the prior the
  reverse-time sampler starts from. With :math:`\pi = \mathcal N(0, I)` it is exactly the VP SDE.

Shapes: ``x`` is ``(N, *event_shape)`` (vectors or images); ``t`` is ``(N,)``; ``diffusion`` returns ``(N,)``.
A drift that needs flat vectors (the GMM score) flattens and restores the event shape itself.

:data:`SDES` names the SDEs a config can choose (``sde.kind``): ``vp``, ``ve`` and ``langevin_gmm``
(a :class:`LangevinSDE` whose target is the mixture fitted to the data).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, Protocol

import torch
from torch import Tensor

from ..registry import Registry

__all__ = ["SDE", "VPSDE", "VESDE", "NonlinearSDE", "LangevinSDE", "Target", "StandardNormal", "bc", "SDES"]


def bc(v: Tensor, x: Tensor) -> Tensor:
    """Broadcast a per-sample ``(N,)`` tensor against ``x`` of shape ``(N, ...)``."""
    return v.reshape(v.shape + (1,) * (x.dim() - v.dim()))


class Target(Protocol):
    """A reference density for Langevin dynamics and priors: flat ``(N, D)`` in, ``(N, D)`` scores out."""

    def score(self, x: Tensor) -> Tensor: ...

    def log_prob(self, x: Tensor) -> Tensor: ...

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor: ...


class StandardNormal:
    r""":math:`\mathcal N(0, s^2 I_D)` as a :class:`Target`."""

    def __init__(self, dim: int, scale: float = 1.0, device=None, dtype=None):
        self.dim, self.scale = dim, scale
        self.device, self.dtype = device, dtype or torch.get_default_dtype()

    def score(self, x: Tensor) -> Tensor:
        return -x / self.scale**2

    def log_prob(self, x: Tensor) -> Tensor:
        return -0.5 * (x / self.scale).pow(2).sum(-1) - self.dim * math.log(self.scale * math.sqrt(2 * math.pi))

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        dev = generator.device if generator is not None else self.device
        return self.scale * torch.randn(n, self.dim, generator=generator, device=dev, dtype=self.dtype)


class SDE(ABC):
    """A forward noising SDE. Subclasses give drift, diffusion, a prior, and (if linear) the kernel.

    Attributes:
        T: terminal time.
        event_shape: shape of one sample (``(D,)`` or ``(C, H, W)``).
        has_gaussian_kernel: whether :meth:`marginal` is available (DSM possible).
    """

    has_gaussian_kernel: bool = False

    def __init__(self, event_shape: tuple[int, ...], T: float = 1.0):
        self.event_shape = tuple(event_shape)
        self.T = float(T)

    @property
    def dim(self) -> int:
        return math.prod(self.event_shape)

    @abstractmethod
    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """b(x, t), same shape as x."""

    @abstractmethod
    def diffusion(self, t: Tensor) -> Tensor:
        """g(t), shape (N,)."""

    def int_g2(self, t: Tensor) -> Tensor:
        r""":math:`\int_0^t g(s)^2 ds` (by the trapezoid rule unless a subclass has it in closed form)."""
        s = torch.linspace(0, 1, 65, device=t.device, dtype=t.dtype)
        grid = t.unsqueeze(-1) * s
        g2 = self.diffusion(grid.reshape(-1)).reshape(grid.shape) ** 2
        return torch.trapezoid(g2, grid, dim=-1)

    def noise_scale(self, t: Tensor) -> Tensor:
        r"""A rough marginal noise std, used only to precondition the score network (score ~ 1/scale).
        Default: :math:`\sqrt{\int_0^t g^2}`, exact for drift-free SDEs."""
        return self.int_g2(t).clamp_min(1e-12).sqrt()

    def marginal(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (shape of x0) and std (N,) of the Gaussian kernel p(x_t | x_0); linear SDEs only."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form transition kernel; use NDSM")

    @abstractmethod
    def prior_sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n samples of the reference distribution at time T, shape (n, *event_shape)."""

    def em_mean(self, x: Tensor, t: Tensor, dt: float | Tensor) -> tuple[Tensor, Tensor]:
        r"""One Euler-Maruyama step's Gaussian transition: mean :math:`x + b(x,t)\Delta t`, std
        :math:`h = g(t)\sqrt{\Delta t}` (shape (N,))."""
        dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device)
        return x + self.drift(x, t) * bc(dt.expand(t.shape), x), self.diffusion(t) * dt.sqrt()

    @torch.no_grad()
    def simulate(self, x0: Tensor, times: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Euler-Maruyama path on the grid ``times`` (``times[0]`` is the start); shape (len(times), N, ...)."""
        xs = [x0]
        x = x0
        for t0, t1 in zip(times[:-1], times[1:]):
            tt = t0.expand(x.shape[0])
            mean, h = self.em_mean(x, tt, t1 - t0)
            x = mean + bc(h, x) * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            xs.append(x)
        return torch.stack(xs)


class _BetaSchedule:
    """Linear :math:`\\beta(t)` and its integral, shared by VP and Langevin."""

    beta_min: float
    beta_max: float
    T: float

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + (t / self.T) * (self.beta_max - self.beta_min)

    def int_beta(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2 / self.T

    def diffusion(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def int_g2(self, t: Tensor) -> Tensor:
        return self.int_beta(t)


SDES: Registry[SDE] = Registry("SDE", SDE)


@SDES.register("vp")
class VPSDE(_BetaSchedule, SDE):
    """Variance-preserving (Ornstein-Uhlenbeck) SDE toward N(0, I)."""

    has_gaussian_kernel = True

    def __init__(self, event_shape, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0):
        SDE.__init__(self, event_shape, T)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def drift(self, x, t):
        return -0.5 * bc(self.beta(t), x) * x

    def marginal(self, x0, t):
        log_alpha = -0.5 * self.int_beta(t)
        return bc(log_alpha.exp(), x0) * x0, (-torch.expm1(2 * log_alpha)).sqrt()

    def noise_scale(self, t):
        return (-torch.expm1(-self.int_beta(t))).clamp_min(1e-12).sqrt()

    def prior_sample(self, n, *, generator=None):
        dev = generator.device if generator is not None else None
        return torch.randn((n, *self.event_shape), generator=generator, device=dev)


@SDES.register("ve")
class VESDE(SDE):
    """Variance-exploding SDE (no drift, geometric noise levels)."""

    has_gaussian_kernel = True

    def __init__(self, event_shape, sigma_min: float = 0.01, sigma_max: float = 10.0, T: float = 1.0):
        super().__init__(event_shape, T)
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self._log_ratio = math.log(sigma_max / sigma_min)

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(self._log_ratio * t / self.T)

    def drift(self, x, t):
        return torch.zeros_like(x)

    def diffusion(self, t):
        return self.sigma(t) * math.sqrt(2 * self._log_ratio / self.T)

    def int_g2(self, t):
        return self.sigma(t) ** 2 - self.sigma_min**2

    def marginal(self, x0, t):
        return x0, self.int_g2(t).clamp_min(0).sqrt()

    def prior_sample(self, n, *, generator=None):
        dev = generator.device if generator is not None else None
        return self.sigma_max * torch.randn((n, *self.event_shape), generator=generator, device=dev)


class NonlinearSDE(SDE):
    """dX = b(X, t) dt + g(t) dW with a user drift; no closed-form kernel.

    Args:
        event_shape: shape of one sample.
        drift: ``b(x, t)`` on batches (``x`` (N, ...), ``t`` (N,)) returning x's shape.
        diffusion: ``g(t)`` on a (N,) tensor.
        prior_sampler: ``prior_sampler(n, generator) -> (n, *event_shape)``, the law the reverse sampler
            starts from (the forward process's approximate law at T).
        T: terminal time.
    """

    def __init__(self, event_shape, drift: Callable[[Tensor, Tensor], Tensor],
                 diffusion: Callable[[Tensor], Tensor],
                 prior_sampler: Callable[..., Tensor], T: float = 1.0):
        super().__init__(event_shape, T)
        self._drift, self._diffusion, self._prior = drift, diffusion, prior_sampler

    def drift(self, x, t):
        return self._drift(x, t)

    def diffusion(self, t):
        return self._diffusion(t)

    def prior_sample(self, n, *, generator=None):
        return self._prior(n, generator)


@SDES.register("langevin_gmm", doc="Langevin dynamics toward a Gaussian mixture fitted to the data")
class LangevinSDE(_BetaSchedule, SDE):
    r"""Overdamped Langevin dynamics toward ``target``: :math:`b = \tfrac12\beta(t)\nabla\log\pi`, :math:`g=\sqrt{\beta}`.

    Args:
        target: a :class:`Target` on flat vectors (e.g. :class:`sciml.score.gmm.GMM`, whose score comes
            from the autodiff core).
        event_shape: shape of one sample (flattened to ``target``'s dimension for the drift).
    """

    def __init__(self, target: Target, event_shape, beta_min: float = 0.1, beta_max: float = 10.0,
                 T: float = 1.0):
        SDE.__init__(self, event_shape, T)
        self.target = target
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def target_score(self, x: Tensor) -> Tensor:
        """grad log pi at x (any event shape)."""
        return self.target.score(x.reshape(x.shape[0], -1)).reshape(x.shape)

    def drift(self, x, t):
        return 0.5 * bc(self.beta(t), x) * self.target_score(x)

    def noise_scale(self, t):
        # the noise scale of the VP process with the same schedule: right at small t, O(1) at large t
        return (-torch.expm1(-self.int_beta(t))).clamp_min(1e-12).sqrt()

    def prior_sample(self, n, *, generator=None):
        return self.target.sample(n, generator=generator).reshape(n, *self.event_shape)

    def drift_lipschitz(self) -> float | None:
        r"""A bound on the drift's stiffness, :math:`\tfrac12\beta_{max}\max_k\lambda_{max}(P_k)`, when the
        target is a Gaussian mixture (``None`` otherwise). Explicit steps need ``L * dt`` below ~1."""
        pc = getattr(self.target, "prec_chol", None)
        if pc is None:
            return None
        lam = torch.linalg.matrix_norm(pc, ord=2).max() ** 2
        return 0.5 * max(self.beta_min, self.beta_max) * float(lam)
