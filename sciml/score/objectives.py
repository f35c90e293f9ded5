r"""Training objectives: denoising score matching (DSM) and nonlinear DSM (NDSM) with control variates.

**DSM** (linear SDEs, exact Gaussian kernel :math:`X_t|x_0 \sim \mathcal N(m_t x_0, \sigma_t^2 I)`):

.. math::
    L_{DSM}(\theta) = E_{t, x_0, z}\, \lambda(t)\,\big\|s_\theta(x_t, t) - \nabla_{x_t}\log p(x_t|x_0)\big\|^2,
    \qquad \nabla_{x_t}\log p(x_t|x_0) = -\frac{x_t - m_t x_0}{\sigma_t^2} = -\frac{z}{\sigma_t}.

**NDSM** (any drift; no closed-form kernel). On a grid :math:`0=t_0<\dots<t_N=T`, forward paths are
simulated by Euler-Maruyama, whose one-step transition *is* Gaussian:
:math:`X_n = \mu_{n-1} + h_{n-1} z_n`, :math:`\mu_{n-1} = X_{n-1} + b(X_{n-1}, t_{n-1})\Delta t`,
:math:`h_{n-1} = g(t_{n-1})\sqrt{\Delta t}`. Denoising score matching against that short-time kernel,

.. math::
    \ell = \lambda(t_n)\Big[\|s_\theta(X_n)\|^2 + \tfrac{2}{h}\langle s_\theta(X_n), z\rangle
           + \tfrac{1}{h^2}(\|z\|^2 - D)\Big] = \lambda\,\big(\|s_\theta(X_n, t_n) + z/h\|^2 - D/h^2\big),

(the square centred by its :math:`\theta`-independent mean :math:`D/h^2`, a known function of t, so that
the objective's value is comparable across time steps; this shifts the mean by a constant only),

is minimised by the score of the (discretised) forward marginal :math:`p_{t_n}`, but two of its terms
have variance :math:`O(1/h^2)` and :math:`O(1/h^4)` that explode as :math:`\Delta t \to 0`.

**Control variates.** Both exploding parts are cancelled by zero-mean terms (conditionally on
:math:`X_{n-1}`, :math:`z` is independent of :math:`\mu_{n-1}`):

.. math::
    C_1 = \lambda\,\tfrac{2}{h}\langle s_\theta(\mu_{n-1}, t_n), z\rangle, \qquad
    C_2 = \lambda\,\tfrac{1}{h^2}(\|z\|^2 - D), \qquad
    \ell_{CV} = \ell - a(t)\,C_1 - c(t)\,C_2 \;[- e(t)\,C_3].

:math:`C_1` is a *neural* control variate (the score network itself at the EM mean; for
:math:`a=1`, :math:`s_\theta(X_n)-s_\theta(\mu)\approx h\,\partial s_\theta\, z` so the cross term is
bounded), :math:`C_2` removes the :math:`\theta`-independent :math:`\|z\|^2/h^2`. The optional
second-order term :math:`C_3 = 2\lambda(z^\top J z - \operatorname{tr}J)`, :math:`J=\partial_x s_\theta(\mu)`,
removes the next Taylor term of the cross product, whose variance is O(1) in the step but large when
the score is stiff (sharp mixture components). The coefficients
:math:`a(t), c(t)` are outputs of a small network of t (initialised at 1, the small-step optimum) that is
trained to minimise the mini-batch variance of :math:`\ell_{CV}`. Since :math:`E[C_i]=0` for every
coefficient and every :math:`\theta`, neither the objective's mean nor its expected gradient changes.

Note on sources: the NDSM paper (Birrell et al., arXiv:2405.15625) could not be read beyond its abstract;
this construction follows the abstract of its follow-up (Shen & Zhu, arXiv:2512.06615: "the approximate
Gaussian transition induced by the Euler-Maruyama scheme ... remove two zero-mean but variance
exploding terms arising from small time steps"). See ``docs/score.md``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..registry import Registry
from .sde import SDE, bc

__all__ = ["Weighting", "NoiseVarianceWeighting", "UniformWeighting", "Objective", "DSM", "NDSM", "ControlVariates",
           "PathBank", "Terms", "WEIGHTINGS", "OBJECTIVES", "CONTROL_VARIATES"]

CONTROL_VARIATES = ("learned", "fixed", "none")
"""NDSM control-variate modes: coefficients learned, fixed at 1, or no control variates."""


# ---- time weightings (small strategy objects) ------------------------------------------------------

class Weighting(ABC):
    r"""A time weighting :math:`\lambda(t)` of the score-matching objective."""

    @abstractmethod
    def __call__(self, sde: SDE, t: Tensor) -> Tensor:
        """lambda(t), shape of t."""


WEIGHTINGS: Registry[Weighting] = Registry("time weighting", Weighting)


@WEIGHTINGS.register("noise_variance")
@dataclass(frozen=True)
class NoiseVarianceWeighting(Weighting):
    r""":math:`\lambda(t) = \sigma(t)^2` (the SDE's noise scale squared): every t contributes O(1)."""

    def __call__(self, sde: SDE, t: Tensor) -> Tensor:
        return sde.noise_scale(t) ** 2


@WEIGHTINGS.register("uniform")
@dataclass(frozen=True)
class UniformWeighting(Weighting):
    r""":math:`\lambda(t) = 1`."""

    def __call__(self, sde: SDE, t: Tensor) -> Tensor:
        return torch.ones_like(t)


def _sqnorm(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).pow(2).sum(-1)


def _dot(x: Tensor, y: Tensor) -> Tensor:
    return (x * y).reshape(x.shape[0], -1).sum(-1)


# ---- DSM ------------------------------------------------------------------------------------------

class Objective(ABC):
    """A score-matching objective: ``loss(model, batch..., generator=) -> (mean loss, metrics)``.

    Attributes:
        sde: the forward SDE; t_min: the smallest time the model is trained at (sampling stops there).
    """

    sde: SDE

    @property
    @abstractmethod
    def t_min(self) -> float:
        """Smallest training time."""


OBJECTIVES: Registry[Objective] = Registry("objective", Objective)


@OBJECTIVES.register("dsm", doc="denoising score matching with the exact kernel (linear SDEs)")
class DSM(Objective):
    """Denoising score matching with the exact Gaussian kernel of a linear SDE.

    Args:
        sde: an SDE with ``has_gaussian_kernel``.
        weighting: time weighting (a :class:`Weighting` or a name in :data:`WEIGHTINGS`); eps: smallest
            training time.
    """

    def __init__(self, sde: SDE, *, weighting: Weighting | str = NoiseVarianceWeighting(), eps: float = 1e-3):
        if not sde.has_gaussian_kernel:
            raise ValueError(f"DSM needs a linear SDE with a Gaussian kernel; {type(sde).__name__} has none "
                             "(use NDSM)")
        self.sde, self.weighting, self.eps = sde, WEIGHTINGS.resolve(weighting), float(eps)

    @property
    def t_min(self) -> float:
        return self.eps

    def target(self, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        r"""The exact conditional score :math:`\nabla_{x_t}\log p(x_t|x_0) = -(x_t - m_t x_0)/\sigma_t^2`."""
        mean, std = self.sde.marginal(x0, t)
        return -(xt - mean) / bc(std, xt) ** 2

    def draw(self, x0: Tensor, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Random times ``t ~ U(eps, T)`` and noises ``z`` (drawn here, outside any vmap)."""
        t = self.eps + (self.sde.T - self.eps) * torch.rand(x0.shape[0], generator=generator,
                                                            device=x0.device, dtype=x0.dtype)
        z = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        return t, z

    def per_sample(self, model: nn.Module, x0: Tensor, t: Tensor, z: Tensor) -> Tensor:
        """lambda(t) ||s(x_t, t) + z / sigma_t||^2 for each sample, shape (N,)."""
        mean, std = self.sde.marginal(x0, t)
        xt = mean + bc(std, x0) * z
        s = model(xt, t)
        return self.weighting(self.sde, t) * _sqnorm(s + z / bc(std, z))

    def loss(self, model: nn.Module, x0: Tensor, *, generator=None) -> tuple[Tensor, dict[str, float]]:
        ell = self.per_sample(model, x0, *self.draw(x0, generator=generator))
        return ell.mean(), {"loss": float(ell.detach().mean())}


# ---- NDSM -----------------------------------------------------------------------------------------

class PathBank:
    """Euler-Maruyama forward paths of a data subset, from which NDSM draws (X_{n-1}, n) pairs.

    Only the path states are reused between refreshes; the noise z of the transition that is scored
    is drawn fresh for every training pair.

    Args:
        sde: forward SDE; times: the grid (N+1,).
    """

    def __init__(self, sde: SDE, times: Tensor):
        self.sde, self.times = sde, times
        self.paths: Tensor | None = None  # (N, P, ...) : states X_0 .. X_{N-1}

    def refresh(self, x0: Tensor, *, generator: torch.Generator | None = None) -> None:
        self.paths = self.sde.simulate(x0, self.times[:-1], generator=generator)

    def draw(self, n: int, *, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` random pairs: the states X_{k-1} (n, ...) and step indices k in 1..N (n,)."""
        if self.paths is None:
            raise RuntimeError("PathBank.refresh must be called before draw")
        n_steps, n_paths = self.paths.shape[:2]
        dev = self.paths.device
        k = torch.randint(1, n_steps + 1, (n,), generator=generator, device=dev)
        p = torch.randint(0, n_paths, (n,), generator=generator, device=dev)
        return self.paths[k - 1, p], k


class ControlVariates(nn.Module):
    r"""Coefficients of the NDSM control variates, a small network of t: :math:`(a(t), c(t)[, e(t)])`.

    Args:
        learn: train the coefficients (minimising the variance of the objective); else fixed at 1.
        second_order: add :math:`C_3 = 2\lambda\,(z^\top J z - \operatorname{tr} J)`, with
            :math:`J = \partial_x s_\theta(\mu, t)` (one Jacobian-vector product plus D for the exact
            trace). After :math:`C_1` the leftover cross term is :math:`\approx 2\lambda z^\top J z`,
            whose variance does not vanish with the step; :math:`C_3` removes it. Worth it for small D.
        hidden: width of the coefficient network.
    """

    def __init__(self, learn: bool = True, second_order: bool = False, hidden: int = 16):
        super().__init__()
        self.learn, self.second_order = learn, second_order
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 3))
        nn.init.zeros_(self.net[2].weight)
        with torch.no_grad():
            self.net[2].bias.fill_(1.0)  # start at the small-step optimum a = c = e = 1
        if not learn:
            self.requires_grad_(False)

    def forward(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ace = self.net(t.reshape(-1, 1).to(self.net[0].weight.dtype))
        return ace[:, 0], ace[:, 1], ace[:, 2]


@dataclass
class Terms:
    """Per-sample pieces of the NDSM objective (all shape (N,)): ``raw`` = l, ``cv1..cv3`` = C_1..C_3."""

    raw: Tensor
    cv1: Tensor
    cv2: Tensor
    cv3: Tensor
    t: Tensor


@OBJECTIVES.register("ndsm", doc="nonlinear DSM on Euler-Maruyama transitions (any drift)")
class NDSM(Objective):
    """Nonlinear denoising score matching on Euler-Maruyama transitions, with optional control variates.

    Args:
        sde: any forward SDE (linear or not).
        n_steps: N, grid steps on [0, T] (the objective's time step is T/N).
        weighting: time weighting (a :class:`Weighting` or a name in :data:`WEIGHTINGS`).
        control_variates: a :class:`ControlVariates` or ``None`` for the plain objective.
    """

    def __init__(self, sde: SDE, *, n_steps: int = 100, weighting: Weighting | str = NoiseVarianceWeighting(),
                 control_variates: ControlVariates | None = None):
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.sde, self.n_steps, self.cv = sde, int(n_steps), control_variates
        self.weighting = WEIGHTINGS.resolve(weighting)
        self.dt = sde.T / self.n_steps

    @property
    def t_min(self) -> float:
        return self.dt

    def times(self, device=None, dtype=None) -> Tensor:
        return torch.linspace(0.0, self.sde.T, self.n_steps + 1, device=device, dtype=dtype)

    def transition(self, x_prev: Tensor, k: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """From X_{k-1} and the noise z: ``(y = X_k, mu_{k-1}, h_{k-1}, t_k)``."""
        t_prev = (k - 1).to(x_prev.dtype) * self.dt
        mu, h = self.sde.em_mean(x_prev, t_prev, self.dt)
        return mu + bc(h, z) * z, mu, h, k.to(x_prev.dtype) * self.dt

    def target(self, z: Tensor, h: Tensor) -> Tensor:
        r"""The short-time conditional score :math:`\nabla_y \log \mathcal N(y; \mu, h^2 I) = -z/h`."""
        return -z / bc(h, z)

    def terms(self, model: nn.Module, x_prev: Tensor, k: Tensor, z: Tensor, *, need_cv: bool = True) -> Terms:
        """The per-sample objective and its two control variates (noise ``z`` passed in)."""
        y, mu, h, t = self.transition(x_prev, k, z)
        lam = self.weighting(self.sde, t)
        s = model(y, t)
        d = z[0].numel()
        # centred by its theta-independent conditional mean lambda D / h^2 (a known function of t only)
        raw = lam * (_sqnorm(s - self.target(z, h)) - d / h**2)
        zero = torch.zeros_like(raw)
        if not need_cv:
            return Terms(raw, zero, zero, zero, t)
        cv2 = lam / h**2 * (_sqnorm(z) - d)
        if self.cv is not None and self.cv.second_order:
            def f(u: Tensor) -> Tensor:
                return model(u, t)

            s_mu, jz = torch.func.jvp(f, (mu,), (z,))
            trace = zero
            for i in range(d):  # exact trace of the per-sample Jacobian, one JVP per coordinate
                e = torch.zeros_like(mu).reshape(mu.shape[0], -1)
                e[:, i] = 1.0
                trace = trace + torch.func.jvp(f, (mu,), (e.reshape(mu.shape),))[1].reshape(mu.shape[0], -1)[:, i]
            cv3 = 2.0 * lam * (_dot(jz, z) - trace)
        else:
            s_mu, cv3 = model(mu, t), zero
        cv1 = lam * 2.0 / h * _dot(s_mu, z)
        return Terms(raw, cv1, cv2, cv3, t)

    def combine(self, terms: Terms) -> tuple[Tensor, Tensor]:
        """``(per-sample objective for theta, variance objective for the coefficients)``."""
        if self.cv is None:
            return terms.raw, terms.raw.new_zeros(())
        a, c, e = self.cv(terms.t)
        ell = terms.raw - a.detach() * terms.cv1 - c.detach() * terms.cv2 - e.detach() * terms.cv3
        if not self.cv.learn:
            return ell, terms.raw.new_zeros(())
        # the coefficients see detached terms: they minimise the variance, theta minimises the mean
        ell_c = (terms.raw.detach() - a * terms.cv1.detach() - c * terms.cv2.detach()
                 - e * terms.cv3.detach())
        return ell, ell_c.var()

    def loss(self, model: nn.Module, x_prev: Tensor, k: Tensor, *, generator=None) -> tuple[Tensor, dict[str, float]]:
        """Mini-batch loss (the NDSM mean plus, with learned coefficients, their variance objective)."""
        z = torch.randn(x_prev.shape, generator=generator, device=x_prev.device, dtype=x_prev.dtype)
        terms = self.terms(model, x_prev, k, z, need_cv=self.cv is not None)
        ell, var_obj = self.combine(terms)
        info = {"loss": float(ell.detach().mean()), "loss_var": float(ell.detach().var())}
        return ell.mean() + var_obj, info
