r"""Many members of a PDE family in one run: parameters stacked, the loss vmapped over them.

Members share the operator, the collocation points and the frozen tensors (the singular vectors U, V
of the SVD transfer); each has its own trainable tensors :math:`\theta_k` and data
:math:`(f_k, g_k, h_k)`. Stacking :math:`\theta_k` along a new leading axis and lifting the per-member
loss with :func:`torch.func.vmap`,

.. math::
    L(\Theta) = \sum_{k=1}^K L_k(\theta_k),\qquad \nabla_{\theta_k} L = \nabla_{\theta_k} L_k,

one backward pass gives every member's own gradient, and because Adam, SGD and the projection
:math:`s \ge 0` act elementwise, one optimiser step on the stacked tensors *is* K independent steps
(the test checks this against K separate trainers). What changes is the cost: the K small networks
run as batched matrix products in one process instead of K processes of small kernels.

A non-finite loss in any member stops the whole family run (the loop sees the sum); lower the
learning rate of ``s`` (``transfer.s_lr``) for members far from the pre-trained one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor
from torch.func import vmap

from sciml.pinn.problem import PDEProblem
from sciml.pinn.solver import Parametrisation, Targets, Trainer, pinn_loss, predict, relative_l2, targets_for

__all__ = ["stack_parametrisation", "FamilyTrainer"]


def stack_parametrisation(par: Parametrisation, k: int) -> Parametrisation:
    """K copies of ``par``'s trainable tensors stacked on a new leading axis; constants shared."""
    theta = {n: v.detach().unsqueeze(0).repeat(k, *([1] * v.dim())).requires_grad_(True) for n, v in par.theta.items()}
    return Parametrisation(theta, par.const, par.build, par.s_keys, par.nonneg_keys, label=par.label + f"x{k}")


@dataclass
class FamilyTrainer(Trainer):
    """Trains K members at once. ``problem`` is the first member; ``members`` lists all K (same operator
    and domain); ``par`` holds stacked tensors (:func:`stack_parametrisation`).

    ``history`` holds ``(step, mean rel_l2, mean rel_l2_sq)``; ``member_history`` the per-member errors.
    """

    members: Sequence[PDEProblem] = ()

    def __post_init__(self):
        if not self.members:
            raise ValueError("FamilyTrainer needs the list of members")
        super().__post_init__()
        k = len(self.members)
        d0 = self.members[0].domain
        if any(m.domain != d0 or m.t_range != self.members[0].t_range for m in self.members):
            raise ValueError("family members must share the domain and the time interval")
        for n, v in self.par.theta.items():
            if v.shape[0] != k:
                raise ValueError(f"stacked parameter {n!r} has leading size {v.shape[0]}, expected K={k}")
        if self.cfg.sampling.resample:
            raise ValueError("the family run uses fixed collocation points (sampling.resample = false)")
        tgs = [targets_for(m, self.points) for m in self.members]
        self.stacked = Targets(*(torch.stack([getattr(t, f) for t in tgs]) for f in ("f", "g", "h")))
        self.test_u = torch.stack([m.exact(self.test.t, self.test.x) for m in self.members]) if self.test else None
        self.member_history: list[tuple[int, list[float]]] = []

    def loss(self, theta=None):
        theta = self.par.theta if theta is None else theta
        noise = None
        if self.method.stochastic:
            noise = self.method.draw(self.points.x_in.shape[0], self.problem.d, generator=self.gen,
                                     device=self.device, dtype=self.points.x_in.dtype)
        par, prob, pts, method = self.par, self.problem, self.points, self.method

        def member(th: Mapping[str, Tensor], f: Tensor, g: Tensor, h: Tensor):
            lo, parts = pinn_loss(self.module, par.build(th, par.const), prob, pts, Targets(f, g, h), method,
                                  weights=self.weights, noise=noise, t_shift=self.t_shift)
            return lo, parts

        losses, parts = vmap(member)(theta, self.stacked.f, self.stacked.g, self.stacked.h)
        # the sum: each member's gradient is its own loss's gradient; report the mean per member
        self._member_losses = losses.detach()
        total = losses.sum()
        return total, {k: v.mean() for k, v in parts.items()}

    @torch.no_grad()
    def member_errors(self) -> tuple[list[float], list[float]]:
        u = vmap(lambda th: predict(self.module, self.par.build(th, self.par.const), self.test.t, self.test.x,
                                    t_shift=self.t_shift))(self.par.theta)
        pairs = [relative_l2(u[k], self.test_u[k]) for k in range(u.shape[0])]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        rel, sq = self.member_errors()
        self._last_members = rel
        return sum(rel) / len(rel), sum(sq) / len(sq)

    def step(self, i: int) -> dict[str, float]:
        out = super().step(i)
        out["loss"] /= len(self.members)  # report the mean member loss (the optimised total is the sum)
        if "rel_l2" in out:
            self.member_history.append((i + 1, list(self._last_members)))
            out["rel_l2_max"] = max(self._last_members)
        return out

    def state(self):
        st = super().state()
        st["member_history"] = list(self.member_history)
        return st

    def load(self, st):
        super().load(st)
        self.member_history = list(st.get("member_history", []))
