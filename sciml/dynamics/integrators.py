r"""Integrators as small strategy objects: ``integrator.integrate(system, x0, t) -> X``.

* :class:`Yoshida4` - the 4th-order symplectic composition of three leapfrog steps (Yoshida 1990,
  Forest-Ruth) for separable :math:`H = T(p) + V(q)`. Symplectic maps keep the energy error bounded
  (no secular drift) over exponentially long times, which is what trajectory data for conservation-law
  discovery needs: a drifting integrator manufactures a slowly varying "invariant".
* :class:`Leapfrog` - 2nd-order velocity Verlet (cheap, for tests and comparison).
* :class:`DOP853` - SciPy's 8th-order Dormand-Prince with tight tolerances, for any vector field.

All work in float64 on a batch of initial states ``x0`` of shape ``(n, d)`` and return ``(n, T, d)`` at
the output times ``t`` (shape ``(T,)``, ``t[0]`` the initial time).

:data:`INTEGRATORS` names them (``yoshida4``, ``leapfrog``, ``dop853``): the choices of ``sciml simulate
--integrator``; ``INTEGRATORS.resolve(name, max_step=h)`` builds one (``dop853`` chooses its own steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..registry import Registry
from .system import DynamicalSystem

__all__ = ["Integrator", "Leapfrog", "Yoshida4", "DOP853", "default_integrator", "INTEGRATORS",
           "IntegrationError"]


class IntegrationError(RuntimeError):
    """An adaptive integrator gave up (step size underflow, a non-finite vector field)."""


class Integrator:
    """Base class: ``integrate(system, x0, t)``."""

    def integrate(self, system: DynamicalSystem, x0: Tensor, t: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError


def _check_times(t: Tensor) -> Tensor:
    t = torch.as_tensor(t, dtype=torch.float64)
    if t.ndim != 1 or t.numel() < 2 or not bool((torch.diff(t) > 0).all()):
        raise ValueError("output times t must be a strictly increasing 1-D array with at least 2 entries")
    return t


@dataclass(frozen=True)
class _Splitting(Integrator):
    """A symmetric composition of drift-kick-drift leapfrog steps with weights ``_weights``."""

    max_step: float = 1e-2  # largest internal step; each output interval is split evenly below it

    _weights: tuple[float, ...] = field(default=(1.0,), repr=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.max_step) and self.max_step > 0):
            raise ValueError(f"{type(self).__name__}: max_step must be a finite number > 0, got {self.max_step}")

    def integrate(self, system: DynamicalSystem, x0: Tensor, t: Tensor) -> Tensor:
        if not system.separable:
            raise ValueError(f"{type(self).__name__} needs a separable Hamiltonian (dT_dp, dV_dq); "
                             f"system {system.name!r} has none - use DOP853")
        t = _check_times(t)
        N = system.n_dof
        x = torch.as_tensor(x0, dtype=torch.float64).clone()
        q, p = x[..., :N].clone(), x[..., N:].clone()
        out = [torch.cat([q, p], -1)]
        for k in range(t.numel() - 1):
            dt_out = float(t[k + 1] - t[k])
            n_sub = max(1, int(np.ceil(dt_out / self.max_step - 1e-12)))
            h = dt_out / n_sub
            for _ in range(n_sub):
                for w in self._weights:
                    # drift-kick-drift leapfrog of size w*h (symmetric, symplectic)
                    q = q + 0.5 * w * h * system.dT_dp(p)
                    p = p - w * h * system.dV_dq(q)
                    q = q + 0.5 * w * h * system.dT_dp(p)
            out.append(torch.cat([q, p], -1))
        return torch.stack(out, dim=-2)


_CBRT2 = 2.0 ** (1.0 / 3.0)
_W1 = 1.0 / (2.0 - _CBRT2)
_W0 = -_CBRT2 / (2.0 - _CBRT2)


@dataclass(frozen=True)
class Leapfrog(_Splitting):
    """Velocity Verlet (Stormer-Verlet), order 2, symplectic. ``max_step``: largest internal step."""

    max_step: float = 1e-3
    _weights: tuple[float, ...] = field(default=(1.0,), repr=False)


@dataclass(frozen=True)
class Yoshida4(_Splitting):
    r"""Yoshida's 4th-order symplectic integrator: leapfrog steps of sizes :math:`w_1h, w_0h, w_1h` with
    :math:`w_1 = 1/(2-2^{1/3})`, :math:`w_0 = -2^{1/3}/(2-2^{1/3})`. ``max_step``: largest internal step."""

    max_step: float = 1e-2
    _weights: tuple[float, ...] = field(default=(_W1, _W0, _W1), repr=False)


@dataclass(frozen=True)
class DOP853(Integrator):
    """SciPy ``solve_ivp(method="DOP853")`` with tolerances ``rtol``/``atol``, all trajectories at once."""

    rtol: float = 1e-11
    atol: float = 1e-11

    def integrate(self, system: DynamicalSystem, x0: Tensor, t: Tensor) -> Tensor:
        from scipy.integrate import solve_ivp

        t = _check_times(t)
        x0 = torch.as_tensor(x0, dtype=torch.float64)
        n, d = x0.shape

        def rhs(_s: float, y: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(y).view(n, d)
            return system.vector_field(x).reshape(-1).numpy()

        tn = t.numpy()
        sol = solve_ivp(rhs, (tn[0], tn[-1]), x0.reshape(-1).numpy(), method="DOP853", t_eval=tn,
                        rtol=self.rtol, atol=self.atol)
        if not sol.success:
            raise IntegrationError(f"DOP853 failed on {system.name}: {sol.message}")
        return torch.from_numpy(sol.y.T.reshape(len(tn), n, d)).permute(1, 0, 2).contiguous()


INTEGRATORS: Registry[Integrator] = Registry("integrator", Integrator)
"""Integrators by name; the symplectic ones take ``max_step`` (largest internal step)."""
INTEGRATORS.register("yoshida4", Yoshida4, doc="symplectic, order 4 (separable Hamiltonians)")
INTEGRATORS.register("leapfrog", Leapfrog, doc="symplectic, order 2 (separable Hamiltonians)")
INTEGRATORS.register("dop853", DOP853, doc="Dormand-Prince order 8, adaptive (any vector field)")


def default_integrator(system: DynamicalSystem) -> Integrator:
    """Symplectic 4th order for separable Hamiltonians, DOP853 otherwise."""
    return Yoshida4() if system.separable else DOP853()
