r"""One candidate :math:`H_k` of a discovery: its initialisations, one training step, its held-out evaluation.

A :class:`Candidate` holds everything of :math:`H_k` while it trains: one :class:`Init` per initialisation
(network, optimiser, cosine schedule, training losses; all of them through the warm-up, the best one after
it), the batch generator, the polynomial start's solution, the step counter and the patience rule's
validation history, with :meth:`Candidate.state` / :meth:`Candidate.from_state` for checkpoints.

How long a candidate trains (the patience rule, ``DiscoveryConfig.patience``): the cosine decay's ``steps``
always run; every ``eval_every`` steps after the warm-up the median loss on a fixed subset of the
held-out points (:func:`validation_loss`) is measured, and after ``steps`` the candidate trains on at
``lr_final`` until ``patience`` evaluations in a row have not lowered it by ``patience_factor``, or to
the cap (:func:`max_candidate_steps`). :func:`lbfgs_finish` is the optional second-order finish.
:func:`evaluate` turns the trained candidate into a :class:`LawFit` (held-out statistics); :class:`Spans`
keeps the frozen candidates' gradients that deflate the next ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..autodiff import batch, gradient, point_function
from .checks import constancy
from .count import EXACT_START
from .data import DeflationData, PointSet, validation_index
from .hamiltonian import hamiltonian_state
from .library import LibraryFit, library_fit, monomial_factor_derivatives
from .losses import deflation_factor, orthonormal_span, point_loss, value_spread
from .model import ConservedQuantity, LearnedInvariant, input_scaling, input_whitening

__all__ = ["CandidateSeeds", "candidate_seeds", "Gradients", "head_gradient", "Spans", "Init", "Candidate", "LawFit",
           "start_candidate", "new_network", "evaluate", "loss_statistics", "lbfgs_finish", "lm_finish",
           "max_candidate_steps", "validation_loss"]


@dataclass(frozen=True)
class CandidateSeeds:
    """The seeds of a discovery's random streams (:func:`candidate_seeds`)."""

    data: int
    batches: int
    inits: tuple[int, ...]


def candidate_seeds(seed: int, k: int, restarts: int) -> CandidateSeeds:
    r"""Every seed of a discovery with run seed ``seed``, for candidate ``k`` (1-based) with ``restarts``
    random initialisations.

    * ``data``: one generator seeded with ``seed`` draws, in this order, the train / held-out split of the
      trajectories, the training-point subset, the held-out subset and the polynomial start's points
      (:func:`~sciml.conservation.data.prepare_data`);
    * ``batches``: ``seed * 7919 + k`` seeds candidate ``k``'s batch generator;
    * ``inits``: ``seed * 1000 + 31 k + r`` seeds the global torch RNG before the ``r``-th network of
      candidate ``k`` is built, ``r = 0..restarts`` (the last one: the polynomial start's network).

    These are arithmetic, not :func:`sciml.run.derive_seed`, on purpose: the published tables
    (``docs/conservation.md``, ``docs/results/deflation_*``) were computed with exactly these streams, and
    their smallest margins (0.00-0.24 decades) would move with any other. (The price: streams of
    different run seeds can coincide, e.g. seed 0's candidate 32 and seed 1's candidate 0 share
    ``inits[8] = 1000``.)
    """
    return CandidateSeeds(int(seed), int(seed) * 7919 + k,
                          tuple(int(seed) * 1000 + 31 * k + r for r in range(restarts + 1)))


class Gradients:
    r"""State gradients of a module at many points, by the autodiff core (vmap of reverse mode).

    A polynomial head (monomials only, no atom terms) is differentiated in closed form instead:
    :math:`\nabla_x (c^\top\phi(z)) = \sigma^{-1} T\,(\partial\phi/\partial w)^\top c` with the monomials'
    derivatives as prefix-times-suffix products of their factors (:func:`~sciml.conservation.library.monomial_factor_derivatives`,
    computed from the data alone, so no gradient flows through them), accumulated straight into the
    :math:`d` coordinates: linear in :math:`c`, so the parameter gradient is a gather. Autodiff through the
    head's products under vmap and a second backward cost 8.8x a plain MLP step at d = 10 (285 cubic
    monomials), the closed form 2.2x (measured on one core of an Intel Xeon)."""

    def __init__(self, module: ConservedQuantity):
        self.module = module
        poly = getattr(module, "poly", None)
        self.closed_head = poly is not None and poly.atom_of.shape[0] == 0
        self.f = point_function(module.net if self.closed_head else module)
        self.op = batch(gradient(self.f))
        self.op_chunked = batch(gradient(self.f), chunk_size=8192)

    def params(self, detach: bool = False) -> dict[str, Tensor]:
        m = self.module.net if self.closed_head else self.module
        p = {**dict(m.named_parameters()), **dict(m.named_buffers())}
        return {k: v.detach() for k, v in p.items()} if detach else p

    def _split(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The MLP's gradient by autodiff plus the head's in closed form."""
        m = self.module
        u = (x - m.input_shift) / m.input_scale
        T = m.input_matrix
        if T is None:
            g = self.op(params, u)
        else:   # whitened inputs: the MLP sees v = u T, so grad_u = T grad_v (chain rule, row vectors)
            g = self.op(params, u @ T) @ T.T
        return g / m.input_scale + head_gradient(m.poly, m.coef[:, 0], (x - m.shift) / m.scale) / m.scale

    def __call__(self, x: Tensor) -> Tensor:
        if self.closed_head:
            return self._split(x, self.params())
        return self.op(self.params(), x)

    def frozen(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            if self.closed_head:
                return torch.cat([self._split(x[s:s + 8192], self.params(detach=True))
                                  for s in range(0, len(x), 8192)]) if len(x) else x.new_zeros(x.shape)
            return self.op_chunked(self.params(detach=True), x)


def head_gradient(poly: Any, coef: Tensor, z: Tensor) -> Tensor:
    r""":math:`\nabla_z\, c^\top\phi(z)` ``(n, d)`` for a monomial head ``poly`` (a
    :class:`~sciml.conservation.library.MonomialFeatures` without atom terms) and coefficients ``coef``
    ``(F,)``; differentiable in ``coef`` only."""
    T = poly.transform.to(z.dtype)
    we = torch.cat([torch.ones_like(z[..., :1]), z @ T], -1)
    gw = we.new_zeros(we.shape)
    for l, P in enumerate(monomial_factor_derivatives(we.detach(), poly.index)):   # (n, F) each, no gradient
        gw = gw.index_add(1, poly.index[:, l], P * coef)
    return gw[:, 1:] @ T.T


def _unit(g: Tensor) -> Tensor:
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)


class Spans:
    r"""Per-point orthonormal bases :math:`Q` of the frozen candidates' standardised gradients, at the
    training and held-out points, and (involution) their unit original-coordinate gradients."""

    def __init__(self, data: DeflationData, involution: bool):
        self.scale, self.involution = data.scale, involution
        self.Q_train = data.train.x.new_zeros(len(data.train), data.dim, 0)
        self.Q_test = data.test.x.new_zeros(len(data.test), data.dim, 0)
        self._gz: tuple[list[Tensor], list[Tensor]] = ([], [])
        self._gx: tuple[list[Tensor], list[Tensor]] = ([], [])
        self.prev_train: Tensor | None = None   # stacked unit gradients (involution brackets)
        self.prev_test: Tensor | None = None

    def add(self, g_train: Tensor, g_test: Tensor) -> None:
        """Freeze one more candidate, from its state gradients at the training and held-out points."""
        self._gz[0].append(g_train * self.scale)
        self._gz[1].append(g_test * self.scale)
        self.Q_train = orthonormal_span(torch.stack(self._gz[0], -1))
        self.Q_test = orthonormal_span(torch.stack(self._gz[1], -1))
        if self.involution:
            self._gx[0].append(_unit(g_train))
            self._gx[1].append(_unit(g_test))
            self.prev_train, self.prev_test = torch.stack(self._gx[0], 1), torch.stack(self._gx[1], 1)


@dataclass
class Init:
    """One initialisation of a candidate: its network, optimiser, cosine schedule and training losses.

    Attributes:
        label: ``"random r"`` or ``"polynomial"`` (the polynomial start).
    """

    label: str
    model: ConservedQuantity
    opt: torch.optim.Adam
    sched: torch.optim.lr_scheduler.CosineAnnealingLR
    history: list[float] = field(default_factory=list)
    grads: Gradients = field(init=False)

    def __post_init__(self) -> None:
        self.grads = Gradients(self.model)

    @classmethod
    def new(cls, label: str, model: ConservedQuantity, cfg: Any, lr: float | None = None) -> "Init":
        """A fresh Adam and cosine decay from ``lr`` (default ``cfg.lr``) to ``cfg.lr_final`` over ``cfg.steps``."""
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr if lr is None else lr)
        return cls(label, model, opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps, eta_min=cfg.lr_final))

    def state(self) -> dict[str, Any]:
        return {"label": self.label, "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "sched": self.sched.state_dict(), "history": list(self.history)}


def new_network(data: DeflationData, cfg: Any, device: torch.device, dtype: torch.dtype,
                coef: Tensor | None = None) -> ConservedQuantity:
    """A candidate network (with a polynomial head when ``coef`` is given), initialised from the global
    torch RNG; its MLP's inputs scaled by :func:`~sciml.conservation.model.input_scaling` (``network.inputs``)
    from the training states."""
    net = cfg.network
    poly = None
    if coef is not None:
        lib = data.library
        poly = lib.features.leading(len(coef)).cpu()   # the stage's leading block of the library
    a, s = input_scaling(data.train.x, data.shift, data.scale, net.inputs)
    T = input_whitening(data.train.x, data.shift, data.scale, net.inputs)
    m = ConservedQuantity(data.dim, data.shift, data.scale, net.width, net.depth, net.activation, poly=poly,
                          coef=coef, raw_inputs=net.inputs == "raw", input_shift=a, input_scale=s, input_matrix=T)
    return m.to(device, dtype)


@dataclass
class Candidate:
    r"""Candidate :math:`H_k` while it trains (see the module docstring).

    Attributes:
        index: ``k`` (1-based).
        inits: the initialisations still training (all in the warm-up, the chosen one after it).
        generator: the batch generator.
        n_steps: the most training steps (``cfg.steps``, or ``cfg.max_steps`` with patience; 0 for an exact
            polynomial, taken as it is).
        n_warm: warm-up steps (all initialisations train; the lowest recent training loss continues).
        library: the polynomial start's solution (``None``: off).
        step: training steps done.
        history: per step, the lowest training loss among the initialisations that trained.
        seconds: wall-clock seconds spent on this candidate (resumed sessions included).
        val_best: the patience rule's best validation loss; val_since: evaluations since it improved.
        val_history: ``(step, validation loss)`` of every evaluation.
        stopped: the patience rule ended the training before ``n_steps``.
        cosine_end: the step the running cosine decay ends at (0: ``cfg.steps``; later by
            :meth:`_restart_cosine`).
    """

    index: int
    inits: list[Init]
    generator: torch.Generator
    n_steps: int
    n_warm: int
    library: LibraryFit | None = None
    step: int = 0
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    val_best: float = math.inf
    val_since: int = 0
    val_history: list[tuple[int, float]] = field(default_factory=list)
    stopped: bool = False
    cosine_end: int = 0

    @property
    def exact(self) -> bool:
        return self.library is not None and self.library.exact

    @property
    def finished(self) -> bool:
        """Trained: it has had its ``n_steps``, or the patience rule stopped it."""
        return self.stopped or self.step >= self.n_steps

    @property
    def start(self) -> str:
        """How the trained network started (``stats["start"]``)."""
        return EXACT_START if self.exact else self.inits[0].label

    def train_step(self, data: DeflationData, spans: Spans, cfg: Any) -> tuple[float, float]:
        """One Adam step of every initialisation still training, on one batch; ``(loss, mean |grad_z H|^2)``
        of the best. The last warm-up step keeps the initialisation with the lowest median training loss
        over the last fifth of the warm-up."""
        if cfg.value_weight > 0:  # windows: `window` snapshots from each of batch_size // window trajectories
            idx = data.windows.sample(max(1, cfg.batch_size // cfg.window), cfg.window, self.generator)
        else:
            idx = torch.randint(0, len(data.train), (min(cfg.batch_size, len(data.train)),), generator=self.generator,
                                device=data.train.x.device)
        if self.step < self.n_warm:
            out = [_adam_step(c, data, spans, cfg, idx) for c in self.inits]
            if self.step == self.n_warm - 1:
                w = max(1, self.n_warm // 5)
                self.inits = [self.inits[int(np.argmin([float(np.median(c.history[-w:])) for c in self.inits]))]]
            lv, rv = min(out)
        else:
            lv, rv = _adam_step(self.inits[0], data, spans, cfg, idx)
        self.history.append(lv)
        self.step += 1
        if cfg.patience and self.step > self.n_warm and ((self.step - self.n_warm) % cfg.eval_every == 0
                                                         or self.step == self.cosine_stop(cfg)):
            self._patience(*validation_loss(self.inits[0], data, spans, cfg, floor=True), cfg)
        return lv, rv

    def cosine_stop(self, cfg: Any) -> int:
        """The step the running cosine decay ends at (``cfg.steps`` until a restart moves it)."""
        return self.cosine_end or cfg.steps

    def _patience(self, loss: float, floor: float, cfg: Any) -> None:
        r"""The patience rule: an evaluation improves when the validation loss falls below
        ``val_best / patience_factor``; once the cosine decay is over (``steps``), training stops at the first
        evaluation that ends ``patience`` evaluations without one. (Not earlier: at a high learning rate the
        loss is noisy and a stop leaves the candidate far above its floor, docs/conservation.md.) At the
        end of a cosine a candidate far above its floor whose loss still falls gets another one
        (:meth:`_restart_cosine`). ``floor``: the validation points' floor loss."""
        self.val_history.append((self.step, loss))
        if loss < self.val_best / cfg.patience_factor:
            self.val_best, self.val_since = loss, 0
        else:
            self.val_since += 1
        if self.step == self.cosine_stop(cfg):
            self._restart_cosine(loss, floor, cfg)
        self.stopped = self.val_since >= cfg.patience and self.step >= self.cosine_stop(cfg)

    def _restart_cosine(self, loss: float, floor: float, cfg: Any) -> bool:
        r"""At the end of a cosine: start another one (``steps`` steps from ``lr`` down to ``lr_final``, Adam's
        moments kept) when the candidate is not yet within the count's bar of its floor
        (:math:`L > 10^{D} F` on the validation points, ``floor_decades``), its best validation loss of the
        cosine's second half is ``restart_factor`` times below the best of its first half (it was still
        learning while the learning rate was high), and another cosine fits under the cap ``n_steps``. A
        hard candidate (the Morse energy) needs more steps at a high learning rate, not more at
        ``lr_final``; one at its floor, or stalled, takes none. ``restart_factor = 0``: never."""
        end = self.cosine_stop(cfg)
        mid = end - cfg.steps + cfg.steps // 2
        first = [v for s, v in self.val_history if end - cfg.steps < s <= mid]
        second = [v for s, v in self.val_history if mid < s <= end]
        if (not cfg.restart_factor or loss <= 10 ** cfg.floor_decades * floor or end + cfg.steps > self.n_steps
                or not first or not second or min(first) < cfg.restart_factor * min(second)):
            return False
        self.cosine_end, self.val_since = end + cfg.steps, 0
        for c in self.inits:
            c.sched.last_epoch = 0   # the recursive cosine restarts from the group's lr
            for g in c.opt.param_groups:
                g["lr"] = cfg.lr
        return True

    def state(self) -> dict[str, Any]:
        return {"index": self.index, "inits": [c.state() for c in self.inits],
                "generator": self.generator.get_state(), "n_steps": self.n_steps, "n_warm": self.n_warm,
                "library": asdict(self.library) if self.library is not None else None, "step": self.step,
                "history": list(self.history), "seconds": self.seconds, "val_best": self.val_best,
                "val_since": self.val_since, "val_history": list(self.val_history), "stopped": self.stopped,
                "cosine_end": self.cosine_end}

    @classmethod
    def from_state(cls, st: Mapping[str, Any], data: DeflationData, cfg: Any, device: torch.device,
                   dtype: torch.dtype) -> "Candidate":
        """The candidate of :meth:`state`. Builds networks (drawing from the global torch RNG: restore it
        afterwards)."""
        lib = LibraryFit(**st["library"]) if st["library"] is not None else None
        inits = []
        for s in st["inits"]:
            coef = lib.head_coef if s["label"] == "polynomial" else None
            c = Init.new(s["label"], new_network(data, cfg, device, dtype, coef), cfg)
            c.model.load_state_dict(s["model"])
            c.opt.load_state_dict(s["opt"])
            c.sched.load_state_dict(s["sched"])
            c.history = list(s["history"])
            inits.append(c)
        gen = torch.Generator(device=device)
        gen.set_state(st["generator"])
        return cls(st["index"], inits, gen, st["n_steps"], st["n_warm"], lib, st["step"], list(st["history"]),
                   st["seconds"], st["val_best"], st["val_since"], [tuple(v) for v in st["val_history"]], st["stopped"],
                   st.get("cosine_end", 0))


def start_candidate(k: int, data: DeflationData, spans: Spans, cfg: Any, device: torch.device,
                    dtype: torch.dtype) -> Candidate:
    """Candidate ``k``: the library start's solution (polynomials, then atom terms:
    :func:`~sciml.conservation.library.library_fit`), then ``restarts`` random networks, one starting at
    the library's solution and, on canonical data while the energy is not in the span of the earlier laws, one
    fitted to the observed energy gradient (:mod:`~sciml.conservation.hamiltonian`); an exact library integral (ratio at the finite-difference noise) is a global optimum
    of the loss up to its floor, so it is taken as it is, alone and with no training steps (training would
    only trade conservation for independence from the earlier laws)."""
    seeds = candidate_seeds(cfg.seed, k, cfg.restarts)
    gen = torch.Generator(device=device).manual_seed(seeds.batches)
    lib = data.library
    fit = (library_fit(lib.features, lib.z, lib.v, spans.Q_train[lib.idx], v_err=lib.err,
                       exact_factor=cfg.library_exact_factor, cache=lib.cache,
                       head_features=cfg.library_head_features, check=lib.check,
                       max_deflation=10 ** cfg.independence_decades, deflation_eps=cfg.deflation_eps)
           if lib is not None else None)
    exact = fit is not None and fit.exact
    inits = []
    for r in range(0 if exact else cfg.restarts):
        torch.manual_seed(seeds.inits[r])
        inits.append(Init.new(f"random {r}", new_network(data, cfg, device, dtype), cfg))
    if fit is not None:
        torch.manual_seed(seeds.inits[cfg.restarts])
        inits.append(Init.new("polynomial", new_network(data, cfg, device, dtype, fit.head_coef), cfg))
    ham = None if exact else hamiltonian_state(data, spans.Q_train, cfg, lambda: new_network(data, cfg, device, dtype))
    if ham is not None:
        net = new_network(data, cfg, device, dtype)
        net.load_state_dict(ham)
        # a fitted solution is refined, not retrained: at cfg.lr Adam's first steps throw it out of the
        # energy's narrow basin (Yukawa: median loss 2e-4 -> 3e-3 in the warm-up, and the warm-up lost)
        inits.append(Init.new("hamiltonian", net, cfg, lr=cfg.hamiltonian_lr))
    n_warm = int(cfg.warmup_fraction * cfg.steps) if len(inits) > 1 else 0
    return Candidate(k, inits, gen, 0 if exact else max_candidate_steps(cfg), n_warm, fit)


def max_candidate_steps(cfg: Any) -> int:
    """The most steps a trained candidate takes: ``steps``, or with patience ``max_steps`` (0: twice ``steps``),
    at least ``steps``."""
    return max(cfg.steps, cfg.max_steps or 2 * cfg.steps) if cfg.patience else cfg.steps


@torch.no_grad()
def validation_loss(init: Init, data: DeflationData, spans: Spans, cfg: Any, floor: bool = False
                    ) -> float | tuple[float, float]:
    """The median per-point loss of an initialisation on the validation subset of the held-out points (the
    patience rule's measure: the statistic the count uses, on ``val_points`` points); with ``floor``, also
    its floor there (``floor_loss``, :func:`_floor_geometry`)."""
    idx = validation_index(len(data.test), cfg.val_points, data.test.x.device)
    pts = PointSet(data.test.x[idx], data.test.v[idx], data.test.traj[idx])
    prev = None if spans.prev_test is None else spans.prev_test[idx]
    gx = init.grads.frozen(pts.x)
    loss = float(_point_losses(gx, pts, spans.Q_test[idx], prev, cfg, data.n_dof, data.scale).double().median())
    return (loss, _floor_geometry(gx, spans.Q_test[idx], cfg, data.scale)["floor_loss"]) if floor else loss


def _adam_step(c: Init, data: DeflationData, spans: Spans, cfg: Any, idx: Tensor) -> tuple[float, float]:
    """One step of one initialisation: the batch mean of the per-point loss (or of its log), plus the
    optional value term; ``(batch mean loss, mean |grad_z H|^2)``."""
    train, scale = data.train, data.scale
    gx = c.grads(train.x[idx])
    gz = gx * scale
    prev = None if spans.prev_train is None else spans.prev_train[idx]
    pl = point_loss(gz, train.v[idx] / scale, spans.Q_train[idx], alpha=cfg.alpha, floor=cfg.floor,
                    eps=cfg.deflation_eps, prev_unit_x=prev, g_x=gx, n_dof=data.n_dof,
                    bracket_weight=cfg.bracket_weight)
    loss = pl.mean()
    obj = torch.log(pl).mean() if cfg.objective == "log" else loss
    if cfg.value_weight > 0:
        vs = value_spread(c.model(train.x[idx]).reshape(-1, cfg.window), gz, spans.Q_train[idx])
        obj = obj + cfg.value_weight * (torch.log(vs + 1e-12) if cfg.objective == "log" else vs)
    c.opt.zero_grad(set_to_none=True)
    obj.backward()
    c.opt.step()
    if c.sched.last_epoch < c.sched.T_max:  # past `steps` (patience): stay at lr_final
        c.sched.step()
    c.history.append(float(loss.detach()))
    return c.history[-1], float((gz.detach() ** 2).sum(-1).mean())


def lbfgs_finish(c: Init, data: DeflationData, spans: Spans, cfg: Any, iters: int, points: int = 8192) -> list[float]:
    r"""A second-order finish: ``iters`` L-BFGS iterations (strong Wolfe line search) on the candidate's
    objective, the mean of :math:`\log\ell_k` over a fixed strided subset of ``points`` training points
    (full batch: no sampling noise, so curvature pairs are consistent). Deterministic (no random draw), so
    it runs inside one driver step; ``DiscoveryConfig.finish_steps``. Returns the objective at every
    function evaluation."""
    idx = validation_index(len(data.train), points, data.train.x.device)   # the same fixed strides
    x, v, Q = data.train.x[idx], data.train.v[idx] / data.scale, spans.Q_train[idx]
    prev = None if spans.prev_train is None else spans.prev_train[idx]
    opt = torch.optim.LBFGS(c.model.parameters(), lr=1.0, max_iter=iters, history_size=50,
                            line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
    trace: list[float] = []

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        gx = c.grads(x)
        pl = point_loss(gx * data.scale, v, Q, alpha=cfg.alpha, floor=cfg.floor, eps=cfg.deflation_eps,
                        prev_unit_x=prev, g_x=gx, n_dof=data.n_dof, bracket_weight=cfg.bracket_weight)
        obj = torch.log(pl).mean()
        obj.backward()
        trace.append(float(obj.detach()))
        return obj

    opt.step(closure)
    return trace


def lm_finish(c: Init, data: DeflationData, spans: Spans, cfg: Any, iters: int, points: int = 1024,
              seed: int = 0) -> list[float]:
    r"""A Levenberg-Marquardt finish of the mean :math:`\log\ell_k` (``DiscoveryConfig.finish = "lm"``).

    Each step draws ``points`` training points (a generator seeded by ``seed``: deterministic, so it runs
    inside one driver step) and takes the damped Gauss-Newton step of
    :math:`\sum_i \ell_i(\theta)/\ell_i(\theta_0)`, whose residuals :math:`r_i = (\ell_i/\ell_i(\theta_0))^{1/2}`
    are 1 at the step's start: to first order the same decrease as :math:`\sum_i\log\ell_i` (the weights
    :math:`1/\ell_i(\theta_0)` of iteratively reweighted least squares), with the floor's :math:`m` held at
    its value at :math:`\theta_0`. The per-point Jacobian over every parameter of the candidate comes from
    ``vmap`` of ``jacrev`` of the per-point loss; :meth:`sciml.pinn.gauss_newton.LevenbergMarquardt.attempt`
    solves, tries and damps the step, as for a PINN. Returns the batch's mean :math:`\log\ell` before each step."""
    from torch.func import functional_call, grad, jacrev, vmap

    from sciml.pinn.gauss_newton import LevenbergMarquardt, unflatten

    model = c.model
    buffers = dict(model.named_buffers())
    scale = data.scale
    gen = torch.Generator(device=data.train.x.device).manual_seed(int(seed))

    def h(params, x):
        return functional_call(model, {**buffers, **params}, (x[None],)).reshape(())

    def loss_point(params, x, v, Q, prev, m0):
        gx = grad(h, argnums=1)(params, x)
        return point_loss((gx * scale)[None], v[None], Q[None], alpha=cfg.alpha, floor=cfg.floor,
                          eps=cfg.deflation_eps, prev_unit_x=None if prev is None else prev[None], g_x=gx[None],
                          n_dof=data.n_dof, bracket_weight=cfg.bracket_weight, m=m0)[0]

    lm, trace = LevenbergMarquardt(damping=1e-3), []
    for _ in range(iters):
        idx = torch.randperm(len(data.train), generator=gen, device=data.train.x.device)[:points]
        x, v, Q = data.train.x[idx], data.train.v[idx] / scale, spans.Q_train[idx]
        prev = None if spans.prev_train is None else spans.prev_train[idx]
        theta = {k: p.detach().clone() for k, p in model.named_parameters()}
        with torch.no_grad():
            gx0 = c.grads.frozen(x)
            m0 = ((gx0 * scale) ** 2).sum(-1).mean()
        in_dims = (None, 0, 0, 0, None if prev is None else 0, None)

        def resid(params, x, v, Q, prev, m0, l0):
            val = torch.sqrt(loss_point(params, x, v, Q, prev, m0) / l0)
            return val, val

        l0 = vmap(loss_point, in_dims=in_dims)(theta, x, v, Q, prev, m0).detach()
        trace.append(float(torch.log(l0).mean()))
        jac, r = vmap(jacrev(resid, has_aux=True), in_dims=(*in_dims, 0))(theta, x, v, Q, prev, m0, l0)
        J = torch.cat([jac[k].reshape(len(idx), -1) for k in theta], 1).detach()
        r = r.detach()
        tried: dict[str, Tensor] = {}

        def trial(delta: Tensor) -> float:  # the model itself changes only when a try is accepted
            tried.update({k: theta[k] + d for k, d in unflatten(delta.to(r.dtype), theta).items()})
            r1 = torch.sqrt(vmap(loss_point, in_dims=in_dims)(tried, x, v, Q, prev, m0) / l0).detach()
            return float(r1.double() @ r1.double())

        if lm.attempt(r, J, float(r.double() @ r.double()), trial, undo=lambda: None) is not None:
            with torch.no_grad():
                for k, p in model.named_parameters():
                    p.copy_(tried[k])
    return trace


@dataclass
class LawFit:
    """One trained candidate: held-out loss (the chosen statistic), training loss, all held-out statistics
    (``start``: how it started; ``constancy``, ``floor_loss``, ``deflation``, ``library_*``, ...), seconds,
    and the training history (per step, the best initialisation's batch loss)."""

    index: int
    loss: float
    train_loss: float
    stats: dict[str, Any]
    seconds: float
    history: list[float]

    @property
    def median_loss(self) -> float:
        return self.stats["median"]


def loss_statistics(pl: Tensor) -> dict[str, float]:
    """Summaries of per-point losses: mean, median, geometric mean, 10%-trimmed mean (top tail cut)."""
    pl = pl.double()
    q90 = torch.quantile(pl[: 200_000], 0.9)
    return {"mean": float(pl.mean()), "median": float(pl.median()),
            "geomean": float(torch.exp(torch.log(pl.clamp_min(1e-300)).mean())),
            "trimmed": float(pl[pl <= q90].mean())}


def _point_losses(gx: Tensor, pts: PointSet, Q: Tensor, prev_x: Tensor | None, cfg: Any, n_dof: int | None,
                  scale: Tensor, chunk: int = 8192) -> Tensor:
    """Per-point losses (no gradients) on a point set from the frozen candidate's state gradients ``gx``
    there, chunked; the floor uses the set's mean |grad|^2."""
    m = ((gx * scale) ** 2).sum(-1).mean()
    out = []
    for s in range(0, len(pts), chunk):
        sl = slice(s, s + chunk)
        out.append(point_loss(gx[sl] * scale, pts.v[sl] / scale, Q[sl], alpha=cfg.alpha, floor=cfg.floor,
                              eps=cfg.deflation_eps, prev_unit_x=None if prev_x is None else prev_x[sl],
                              g_x=gx[sl], n_dof=n_dof, bracket_weight=cfg.bracket_weight, m=m).detach())
    return torch.cat(out)


def _floor_geometry(gx: Tensor, Q: Tensor, cfg: Any, scale: Tensor) -> dict[str, float]:
    r"""What an exact integral with this candidate's gradients would score: held-out medians of the
    deflation factor :math:`D` and of the floor-only loss :math:`\delta^2 m/(\|g\|^2 + \delta^2 m)\,D`
    (the loss with :math:`\langle g, \hat v\rangle = 0`)."""
    g = gx * scale
    g2 = (g * g).sum(-1)
    f2 = cfg.floor * cfg.floor * g2.mean()
    D = deflation_factor(g, Q, cfg.alpha, cfg.deflation_eps)
    return {"deflation": float(D.double().median()), "floor_loss": float((f2 / (g2 + f2) * D).double().median())}


@torch.no_grad()
def _heldout_value_spread(model: ConservedQuantity, gx: Tensor, pts: PointSet, Q: Tensor, scale: Tensor,
                          chunk: int = 8192) -> float:
    """:func:`value_spread` over the held-out trajectories (each one a window of all its snapshots)."""
    h = torch.cat([model(pts.x[s:s + chunk]).reshape(-1) for s in range(0, len(pts), chunk)])
    return float(value_spread(h, gx * scale, Q, groups=pts.traj))


def evaluate(cand: Candidate, data: DeflationData, spans: Spans, cfg: Any
             ) -> tuple[LawFit, LearnedInvariant, Tensor, Tensor]:
    r"""The trained candidate, frozen: its held-out and training losses under every statistic, its floor
    and deflation factor, value spread and constancy on the held-out trajectories.

    Returns:
        ``(fit, law, g_train, g_test)``: the statistics, the learned quantity, and its state gradients at the
        training and held-out points (for :meth:`Spans.add`).
    """
    init = cand.inits[0]
    gtr, gte = init.grads.frozen(data.train.x), init.grads.frozen(data.test.x)
    l_te = _point_losses(gte, data.test, spans.Q_test, spans.prev_test, cfg, data.n_dof, data.scale)
    l_tr = _point_losses(gtr, data.train, spans.Q_train, spans.prev_train, cfg, data.n_dof, data.scale)
    st_te, st_tr = loss_statistics(l_te), loss_statistics(l_tr)
    st_te["value_spread"] = _heldout_value_spread(init.model, gte, data.test, spans.Q_test, data.scale)
    st_te.update(_floor_geometry(gte, spans.Q_test, cfg, data.scale))
    st_te["median_value"] = max(st_te["median"], st_te["value_spread"])
    st_te["start"] = cand.start
    st_te["steps"] = cand.step
    st_te["cosines"] = cand.cosine_stop(cfg) // cfg.steps if cand.step else 0   # restarts + 1
    lib = cand.library
    if lib is not None:
        st_te["library_ratio"], st_te["library_next_ratio"] = lib.ratio, lib.next_ratio
        st_te["library_degree"], st_te["library_ratio_err"] = lib.degree, lib.ratio_err
    fit = LawFit(cand.index, st_te[cfg.statistic], st_tr.get(cfg.statistic, st_tr["median"]), st_te, cand.seconds,
                 list(cand.history))
    law = LearnedInvariant(init.model, cand.index, fit.loss)
    fit.stats["constancy"] = constancy(law, data.heldout)["median"]
    return fit, law, gtr, gte
