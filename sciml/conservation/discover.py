r"""Neural deflation from trajectories: learn :math:`H_1, H_2, \dots` one at a time, then count.

Entry point: :func:`discover` (trajectories + :class:`DiscoveryConfig` -> :class:`Discovery`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..autodiff import batch, gradient, point_function
from ..dynamics.trajectories import Trajectories
from ..run import ConfigError, RunDir, Status, config_to_dict, get_logger, param, train_loop
from .checks import constancy
from .count import CountDecision, FloorRule, JumpRule
from .data import PointSet, make_points, split_trajectories
from .losses import deflation_factor, orthonormal_span, point_loss, value_spread
from .library import MonomialFeatures, library_degree_for, library_fit, whitening
from .model import ConservedQuantity, LearnedInvariant

__all__ = ["NetworkConfig", "DiscoveryConfig", "Discovery", "discover", "LawFit"]

log = get_logger("conservation")


@dataclass(frozen=True)
class NetworkConfig:
    """The MLP of each candidate ``H_k``."""

    width: int = param(64, ge=1, doc="hidden width")
    depth: int = param(3, ge=1, doc="hidden layers")
    activation: str = param("silu", choices=("silu", "tanh", "softplus", "gelu", "sin"), doc="activation")


@dataclass(frozen=True)
class DiscoveryConfig:
    """Settings of one discovery (TOML keys of ``sciml discover --config``)."""

    max_laws: int = param(0, ge=0, doc="candidates to train; 0: d-1 (all integrals) or N+1 (involution)")
    involution: bool = param(False, doc="count integrals in involution (Poisson-bracket term, at most N)")
    steps: int = param(3000, ge=1, doc="Adam steps per candidate")
    batch_size: int = param(1024, ge=8, doc="points per step")
    lr: float = param(3e-3, gt=0, doc="initial learning rate (cosine decay)")
    lr_final: float = param(3e-5, gt=0, doc="final learning rate")
    alpha: float = param(1.0, gt=0, doc="deflation power (1: a d-th candidate scores exactly 1)")
    floor: float = param(1e-3, gt=0, doc="gradient floor delta: a constant candidate scores 1")
    deflation_eps: float = param(1e-6, gt=0, doc="regulariser of the deflation denominator")
    bracket_weight: float = param(1.0, ge=0, doc="weight of the Poisson-bracket term (involution)")
    holdout: float = param(0.25, gt=0, lt=1, doc="fraction of trajectories held out for the losses")
    max_points: int = param(100_000, ge=100, doc="cap on training points (random subset)")
    eval_points: int = param(50_000, ge=100, doc="cap on held-out points for the final losses")
    rule: str = param("floor", choices=("floor", "jump"),
                      doc="count rule: 'jump' (largest jump in log loss, JumpRule) or 'floor' (candidates within "
                          "floor_decades of the loss floor delta^2, FloorRule)")
    min_jump: float = param(1.0, gt=0, doc="count rule: smallest decisive jump, decades of loss")
    floor_decades: float = param(0.75, gt=0, doc="floor rule: decades above its floor a counted candidate may sit "
                                                 "(calibrated: docs/conservation.md; 1.0 for floor_reference 'delta')")
    floor_exact_decades: float = param(2.0, gt=0, doc="floor rule: the same for an exact polynomial (its loss only "
                                                      "has to show it independent of the earlier laws)")
    floor_reference: str = param("candidate", choices=("candidate", "delta"),
                                 doc="floor rule: measure each candidate against its own floor (the loss an exact "
                                     "integral with its gradients would have: 'candidate', with the independence "
                                     "check) or against delta^2 ('delta', the earlier rule)")
    independence_decades: float = param(1.5, gt=0, doc="floor rule with own floors: a counted candidate's held-out "
                                                       "median deflation factor stays below 10^this (a typical "
                                                       "angle to the earlier laws above ~10 degrees at 1.5)")
    veto: bool = param(False, doc="count rule: also require held-out constancy < constancy_tol (off: it "
                                  "cost more right counts than it saved across the catalogue)")
    constancy_tol: float = param(0.5, gt=0, doc="largest held-out relative spread of a counted H (veto, warnings)")
    statistic: str = param("median", choices=("median", "median_value", "mean", "geomean", "trimmed"),
                           doc="held-out losses -> one number per candidate; median_value: the larger of the "
                               "median per-point loss and the value spread (both 0 for an exact integral)")
    seed: int = param(0, doc="seed of the split, the initialisations and the batches")
    objective: str = param("log", choices=("mean", "log"),
                           doc="training objective over a batch: mean of the per-point loss, or mean of its log")
    value_weight: float = param(0.0, ge=0, doc="weight of the value term log V (spread of H along trajectories, "
                                               "relative to its deflated gradient); 0: gradient loss only "
                                               "(docs/conservation.md: it did not fix the over-counts)")
    window: int = param(16, ge=2, doc="snapshots per trajectory in a batch (the value term's windows)")
    restarts: int = param(3, ge=1, doc="initialisations per candidate; the best after the warm-up continues")
    library_degree: int = param(4, ge=0, doc="polynomial start: one more initialisation per candidate starts at the "
                                             "best conserved polynomial of degree <= this (sciml.conservation.library),"
                                             " an exact one is taken as it is; 0: off (always off with involution)")
    library_max_features: int = param(500, ge=1, doc="the library's degree is lowered until it has at most this "
                                                     "many monomials")
    library_points: int = param(10_000, ge=10, doc="training points the polynomial start is fitted on")
    library_exact_factor: float = param(4.0, gt=0, doc="a polynomial is an exact integral when its ratio R is at most "
                                                        "this times the ratio its finite-difference error alone "
                                                        "would give (then it is taken as it is)")
    warmup_fraction: float = param(0.1, gt=0, lt=1, doc="fraction of the steps all initialisations train")
    dtype: str = param("float32", choices=("float32", "float64"), doc="training precision")
    network: NetworkConfig = field(default_factory=NetworkConfig)


EXACT_START = "exact polynomial"  # stats["start"] of a candidate taken as an exact polynomial


def exact_flags(stats: list[dict[str, Any]]) -> list[bool]:
    """Which candidates were exact polynomials taken as they are, from their held-out statistics (also
    those read back from ``summary.json`` or the reproduction table's JSON)."""
    return [st.get("start") == EXACT_START for st in stats]


def count_rule(cfg: DiscoveryConfig) -> FloorRule | JumpRule:
    """The count rule the config names."""
    if cfg.rule == "floor":
        return FloorRule(cfg.floor, cfg.floor_decades, cfg.floor_exact_decades, cfg.independence_decades)
    return JumpRule(cfg.min_jump, constancy_tol=cfg.constancy_tol)


def decide_count(rule: FloorRule | JumpRule, stats: list[dict[str, Any]], losses: list[float], *, complete: bool,
                 cap: int, floor_reference: str = "candidate", veto: bool = False) -> CountDecision:
    """The rule's decision from the candidates' held-out statistics (also those read back from
    ``summary.json`` or the reproduction table's JSON; older files without ``floor_loss`` fall back to
    the global floor)."""
    if isinstance(rule, FloorRule):
        own = floor_reference == "candidate" and all("floor_loss" in st for st in stats)
        return rule.decide(losses, complete=complete, cap=cap, exact=exact_flags(stats),
                           floors=[st["floor_loss"] for st in stats] if own else None,
                           deflation=[st["deflation"] for st in stats] if own else None)
    return rule.decide(losses, complete=complete, cap=cap,
                       constancy=[st["constancy"] for st in stats] if veto else None)


def loss_statistics(pl: Tensor) -> dict[str, float]:
    """Summaries of per-point losses: mean, median, geometric mean, 10%-trimmed mean (top tail cut)."""
    pl = pl.double()
    q90 = torch.quantile(pl[: 200_000], 0.9)
    return {"mean": float(pl.mean()), "median": float(pl.median()),
            "geomean": float(torch.exp(torch.log(pl.clamp_min(1e-300)).mean())),
            "trimmed": float(pl[pl <= q90].mean())}


@dataclass
class LawFit:
    """One trained candidate: held-out loss (the chosen statistic), training loss, all statistics."""

    index: int
    loss: float
    train_loss: float
    stats: dict[str, float]
    seconds: float
    history: list[float]

    @property
    def median_loss(self) -> float:
        return self.stats["median"]


@dataclass
class Discovery:
    """What :func:`discover` returns.

    Attributes:
        status, message: how it ended (``Status.DIVERGED`` keeps the laws trained before).
        n_conserved: the count decided by the rule.
        decision: the rule's evidence (log-losses, gaps, margin).
        laws: learned quantities :math:`H_1..H_K` as callables (all candidates; the first
            ``n_conserved`` are the conserved ones).
        fits: per-candidate losses and timings.
        config, dim, n_dof, involution, seconds, split (train / held-out trajectory indices).
    """

    status: Status
    message: str
    n_conserved: int
    decision: CountDecision | None
    laws: list[LearnedInvariant]
    fits: list[LawFit]
    config: DiscoveryConfig
    dim: int
    n_dof: int | None
    seconds: float
    split: tuple[np.ndarray, np.ndarray]
    run_dir: Path | None = None

    @property
    def conserved(self) -> list[LearnedInvariant]:
        """The learned quantities counted as conserved."""
        if self.decision is None:
            return []
        return [self.laws[k - 1] for k in self.decision.counted_indices]

    @property
    def losses(self) -> list[float]:
        return [f.loss for f in self.fits]

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what ``sciml discover --json`` prints)."""
        d = self.decision
        return {
            "status": self.status.value, "message": self.message, "n_conserved": self.n_conserved,
            "losses": self.losses, "train_losses": [f.train_loss for f in self.fits],
            "statistic": self.config.statistic,
            "heldout_statistics": [f.stats for f in self.fits],
            "margin": d.margin if d else None, "gaps": list(d.gaps) if d else None,
            "n_jump": d.n_jump if d else None, "constancy": [f.stats.get("constancy") for f in self.fits],
            "counted": list(d.counted_indices) if d else [],
            "thresholds": list(d.thresholds) if d and d.thresholds else None,
            "rule": d.rule if d else None, "involution": self.config.involution, "dim": self.dim,
            "seconds": self.seconds, "seconds_per_law": [f.seconds for f in self.fits],
            "config": config_to_dict(self.config),
        }


def _unit(g: Tensor) -> Tensor:
    return g / g.norm(dim=-1, keepdim=True).clamp_min(1e-30)


class _Grads:
    """State gradients of a module at many points, by the autodiff core (vmap of reverse mode)."""

    def __init__(self, module: ConservedQuantity):
        self.module = module
        self.f = point_function(module)
        self.op = batch(gradient(self.f))
        self.op_chunked = batch(gradient(self.f), chunk_size=8192)

    def params(self, detach: bool = False) -> dict[str, Tensor]:
        p = {**dict(self.module.named_parameters()), **dict(self.module.named_buffers())}
        return {k: v.detach() for k, v in p.items()} if detach else p

    def __call__(self, x: Tensor) -> Tensor:
        return self.op(self.params(), x)

    def frozen(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.op_chunked(self.params(detach=True), x)


def _evaluate(gx: Tensor, pts: PointSet, Q: Tensor, prev_x: Tensor | None,
              cfg: DiscoveryConfig, n_dof: int | None, scale: Tensor, chunk: int = 8192) -> Tensor:
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


def _floor_geometry(gx: Tensor, Q: Tensor, cfg: DiscoveryConfig, scale: Tensor) -> dict[str, float]:
    r"""What an exact integral with this candidate's gradients would score: held-out medians of the
    deflation factor :math:`D` and of the floor-only loss :math:`\delta^2 m/(\|g\|^2 + \delta^2 m)\,D`
    (the loss with :math:`\langle g, \hat v\rangle = 0`)."""
    g = gx * scale
    g2 = (g * g).sum(-1)
    f2 = cfg.floor * cfg.floor * g2.mean()
    D = deflation_factor(g, Q, cfg.alpha, cfg.deflation_eps)
    return {"deflation": float(D.double().median()), "floor_loss": float((f2 / (g2 + f2) * D).double().median())}


class TrajectoryWindows:
    """Draws batches of ``w`` snapshots from each of ``b`` random trajectories (points grouped by ``traj``)."""

    def __init__(self, traj: Tensor):
        order = torch.argsort(traj, stable=True)
        _, counts = torch.unique_consecutive(traj[order], return_counts=True)
        self.order, self.counts = order, counts
        self.starts = torch.cumsum(counts, 0) - counts

    def sample(self, b: int, w: int, generator: torch.Generator) -> Tensor:
        dev = self.order.device
        t = torch.randint(0, len(self.counts), (b,), generator=generator, device=dev)
        u = torch.rand(b, w, generator=generator, device=dev)
        pos = self.starts[t, None] + (u * self.counts[t, None]).long().clamp_max(self.counts[t, None] - 1)
        return self.order[pos.reshape(-1)]


@torch.no_grad()
def _heldout_value_spread(model, gx: Tensor, pts: PointSet, Q: Tensor, scale: Tensor, chunk: int = 8192) -> float:
    """:func:`value_spread` over the held-out trajectories (each one a window of all its snapshots)."""
    h = torch.cat([model(pts.x[s:s + chunk]).reshape(-1) for s in range(0, len(pts), chunk)])
    return float(value_spread(h, gx * scale, Q, groups=pts.traj))


def discover(traj: Trajectories, config: DiscoveryConfig | None = None, *, device: str | torch.device = "cpu",
             out: str | Path | None = None, verbose: bool = True) -> Discovery:
    r"""Count and learn the conserved quantities of the dynamics behind ``traj`` by neural deflation.

    For :math:`k = 1..K`: the best conserved polynomial independent of :math:`H_1..H_{k-1}` is computed
    (:mod:`sciml.conservation.library`); if it is exact to the accuracy of the velocities it is taken as
    :math:`H_k`, otherwise it joins ``restarts`` random MLPs as one more start, and the best after the
    warm-up is trained to minimise the batch mean of :math:`\log` of the per-point loss
    :func:`sciml.conservation.losses.point_loss` over the training trajectories, with
    :math:`H_1..H_{k-1}` frozen. The held-out median loss of each candidate is recorded, and the count
    rule (:class:`~sciml.conservation.count.FloorRule` by default, or
    :class:`~sciml.conservation.count.JumpRule`) turns the held-out losses into the count.

    Args:
        traj: trajectories (``sciml.dynamics.load_trajectories`` or ``simulate``).
        config: settings (defaults: :class:`DiscoveryConfig`).
        device: torch device (the same code runs on CUDA).
        out: run directory (per-candidate metrics and checkpoints, ``results.h5``, ``summary.json``,
            ``loss_vs_k.png``); ``None``: nothing written.
        verbose: log one line per candidate.

    Returns:
        :class:`Discovery`.

    Raises:
        ConfigError: ``max_laws`` too large for the state dimension, or involution without a ``qp`` layout.
    """
    cfg = config or DiscoveryConfig()
    device = torch.device(device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    d, n_dof = traj.dim, traj.n_dof
    if cfg.involution and n_dof is None:
        raise ConfigError("involution", "needs a Hamiltonian 'qp' layout (even state dimension, first half q)")
    cap = (n_dof + 1) if cfg.involution else (d - 1)
    K = cfg.max_laws or cap
    if K > cap:
        raise ConfigError("max_laws", f"{K} exceeds the most candidates that can be told apart here ({cap}: "
                          f"{'N+1 in involution' if cfg.involution else 'd-1 independent integrals'})")
    t_start = time.perf_counter()
    gen = torch.Generator().manual_seed(cfg.seed)
    tr_idx, ho_idx = split_trajectories(traj.n_trajectories, cfg.holdout, gen)
    train = make_points(traj.subset(tr_idx), cfg.max_points, gen).to(device, dtype)
    test = make_points(traj.subset(ho_idx), cfg.eval_points, gen).to(device, dtype)
    shift = train.x.mean(0)
    scale = train.x.std(0).clamp_min(1e-8)
    windows = TrajectoryWindows(train.traj)
    run = RunDir(out) if out is not None else None
    if run is not None:
        run.save_config(cfg)
        run.write_meta(status="running", device=str(device), dim=d, n_trajectories=traj.n_trajectories,
                       system=str(traj.attrs.get("system", "")))

    # per-point bases of the frozen gradients' span, kept for train and held-out points
    Q_tr = train.x.new_zeros(len(train), d, 0)
    Q_te = test.x.new_zeros(len(test), d, 0)
    Gx_tr: list[Tensor] = []  # unit original-coordinate gradients (involution brackets)
    Gx_te: list[Tensor] = []
    Gz_tr: list[Tensor] = []
    Gz_te: list[Tensor] = []
    laws: list[LearnedInvariant] = []
    fits: list[LawFit] = []
    status, message = Status.SUCCESS, ""
    # the polynomial start (library.py): monomials of z, fitted on a fixed subset of training points
    # (not with involution: the library's quotient has no Poisson-bracket term, so an exact polynomial
    # need not commute with the earlier laws)
    lib_deg = (library_degree_for(d, cfg.library_degree, cfg.library_max_features)
               if cfg.library_degree and not cfg.involution else 0)
    if lib_deg:
        lib_idx = torch.randperm(len(train), generator=gen)[:cfg.library_points].to(device)
        lib_z = (train.x[lib_idx] - shift) / scale
        features = MonomialFeatures(d, lib_deg, whitening(lib_z)).to(device)   # monomials of whitened z
        lib_v = train.v[lib_idx] / scale
        lib_err = train.err[lib_idx] / scale if train.err is not None else None
    for k in range(1, K + 1):
        bgen = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + k)
        prev_tr = torch.stack(Gx_tr, 1) if (cfg.involution and Gx_tr) else None
        # best-of-R initialisations: all are trained through a short warm-up, the best continues
        cands = []

        def add(m: ConservedQuantity) -> None:
            m = m.to(device, dtype)
            o = torch.optim.Adam(m.parameters(), lr=cfg.lr)
            cands.append([m, _Grads(m), o, torch.optim.lr_scheduler.CosineAnnealingLR(o, cfg.steps, eta_min=cfg.lr_final),
                          []])

        lib = (library_fit(features, lib_z, lib_v, Q_tr[lib_idx], v_err=lib_err, exact_factor=cfg.library_exact_factor)
               if lib_deg else None)
        # an exact polynomial integral (ratio at the finite-difference noise) is a global optimum of the
        # loss up to its floor: it is taken as H_k as it is (training would only trade conservation for
        # independence from the earlier laws). Otherwise it joins the random initialisations as one more.
        exact = lib is not None and lib.exact
        n_random = 0 if exact else cfg.restarts
        for r in range(n_random):
            torch.manual_seed(cfg.seed * 1000 + 31 * k + r)
            add(ConservedQuantity(d, shift, scale, cfg.network.width, cfg.network.depth, cfg.network.activation))
        if lib is not None:
            torch.manual_seed(cfg.seed * 1000 + 31 * k + cfg.restarts)
            add(ConservedQuantity(d, shift, scale, cfg.network.width, cfg.network.depth, cfg.network.activation,
                                  poly=MonomialFeatures(d, lib_deg, features.transform.cpu()), coef=lib.coef))
        n_warm = int(cfg.warmup_fraction * cfg.steps) if len(cands) > 1 else 0
        history: list[float] = []
        chosen: list[int] = [0]

        def one(c: list, idx: Tensor) -> tuple[float, float]:
            m, grads, opt, sched, hist = c
            gx = grads(train.x[idx])
            gz = gx * scale
            pl = point_loss(gz, train.v[idx] / scale, Q_tr[idx], alpha=cfg.alpha, floor=cfg.floor,
                            eps=cfg.deflation_eps, prev_unit_x=None if prev_tr is None else prev_tr[idx],
                            g_x=gx, n_dof=n_dof, bracket_weight=cfg.bracket_weight)
            loss = pl.mean()
            obj = torch.log(pl).mean() if cfg.objective == "log" else loss
            if cfg.value_weight > 0:
                vs = value_spread(m(train.x[idx]).reshape(-1, cfg.window), gz, Q_tr[idx])
                obj = obj + cfg.value_weight * (torch.log(vs + 1e-12) if cfg.objective == "log" else vs)
            opt.zero_grad(set_to_none=True)
            obj.backward()
            opt.step()
            sched.step()
            hist.append(float(loss.detach()))
            return hist[-1], float((gz.detach() ** 2).sum(-1).mean())

        def step(i: int) -> dict[str, float]:
            if cfg.value_weight > 0:  # windows: `window` snapshots from each of batch_size // window trajectories
                idx = windows.sample(max(1, cfg.batch_size // cfg.window), cfg.window, bgen)
            else:
                idx = torch.randint(0, len(train), (min(cfg.batch_size, len(train)),), generator=bgen, device=device)
            if i < n_warm:
                out = [one(c, idx) for c in cands]
                if i == n_warm - 1:  # keep the initialisation with the lowest recent training loss
                    w = max(1, n_warm // 5)
                    scores = [float(np.median(c[4][-w:])) for c in cands]
                    chosen[0] = int(np.argmin(scores))
                lv, rv = min(out)
            else:
                lv, rv = one(cands[chosen[0]], idx)
            history.append(lv)
            return {"loss": lv, "grad_sq": rv}

        sub = RunDir(run.path / f"H{k}") if run is not None else None
        t0 = time.perf_counter()
        res = train_loop(step, 0 if exact else cfg.steps, run=sub, desc=f"H_{k}", log_every=50,
                         checkpoint_every=0,
                         state=lambda: {"model": cands[chosen[0]][0].state_dict()})
        seconds = time.perf_counter() - t0
        model, grads = cands[chosen[0]][0], cands[chosen[0]][1]
        if not res.ok:
            status, message = res.status, f"H_{k}: {res.message}"
            break
        # held-out and training losses with this candidate (frozen); its gradients, taken once, also
        # join the spans below
        gtr, gte = grads.frozen(train.x), grads.frozen(test.x)
        prev_te = torch.stack(Gx_te, 1) if (cfg.involution and Gx_te) else None
        l_te = _evaluate(gte, test, Q_te, prev_te, cfg, n_dof, scale)
        l_tr = _evaluate(gtr, train, Q_tr, prev_tr, cfg, n_dof, scale)
        st_te, st_tr = loss_statistics(l_te), loss_statistics(l_tr)
        st_te["value_spread"] = _heldout_value_spread(model, gte, test, Q_te, scale)
        st_te.update(_floor_geometry(gte, Q_te, cfg, scale))
        st_te["median_value"] = max(st_te["median"], st_te["value_spread"])
        st_te["start"] = (EXACT_START if exact else "polynomial" if (lib is not None and chosen[0] == n_random)
                          else f"random {chosen[0]}")
        if lib is not None:
            st_te["library_ratio"], st_te["library_next_ratio"] = lib.ratio, lib.next_ratio
            st_te["library_degree"], st_te["library_ratio_err"] = lib.degree, lib.ratio_err
        fit = LawFit(k, st_te[cfg.statistic], st_tr.get(cfg.statistic, st_tr["median"]), st_te, seconds, history)
        law = LearnedInvariant(model, k, fit.loss)
        fit.stats["constancy"] = constancy(law, traj.X[ho_idx])["median"]
        fits.append(fit)
        laws.append(law)
        if verbose:
            log.info("H_%d: held-out %s loss %.3e (train %.3e; mean %.2e), constancy %.1e, start %s%s, in %.1f s", k,
                     cfg.statistic, fit.loss, fit.train_loss, st_te["mean"], fit.stats["constancy"], st_te["start"],
                     f" (polynomial R {lib.ratio:.1e})" if lib is not None else "", seconds)
        # freeze: append this gradient to the spans
        Gz_tr.append(gtr * scale)
        Gz_te.append(gte * scale)
        Q_tr = orthonormal_span(torch.stack(Gz_tr, -1))
        Q_te = orthonormal_span(torch.stack(Gz_te, -1))
        if cfg.involution:
            Gx_tr.append(_unit(gtr))
            Gx_te.append(_unit(gte))

    decision = None
    n = 0
    if fits:
        cap_n = n_dof if cfg.involution else d - 1
        complete = len(fits) == d - 1 and not cfg.involution
        decision = decide_count(count_rule(cfg), [f.stats for f in fits], [f.loss for f in fits], complete=complete,
                                cap=cap_n, floor_reference=cfg.floor_reference, veto=cfg.veto)
        n = decision.n
    seconds = time.perf_counter() - t_start
    if status == Status.SUCCESS:
        message = (f"{n} conserved quantit{'y' if n == 1 else 'ies'}"
                   f"{' in involution' if cfg.involution else ''} (margin {decision.margin:.2f} decades) "
                   f"from {len(fits)} candidates in {seconds:.1f} s")
    result = Discovery(status, message, n, decision, laws, fits, cfg, d, n_dof, seconds, (tr_idx, ho_idx),
                       run.path if run is not None else None)
    if run is not None:
        _write(run, result)
    return result


def _write(run: RunDir, res: Discovery) -> None:
    from ..run import atomic_write_text
    from .plots import plot_losses

    summ = res.summary()
    atomic_write_text(run.path / "summary.json", json.dumps(summ, indent=1, default=str))
    arrays: dict[str, Any] = {
        "losses": np.array(res.losses), "train_losses": np.array([f.train_loss for f in res.fits]),
        "train_trajectories": res.split[0], "heldout_trajectories": res.split[1],
    }
    for f in res.fits:
        arrays[f"history/H{f.index}"] = np.array(f.history)
    nested: dict[str, Any] = {}
    for k, v in arrays.items():
        if "/" in k:
            g, n = k.split("/")
            nested.setdefault(g, {})[n] = v
        else:
            nested[k] = v
    run.write_results(nested, {"n_conserved": res.n_conserved, "margin": summ["margin"], "status": summ["status"]})
    for law in res.laws:
        from ..run import atomic_torch_save
        atomic_torch_save(law.module.state_dict(), run.path / f"H{law.index}.pt")
    if res.decision is not None:
        plot_losses(res, run.path / "loss_vs_k.png")
    run.write_meta(status=summ["status"], n_conserved=res.n_conserved, seconds=res.seconds)
