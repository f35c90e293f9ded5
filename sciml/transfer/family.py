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

In code the family is a loss strategy, :class:`FamilyObjective`, given to the ordinary
:class:`~sciml.pinn.solver.Trainer` (``objective=``): points, noise, optimisers, ``chunk_size``,
``torch.compile`` and checkpoints are the trainer's, for one member or K.

A non-finite loss in any member stops the whole family run (the loop sees the sum); lower the
learning rate of ``s`` (``transfer.s_lr``) for members far from the pre-trained one.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.func import vmap

from sciml.pinn.problem import PDEProblem
from sciml.pinn.sampling import Points
from sciml.pinn.solver import Parametrisation, Targets, Trainer, flat_pinn_loss, predict, targets_for

__all__ = ["FamilyObjective", "stack_parametrisation", "family_trainer", "ShardedFamily"]

# the flat loss's arguments: theta, const, t_in, x_in, t_bd, x_bd, x_ic, f, g, h, noise, ab; the
# members differ in theta and in the data f, g, h
_MEMBER_AXES = (0, None, None, None, None, None, None, 0, 0, 0, None, None)


class FamilyObjective:
    """K members of one family on shared points: the loss strategy of a family :class:`Trainer`.

    The members must share the operator, the domain and the time interval, and have no hard-constraint
    ansatz (its lift is each member's own initial data, which a shared ansatz cannot carry).
    """

    def __init__(self, members: Sequence[PDEProblem]):
        if not members:
            raise ValueError("a family needs at least one member")
        m0 = members[0]
        if any(m.domain != m0.domain or m.t_range != m0.t_range for m in members):
            raise ValueError("family members must share the domain and the time interval")
        if any(m.hard is not None for m in members):
            raise ValueError("family members cannot have hard constraints (each member's ansatz is its own)")
        self.members = tuple(members)
        self.k = len(members)
        self.family = True
        self.problem = m0

    def targets(self, pts: Points) -> Targets:
        tgs = [targets_for(m, pts) for m in self.members]
        return Targets(*(torch.stack([getattr(t, f) for t in tgs]) for f in ("f", "g", "h")))

    def flat_loss(self, module: nn.Module, method, build: Callable, *, weights, t_shift, chunk_size) -> Callable:
        """``[sum of the member losses, member means of res, bc, ic]``: the sum, so that each member's
        gradient is its own loss's gradient."""
        one = flat_pinn_loss(module, self.problem, method, build, weights=weights, t_shift=t_shift,
                             chunk_size=chunk_size)
        per_member = vmap(one, in_dims=_MEMBER_AXES)

        def fn(*args):
            out = per_member(*args)  # (K, 4)
            return torch.cat([out[:, :1].sum(0), out[:, 1:].mean(0)])

        return fn

    def predict(self, module: nn.Module, par: Parametrisation, t: Tensor, x: Tensor, *, t_shift: float,
                theta: Mapping[str, Tensor] | None = None) -> Tensor:
        th = par.theta if theta is None else theta
        return vmap(lambda p: predict(module, par.build(p, par.const), t, x, t_shift=t_shift))(th)

    def exact(self, t: Tensor, x: Tensor) -> Tensor:
        return torch.stack([m.exact(t, x) for m in self.members])


def stack_parametrisation(par: Parametrisation, k: int) -> Parametrisation:
    """K copies of ``par``'s trainable tensors stacked on a new leading axis; constants shared."""
    theta = {n: v.detach().unsqueeze(0).repeat(k, *([1] * v.dim())).requires_grad_(True) for n, v in par.theta.items()}
    return Parametrisation(theta, par.const, par.build, par.s_keys, par.nonneg_keys, label=par.label + f"x{k}")


def family_trainer(members: Sequence[PDEProblem], module: nn.Module, par: Parametrisation, cfg: Any,
                   **kwargs: Any) -> Trainer:
    """A :class:`Trainer` of the K ``members`` at once; ``par`` holds stacked tensors
    (:func:`stack_parametrisation`); ``kwargs`` as for the trainer (``device``, ``points``, ``s_optimizer``).

    ``history`` holds ``(step, mean rel_l2, mean rel_l2_sq)`` and ``member_history`` the members' errors.
    """
    from sciml.run import ConfigError

    for n, v in par.theta.items():
        if v.shape[0] != len(members):
            raise ValueError(f"stacked parameter {n!r} has leading size {v.shape[0]}, expected K={len(members)}")
    if cfg.sampling.resample:
        raise ConfigError("sampling.resample", "a family run trains every member on one fixed set of "
                          "collocation points; set it to false")
    return Trainer(members[0], module, par, cfg, objective=FamilyObjective(members), **kwargs)


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
    family :class:`Trainer` (:func:`family_trainer`); members are independent, so no gradient is
    exchanged. Metrics are reduced to the family's (mean loss and error over all K members, largest
    error), so every rank stops together. :meth:`state` gathers the shards into the checkpoint a
    one-process family run of all K members writes (concatenated stacked tensors and optimiser
    moments), and :meth:`load` slices such a checkpoint: a run resumes on any number of ranks, or on
    one process. :meth:`gather` gives rank 0 all K members in one trainer, for the results.

    L-BFGS is refused: its line search couples the members through the summed loss, so sharding would
    change the result.
    """

    def __init__(self, members: Sequence[PDEProblem], module, par: Parametrisation, cfg, *, device, dist,
                 s_optimizer=None):
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
        self.module, self.par, self.cfg, self.device, self.s_optimizer = module, par, cfg, device, s_optimizer
        mine = self.members[self.sl]
        self.local = family_trainer(mine, module, stack_parametrisation(par, len(mine)), cfg, device=device,
                                    s_optimizer=s_optimizer)
        self.counts = dist.split_sizes(self.k)  # members per rank

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

    def gather(self) -> Trainer:
        """All K members in one family trainer on rank 0 (this rank's share elsewhere); a collective call."""
        st = self.state()
        if not self.dist.is_main:
            return self.local
        full = family_trainer(self.members, self.module, stack_parametrisation(self.par, self.k), self.cfg,
                              device=self.device, s_optimizer=self.s_optimizer)
        full.load(st)
        return full
