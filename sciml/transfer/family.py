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

__all__ = ["stack_parametrisation", "FamilyTrainer", "ShardedFamily"]


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
            from sciml.run import ConfigError

            raise ConfigError("sampling.resample", "a family run trains every member on one fixed set of "
                              "collocation points; set it to false")
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


# ----------------------------------------------------------------------------------------------------
def _cat_opt_states(sds: Sequence[dict]) -> dict:
    """Optimiser state dicts of member shards -> one dict: per-parameter tensors with a leading member
    axis are concatenated, scalars (Adam's step count, equal on every shard) taken from the first."""
    out = {"param_groups": sds[0]["param_groups"], "state": {}}
    for idx, st in sds[0]["state"].items():
        out["state"][idx] = {k: torch.cat([sd["state"][idx][k] for sd in sds]) if isinstance(v, Tensor) and v.dim()
                             else v for k, v in st.items()}
    return out


def _slice_opt_state(sd: dict, sl: slice) -> dict:
    return {"param_groups": sd["param_groups"],
            "state": {idx: {k: v[sl] if isinstance(v, Tensor) and v.dim() else v for k, v in st.items()}
                      for idx, st in sd["state"].items()}}


class ShardedFamily:
    """A family run with its K members spread over the ranks of a ``torchrun`` launch.

    Each rank trains its contiguous share of the members (:meth:`DistContext.split_slice`) as one
    vmapped :class:`FamilyTrainer`; members are independent, so no gradient is exchanged. Metrics are
    reduced to the family's (mean loss and error over all K members, largest error), so every rank
    stops together. :meth:`state` gathers the shards into the checkpoint a one-process family run of
    all K members writes (concatenated stacked tensors and optimiser moments), and :meth:`load`
    slices such a checkpoint: a run resumes on any number of ranks, or on one process. At the end
    rank 0 holds all K members in :attr:`full` (a one-process :class:`FamilyTrainer`) for the results.

    L-BFGS is refused: its line search couples the members through the summed loss, so sharding would
    change the result.
    """

    def __init__(self, members: Sequence[PDEProblem], module, par: Parametrisation, cfg, *, device, dist):
        from sciml.run import ConfigError

        if cfg.optim.lbfgs_iters:
            raise ConfigError("optim.lbfgs_iters", "L-BFGS couples the members of a family run through its line "
                              "search, so a family cannot be sharded over processes with it; set it to 0 "
                              "or run the family as one process")
        try:
            self.sl = dist.split_slice(len(members), "family members (transfer.targets)")
        except ValueError as e:
            raise ConfigError("transfer.targets", str(e)) from None
        self.members, self.dist, self.k = list(members), dist, len(members)
        self.module, self.par, self.cfg, self.device = module, par, cfg, device
        mine = self.members[self.sl]
        self.local = FamilyTrainer(mine[0], module, stack_parametrisation(par, len(mine)), cfg, device=device,
                                   members=mine)
        self.counts = dist.split_sizes(self.k)  # members per rank
        self.full: FamilyTrainer | None = None

    @property
    def n_steps(self) -> int:
        return self.local.n_steps

    def step(self, i: int) -> dict[str, float]:
        out = self.local.step(i)
        n = len(self.local.members)
        big = out.pop("rel_l2_max", None)
        res = {k: v / self.k for k, v in self.dist.all_reduce({k: v * n for k, v in out.items()}).items()}
        if big is not None:
            res["rel_l2_max"] = self.dist.all_reduce({"m": big}, op="max")["m"]
        return res

    def state(self) -> dict | None:
        """The whole family's checkpoint on rank 0 (``None`` elsewhere); a collective call."""
        states = self.dist.gather_objects({k: (v.cpu() if isinstance(v, Tensor) else v)
                                           for k, v in self.local.state().items()})
        if states is None:
            return None
        w = self.counts
        st = dict(states[0])
        st["theta"] = {n: torch.cat([s["theta"][n].cpu() for s in states]) for n in st["theta"]}
        st["opts"] = [_cat_opt_states([s["opts"][j] for s in states]) for j in range(len(st["opts"]))]
        st["member_history"] = [(step, [e for s in states for e in s["member_history"][r][1]])
                                for r, (step, _) in enumerate(st["member_history"])]
        st["history"] = [(step, *(sum(s["history"][r][c] * n for s, n in zip(states, w)) / self.k for c in (1, 2)))
                         for r, (step, *_) in enumerate(st["history"])]
        st["train_seconds"] = max(s["train_seconds"] for s in states)
        return st

    def load(self, st: Mapping) -> None:
        sl = self.sl
        mine = dict(st)
        mine["theta"] = {n: v[sl] for n, v in st["theta"].items()}
        mine["opts"] = [_slice_opt_state(sd, sl) for sd in st["opts"]]
        mine["member_history"] = [(step, list(e[sl])) for step, e in st.get("member_history", [])]
        self.local.load(mine)

    def fit(self, run=None, *, resume: bool = False, stop_at: int | None = None, desc: str = "family"):
        from sciml.run import train_loop

        res = train_loop(self.step, self.n_steps, run=run, state=self.state, load=self.load, resume=resume,
                         log_every=self.cfg.log_every, checkpoint_every=self.cfg.checkpoint_every,
                         desc=desc, stop_at=stop_at, dist=self.dist)
        st = self.state()
        if self.dist.is_main:  # all K members in one trainer, for the results and the plots
            self.full = FamilyTrainer(self.members[0], self.module, stack_parametrisation(self.par, self.k), self.cfg,
                                      device=self.device, members=self.members)
            self.full.load(st)
            res.extra["train_seconds"] = self.full.train_seconds
            res.extra["n_trainable"] = self.full.par.n_trainable
        return res
