r"""The coordinates a generator and its critic work in (:data:`COORDINATES`, the keys ``gan.coordinates``
and ``particles.coordinates``).

* ``linear``: :math:`u = x`.
* ``log``: coordinatewise :math:`u_j = \mathrm{sign}(x_j)\log(1 + |x_j|)`, inverse
  :math:`x_j = \mathrm{sign}(u_j)(e^{|u_j|} - 1)`.

**Why log coordinates.** The map :math:`T` is a bijection, so every f-divergence is unchanged by it,
:math:`D_f(T_\#P\|T_\#Q) = D_f(P\|Q)`; only the metric of the W1 proximal changes, to
:math:`d(x, y) = |T(x) - T(y)|`. A power law becomes an exponential tail,
:math:`P(|x_j| > r) \sim c\,r^{-a}` giving :math:`P(|u_j| > s) \sim c\,e^{-a s}`, so the target lives
at scale :math:`O(1/a)` instead of reaching :math:`r \sim n^{1/a}`:

* a particle flow :math:`u \leftarrow u - \Delta t\,\nabla_u\phi(u)` with an L-Lipschitz critic (in
  ``u``) still moves at most :math:`L\Delta t` per step in ``u`` (the CFL bound of the GPA paper holds
  in the new metric); in ``x`` that is :math:`1 + |x_j|` growing by at most the factor
  :math:`e^{L\Delta t}` per step, the per-particle step :math:`\Delta t(1 + |x_j|)` of a flow that
  covers decades of radius in tens of steps instead of :math:`r / (L\Delta t)`;
* a GAN generator ``u = G(z)`` on Laplace (exponential-tailed) noise: a ReLU-type MLP is
  asymptotically positively homogeneous, so ``u`` has exponential tails whose rate in each direction
  is set by the generator's asymptotic slope there, i.e. ``x`` has power-law tails whose index per
  direction is **learned** (slope :math:`s` gives index :math:`\approx` rate of the latent / s), not
  copied from an estimate of the data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..registry import Registry

__all__ = ["Coordinates", "LinearCoordinates", "LogCoordinates", "COORDINATES"]


class Coordinates:
    """A bijection :math:`u = T(x)` of :math:`R^D` applied coordinatewise (``forward``) and its inverse."""

    name = ""

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def inverse(self, u: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: the coordinates of the generator and critic: ``gan.coordinates``, ``particles.coordinates``
COORDINATES: Registry[Coordinates] = Registry("coordinates", Coordinates)


@COORDINATES.register("linear")
class LinearCoordinates(Coordinates):
    """:math:`u = x`."""

    name = "linear"

    def forward(self, x: Tensor) -> Tensor:
        return x

    def inverse(self, u: Tensor) -> Tensor:
        return u


@COORDINATES.register("log")
class LogCoordinates(Coordinates):
    r""":math:`u = \mathrm{sign}(x)\log(1+|x|)` per coordinate (see the module docstring)."""

    name = "log"

    def forward(self, x: Tensor) -> Tensor:
        return torch.sign(x) * torch.log1p(x.abs())

    def inverse(self, u: Tensor) -> Tensor:
        return torch.sign(u) * torch.expm1(u.abs())
