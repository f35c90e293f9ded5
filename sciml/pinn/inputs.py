r"""Standardised network inputs: the MLP sees :math:`z = (y - m) / \sigma`, not the raw point :math:`y`.

In a high-dimensional ball each coordinate of a point is small: under the radial sampler
:math:`\mathbb{E}[x_i^2] = \mathbb{E}[r^2]/d = 1/(3d)`, a standard deviation of 0.058 at :math:`d = 100`.
With xavier weights the first layer's pre-activations are then about 0.05, where tanh is linear (and
odd, so it has no quadratic term): the network starts as a nearly linear map and must grow its first-layer
weights by an order of magnitude before it can bend, which Adam, moving each weight by about its
learning rate per step, does slowly. Standardising the inputs, as any regression would, removes that.

The standardisation is a *parametrisation*, not a layer: the trainable first-layer weights :math:`W, b`
act on :math:`z`, and the network's parameters are the equivalent ones on :math:`y`,

.. math:: W_\text{eff} = W\,\mathrm{diag}(1/\sigma), \qquad b_\text{eff} = b - W_\text{eff}\, m,

so the module stays a plain MLP (the forward Laplacian, compilation, the SVD transfer and ``model.pt``
see ordinary weights), while Adam trains :math:`W` in the standardised coordinates. The input is
:math:`y = (t - t_\text{shift}, x)` for an evolution problem and :math:`y = x` for a stationary one;
:math:`m, \sigma` are those of the run's own training distribution (:func:`input_statistics`), fixed
before training, so a resumed run rebuilds the same map.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import torch
from torch import Tensor, nn

from sciml.autodiff import mlp_structure

from .problem import Ball, is_stationary
from .solver import Parametrisation, identity_parametrisation

__all__ = ["input_statistics", "standardised_parametrisation"]

_RADII_DRAWS = 100_000  # radii of the sampler drawn to estimate E[r^2] (one dimension: cheap)


def input_statistics(problem, sampler, *, t_shift: float = 0.0, device=None,
                     dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    r"""Mean :math:`m` and standard deviation :math:`\sigma` of the network's inputs under the training
    distribution.

    * Ball of radius :math:`R` and centre :math:`c`, sampled by ``sampler``: :math:`m = c` and, the
      sampler being rotation invariant, one :math:`\sigma^2 = \mathbb{E}[r^2]/d` for every coordinate
      (:math:`\mathbb{E}[r^2]` from :data:`_RADII_DRAWS` radii of the sampler, a fixed generator).
    * Box :math:`[a, b]`: :math:`m = (a + b)/2`, :math:`\sigma = (b - a)/\sqrt{12}` per coordinate.
    * Time (evolution problems), uniform on :math:`[t_0, t_1]` and shifted by ``t_shift``:
      :math:`m = (t_0 + t_1)/2 - t_\text{shift}`, :math:`\sigma = (t_1 - t_0)/\sqrt{12}`.

    Returns:
        ``(m, sigma)``, each of the network's input dimension, on ``device`` in ``dtype``.
    """
    dom = problem.domain
    if isinstance(dom, Ball):
        gen = torch.Generator().manual_seed(0)
        r = sampler.radii(_RADII_DRAWS, dom, gen, None, torch.float64)
        m_x = dom.center_tensor(None, torch.float64)
        s_x = torch.full((dom.d,), math.sqrt(float((r**2).mean()) / dom.d), dtype=torch.float64)
    else:
        low = torch.tensor(dom.low, dtype=torch.float64)
        high = torch.tensor(dom.high, dtype=torch.float64)
        m_x, s_x = (low + high) / 2, (high - low) / math.sqrt(12)
    if not is_stationary(problem):
        t0, t1 = problem.t_range
        m_x = torch.cat([torch.tensor([0.5 * (t0 + t1) - t_shift], dtype=torch.float64), m_x])
        s_x = torch.cat([torch.tensor([(t1 - t0) / math.sqrt(12)], dtype=torch.float64), s_x])
    return m_x.to(device=device, dtype=dtype), s_x.to(device=device, dtype=dtype)


def standardised_parametrisation(module: nn.Module, mean: Tensor, std: Tensor,
                                 params: Mapping[str, Tensor] | None = None) -> Parametrisation:
    r"""Every parameter trainable, the first layer's acting on standardised inputs (module docstring).

    Args:
        module: the MLP; its parameters (or ``params``) are the trainable tensors :math:`\theta`, the
            first layer's :math:`W, b` taken as acting on :math:`z = (y - m)/\sigma` (a fresh network's
            initialisation is then the usual one for unit-variance inputs).
        mean, std: :math:`m, \sigma` of :func:`input_statistics`.
    """
    structure = mlp_structure(module)  # an MLP: the first affine layer's parameter names
    w_key, b_key = structure.weights[0], structure.biases[0]
    inv = 1.0 / std

    def build(th: Mapping[str, Tensor], const: Mapping[str, Tensor]) -> dict[str, Tensor]:
        p = {**const, **th}
        w = th[w_key] * inv
        p[w_key] = w
        if b_key is not None:
            p[b_key] = th[b_key] - w @ mean
        return p

    return dataclasses.replace(identity_parametrisation(module, params), build=build)
