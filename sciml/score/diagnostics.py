r"""Measured (not assumed) variance of the NDSM objective with and without control variates.

For a fixed model and fixed pairs :math:`(X_{k-1}, k)` with shared noises :math:`z`, reports

* the variance of the per-sample objective value, :math:`\mathrm{Var}[\ell]` vs :math:`\mathrm{Var}[\ell_{CV}]`;
* the variance of the mini-batch parameter gradient (trace of its covariance, summed over all
  parameters), estimated from independent mini-batches;
* the means of both objectives with a standard error of their difference (the control variates must
  not move the mean).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .objectives import NDSM, ControlVariates

__all__ = ["ndsm_variance"]


def ndsm_variance(ndsm: NDSM, model: nn.Module, x_prev: Tensor, k: Tensor, *, grad_batch: int = 32,
                  n_grad_batches: int = 40, generator: torch.Generator | None = None,
                  second_order: bool = False) -> dict[str, float]:
    """Variance of the NDSM objective and of its gradient, plain vs with control variates.

    Args:
        ndsm: the objective; its coefficients are used if it has control variates, else fixed unit
            coefficients (with the second-order term if ``second_order``).
        model: the score model (its parameters are not changed).
        x_prev, k: pairs drawn from a :class:`~sciml.score.objectives.PathBank`.
        grad_batch, n_grad_batches: gradient variance from this many disjoint mini-batches of this size
            (taken from the first ``grad_batch * n_grad_batches`` pairs).

    Returns:
        dict with ``value_var_plain``, ``value_var_cv``, ``value_factor``, ``grad_var_plain``,
        ``grad_var_cv``, ``grad_factor``, ``mean_plain``, ``mean_cv``, ``mean_diff_se``.
    """
    cv_obj = ndsm if ndsm.cv is not None else NDSM(ndsm.sde, n_steps=ndsm.n_steps, weighting=ndsm.weighting,
                                                   control_variates=ControlVariates(learn=False, second_order=second_order).to(x_prev.device))
    z = torch.randn(x_prev.shape, generator=generator, device=x_prev.device, dtype=x_prev.dtype)
    with torch.no_grad():
        terms = cv_obj.terms(model, x_prev, k, z)
        ell_cv, _ = cv_obj.combine(terms)
    n = x_prev.shape[0]
    diff = terms.raw - ell_cv
    out = {"value_var_plain": float(terms.raw.var()), "value_var_cv": float(ell_cv.var()),
           "mean_plain": float(terms.raw.mean()), "mean_cv": float(ell_cv.mean()),
           "mean_diff_se": float(diff.std() / math.sqrt(n))}
    out["value_factor"] = out["value_var_plain"] / max(out["value_var_cv"], 1e-300)
    params = [p for p in model.parameters() if p.requires_grad]
    nb = min(n_grad_batches, n // grad_batch)
    grads: dict[bool, list[Tensor]] = {False: [], True: []}
    for b in range(nb):
        sl = slice(b * grad_batch, (b + 1) * grad_batch)
        t = cv_obj.terms(model, x_prev[sl], k[sl], z[sl])
        ell, _ = cv_obj.combine(t)
        for use_cv, val in ((False, t.raw), (True, ell)):
            g = torch.autograd.grad(val.mean(), params, retain_graph=not use_cv)
            grads[use_cv].append(torch.cat([q.reshape(-1) for q in g]))
    var = {c: float(torch.stack(v).var(0).sum()) for c, v in grads.items()}
    out.update(grad_var_plain=var[False], grad_var_cv=var[True], grad_factor=var[False] / max(var[True], 1e-300))
    return out
