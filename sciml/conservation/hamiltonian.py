r"""The Hamiltonian start: on canonical (``qp``) data the energy's gradient is observed, not guessed.

For a Hamiltonian system in canonical coordinates :math:`x = (q, p)`, :math:`\dot q = \partial H/\partial p`
and :math:`\dot p = -\partial H/\partial q`, so the finite-difference velocities give the energy's gradient
at every data point:

.. math:: \nabla H(x) = J^{-1}\dot x = (-\dot p,\; \dot q).

A candidate network fitted to that gradient (a Sobolev regression, as in Hamiltonian neural networks) starts
next to the energy whatever its form. This matters where the deflation objective's random starts do not get
there: on the planar Yukawa problem the energy's gradient is nearly parallel to the angular momentum's on the
data (median deflation factor 13.6 for the exact energy after :math:`L`), and every random start (and the
library's degree-4 start) settled on an approximate integral nearly orthogonal to :math:`L` (deflation 1.1;
the orbits' apsides precess slowly, though Kepler's Runge-Lenz angle itself scores 1000x its floor) at
20-300x its own floor, while the energy scores its floor (docs/conservation.md, "Why a candidate stops above
its floor").

The fitted network is one more initialisation of a candidate (label ``"hamiltonian"``) beside the random and
library ones, and the warm-up's usual rule decides: where the energy is already in the span of the earlier
laws, its deflated loss is large and it loses. It is fitted once per discovery, and only while the observed
gradient is not yet in that span to the accuracy of the velocities (:func:`energy_in_span`, the library's
Richardson rule with its factor ``library_exact_factor``). Data that are not canonical (no ``n_dof``) have
no Hamiltonian start; for a system that is not Hamiltonian in the given coordinates the fitted network is
merely a poor start that loses the warm-up.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..run import derive_seed
from .data import DeflationData, validation_index
from .losses import span_distance_sq

__all__ = ["observed_energy_gradient", "energy_in_span", "fit_hamiltonian", "hamiltonian_state"]


def observed_energy_gradient(v: Tensor, n_dof: int) -> Tensor:
    r""":math:`J^{-1}\dot x = (-\dot p, \dot q)` for velocities ``v`` ``(..., 2N)`` in the ``qp`` layout."""
    return torch.cat([-v[..., n_dof:2 * n_dof], v[..., :n_dof]], -1)


def energy_in_span(v: Tensor, err: Tensor | None, Q: Tensor, n_dof: int, scale: Tensor, factor: float = 4.0) -> bool:
    r"""Whether the observed energy gradient already lies in the span ``Q`` (``(M, d, m)``, standardised
    coordinates) of the earlier laws, to the accuracy of the velocities.

    With :math:`g = J^{-1}\dot x` and its error :math:`e = J^{-1}\dot x_{\rm err}` in standardised
    coordinates (times ``scale``), the energy is in the span when the median of
    :math:`\|(I - QQ^\top)g\|^2/\|g\|^2` is at most ``factor`` times the median of :math:`\|e\|^2/\|g\|^2`
    (the library's exactness rule). Without an error estimate (``err`` ``None`` or NaN) the answer is
    ``False``: fitting a start that loses the warm-up costs time, missing the energy costs a law."""
    if Q.shape[-1] == 0 or err is None:
        return False
    g = observed_energy_gradient(v, n_dof) * scale
    g2 = (g * g).sum(-1).clamp_min(1e-300)
    ok = g2 > 0   # float32: the clamp underflows to 0, and points at rest are skipped here
    e = observed_energy_gradient(err, n_dof) * scale
    e2 = (e * e).sum(-1)
    ok = ok & torch.isfinite(e2)
    if not bool(ok.any()):
        return False
    r = span_distance_sq(g[ok] / g2[ok].sqrt().unsqueeze(-1), Q[ok]).double().median()
    r_err = (e2[ok] / g2[ok]).double().median()
    return bool(r <= factor * r_err)


def fit_hamiltonian(model: torch.nn.Module, data: DeflationData, cfg: Any, steps: int) -> list[float]:
    r"""Fit ``model`` (a :class:`~sciml.conservation.model.ConservedQuantity`) to the observed energy gradient:
    ``steps`` Adam steps with the candidates' cosine schedule (``lr`` to ``lr_final``) and batch size on

    .. math:: \frac1B\sum_b \frac{\|\nabla_z H_\theta(x_b) - g_b\|^2}{\|g_b\|^2 + \delta^2 \bar{g^2}},

    gradients in standardised coordinates :math:`z` (so every coordinate counts as in the deflation loss),
    each point relative to its own gradient (the deflation loss is a per-point cosine), guarded by the
    floor :math:`\delta` = ``cfg.floor`` against points at rest. Batches from a generator seeded with
    ``derive_seed(cfg.seed, "conservation", "hamiltonian")``. Returns the loss per step."""
    from .candidate import Gradients   # candidate imports this module

    train, scale = data.train, data.scale
    target = observed_energy_gradient(train.v, data.n_dof) * scale
    t2 = (target * target).sum(-1)
    denom = t2 + cfg.floor ** 2 * t2.mean()
    grads = Gradients(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps), eta_min=cfg.lr_final)
    gen = torch.Generator(device=train.x.device).manual_seed(derive_seed(cfg.seed, "conservation", "hamiltonian"))
    trace = []
    for _ in range(steps):
        idx = torch.randint(0, len(train), (min(cfg.batch_size, len(train)),), generator=gen, device=train.x.device)
        r = grads(train.x[idx]) * scale - target[idx]
        loss = ((r * r).sum(-1) / denom[idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        trace.append(float(loss.detach()))
    return trace


def hamiltonian_state(data: DeflationData, Q_train: Tensor, cfg: Any, build: Any) -> dict[str, Tensor] | None:
    """The fitted network's state dict for a candidate deflated by ``Q_train``, or ``None`` where there is no
    Hamiltonian start (off, data not canonical, or the energy already in the span). Fitted at the first call
    that needs it (the network built by ``build()``, seeded with ``derive_seed(cfg.seed, "conservation",
    "hamiltonian-init")``) and kept in ``data.cache`` for the run's later candidates."""
    if not cfg.hamiltonian_steps or data.n_dof is None or 2 * data.n_dof != data.dim:
        return None
    # the library's points, or as many strided training points
    idx = (data.library.idx if data.library is not None
           else validation_index(len(data.train), cfg.library_points, data.train.x.device))
    err = data.train.err[idx] if data.train.err is not None else None
    if energy_in_span(data.train.v[idx], err, Q_train[idx], data.n_dof, data.scale, cfg.library_exact_factor):
        return None
    if "hamiltonian" not in data.cache:
        rng = torch.get_rng_state()
        torch.manual_seed(derive_seed(cfg.seed, "conservation", "hamiltonian-init"))
        model = build()
        torch.set_rng_state(rng)
        trace = fit_hamiltonian(model, data, cfg, cfg.hamiltonian_steps)
        data.cache["hamiltonian"] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, trace)
    return data.cache["hamiltonian"][0]
