r"""The automatic count from the held-out losses of the candidates.

Two rules, strategies with one :meth:`CountRule.count` method, registered in :data:`COUNT_RULES` by the
names the config's ``rule`` key takes: :class:`FloorRule` (``"floor"``, the default: count the candidates
whose loss sits at the loss floor) and :class:`JumpRule` (``"jump"``: where the sequence of losses jumps),
described here.

Let :math:`\ell_k = \log_{10} L_k` be the held-out losses of the candidates :math:`H_1..H_K`, in the
order they were trained. Conserved candidates sit near the noise floor of the data (finite-difference
and integrator error, network capacity); the first candidate that cannot be conserved and independent of
the earlier ones sits orders of magnitude higher. The rule (:class:`JumpRule`):

1. Extend the sequence with a virtual candidate :math:`\ell_{K+1} = \log_{10} L_{\rm ref}`,
   :math:`L_{\rm ref} = 1`: with deflation power :math:`\alpha = 1`, *any* candidate scores exactly 1
   once the earlier gradients span the whole complement of the motion, so 1 is the loss of a
   non-conserved candidate in the worst case and the natural end point.
2. Jumps :math:`\Delta_k = \ell_{k+1} - \ell_k` for :math:`k = 1..K`. The count is the position of the
   largest jump, :math:`n = \arg\max_k \Delta_k`, provided it is at least :math:`J` decades; if no jump
   reaches :math:`J` nothing separates conserved from non-conserved candidates and :math:`n = 0`.
3. **Constancy veto** (optional: ``veto``, or ``constancy`` given to :meth:`JumpRule.decide`; off by
   default). A candidate counts only if its *values* are constant along the held-out
   trajectories: its relative spread :math:`\mathrm{median}_i\,\mathrm{std}_t H(x_i(t)) /
   \mathrm{std}_{i,t} H` is below ``constancy_tol`` (0.5). The gradient loss is pointwise, so a
   network can satisfy it almost everywhere with a *staircase* - flat pieces joined by thin steep walls
   that the median never sees; the values betray the walls. :math:`n` is capped at the number of leading
   candidates that pass.
4. The *margin* is the distance to the decision boundary, in decades: for :math:`n \ge 1`,
   :math:`\min(\Delta_n - J,\ \Delta_n - \Delta_{\rm runner-up})`; for :math:`n = 0`,
   :math:`J - \max_k \Delta_k`. A margin :math:`\le 0` is reported as ambiguous.

:math:`J` (``min_jump``, default 1 decade) is one number for every system; ``docs/conservation.md``
shows the calibration across the catalogue.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

from ..registry import Registry

__all__ = ["CountDecision", "CountRule", "JumpRule", "FloorRule", "COUNT_RULES", "count_rule", "rule_spec",
           "EXACT_START", "exact_flags"]

EXACT_START = "exact polynomial"  # stats["start"] of a candidate taken as an exact polynomial


def exact_flags(stats: Sequence[Mapping[str, Any]]) -> list[bool]:
    """Which candidates were exact polynomials taken as they are, from their held-out statistics (also
    those read back from ``summary.json`` or the reproduction table's JSON)."""
    return [st.get("start") == EXACT_START for st in stats]


@dataclass(frozen=True)
class CountDecision:
    """The rule's output and its evidence.

    Attributes:
        n: the count.
        log_losses: :math:`\\ell_1..\\ell_{K+1}` (with the virtual end).
        gaps: :math:`\\Delta_k = \\ell_{k+1}-\\ell_k` for :math:`k = 1..K`.
        margin: decisiveness in decades (> 0: decisive).
        ambiguous: margin <= 0.
        capped: the count hit the largest value the candidates could show (train more to be sure).
        rule: a one-line description.
        n_jump: the count from the jump alone (before the constancy veto).
        constancy: the held-out relative spreads used by the veto.
        counted: which candidates count (1-based; ``None``: the first ``n``).
        thresholds: per candidate, the loss below which it counts (floor rule; ``None``: jump rule).
    """

    n: int
    log_losses: tuple[float, ...]
    gaps: tuple[float, ...]
    margin: float
    ambiguous: bool
    capped: bool
    rule: str
    n_jump: int = -1
    constancy: tuple[float, ...] | None = None
    counted: tuple[int, ...] | None = None
    thresholds: tuple[float, ...] | None = None

    @property
    def counted_indices(self) -> tuple[int, ...]:
        """The counted candidates, 1-based (the first ``n`` unless the rule says otherwise)."""
        return self.counted if self.counted is not None else tuple(range(1, self.n + 1))


class CountRule(abc.ABC):
    """A count rule: the candidates' held-out statistics -> :class:`CountDecision`.

    A new rule subclasses this, implements :meth:`count`, and registers in :data:`COUNT_RULES`
    (then its name is a valid ``rule`` in configs); an object can also be passed as it is
    (``sciml.fit(Deflation, cfg, traj, rule=MyRule())``).
    """

    @abc.abstractmethod
    def count(self, stats: Sequence[Mapping[str, Any]], losses: Sequence[float], *, complete: bool,
              cap: int | None) -> CountDecision:
        """Decide from per-candidate held-out statistics (dicts as in ``LawFit.stats``) and the losses
        (the config's ``statistic`` of each)."""


@dataclass(frozen=True)
class JumpRule(CountRule):
    """Largest jump (at least :math:`J` decades) in log10 held-out loss, with a virtual end at
    :math:`L_{\\rm ref}` (module docstring).

    Args:
        min_jump: :math:`J`, decades.
        reference: :math:`L_{\\rm ref}`.
        constancy_tol: the veto's bound on the held-out relative spread.
        veto: :meth:`count` applies the constancy veto (with the candidates' ``constancy`` statistics).
    """

    min_jump: float = 1.0
    reference: float = 1.0
    constancy_tol: float = 0.5
    veto: bool = False

    def count(self, stats: Sequence[Mapping[str, Any]], losses: Sequence[float], *, complete: bool,
              cap: int | None) -> CountDecision:
        return self.decide(losses, complete=complete, cap=cap,
                           constancy=[st["constancy"] for st in stats] if self.veto else None)

    def decide(self, losses: Sequence[float], *, complete: bool = True, cap: int | None = None,
               constancy: Sequence[float] | None = None) -> CountDecision:
        """Decide the count from held-out losses ``L_1..L_K``.

        Args:
            losses: the held-out losses, in training order.
            complete: the candidates reached the largest possible number (``d-1``); otherwise a count of
                ``K`` only says "at least K" and is flagged ``capped``.
            cap: largest admissible count (``d-1``, or ``N`` in involution).
            constancy: held-out relative spread of each candidate's values (``None``: no veto).
        """
        if not losses:
            raise ValueError("no losses to decide from")
        ref = math.log10(self.reference)
        ell = [math.log10(max(float(x), 1e-300)) for x in losses] + [ref]
        gaps = [ell[k + 1] - ell[k] for k in range(len(ell) - 1)]       # gaps[k-1] = Delta_k
        limit = len(losses) if cap is None else min(cap, len(losses))
        best = max(range(1, limit + 1), key=lambda k: gaps[k - 1])
        if gaps[best - 1] >= self.min_jump:
            n = best
            others = [gaps[k - 1] for k in range(1, limit + 1) if k != best]
            runner = max(others) if others else -math.inf
            margin = min(gaps[best - 1] - self.min_jump, gaps[best - 1] - runner)
        else:
            n, margin = 0, self.min_jump - gaps[best - 1]
        n_jump = n
        if constancy is not None and n > 0:
            passing = 0
            while passing < n and float(constancy[passing]) < self.constancy_tol:
                passing += 1
            if passing < n:  # vetoed: margin = decades by which the first failing candidate misses
                margin = math.log10(max(float(constancy[passing]), 1e-300) / self.constancy_tol)
                n = passing
            else:
                worst = max(float(c) for c in constancy[:n])
                margin = min(margin, math.log10(self.constancy_tol / max(worst, 1e-300)))
        capped = n == len(losses) and not complete
        rule = (f"largest jump (>= {self.min_jump:g} decades) in log10 held-out loss, virtual end 10^{ref:g}"
                + (f"; counted candidates must have held-out constancy < {self.constancy_tol:g}"
                   if constancy is not None else ""))
        return CountDecision(n, tuple(ell), tuple(gaps), float(margin), bool(margin <= 0), bool(capped), rule,
                             n_jump, tuple(float(c) for c in constancy) if constancy is not None else None)


@dataclass(frozen=True)
class FloorRule(CountRule):
    r"""Count the candidates whose held-out loss sits at the resolution floor of the loss.

    An exact integral's per-point loss is the guard's floor :math:`\delta^2` (times
    :math:`m/\|g\|^2`, about 1 at the median) plus finite-difference error; the rule counts the
    candidates with :math:`L_k < \tau = \delta^2\,10^{D}` (``decades`` :math:`D` above the floor). Unlike :class:`JumpRule` it does not need a non-conserved candidate after the conserved ones, so
    *approximate* integrals of regular (near-integrable) data - losses 1e-5 to 1e-3, a staircase of
    small steps below the virtual end - are not counted. It relies on the velocities being accurate
    enough that an exact integral reaches the floor (check: the first candidate's loss).

    A polynomial shown exact against the data's own velocity error (the polynomial start,
    :mod:`sciml.conservation.library`) needs no such proof from the loss; its loss only has to show that
    it is independent of the earlier laws, :math:`L_k < \delta^2\,10^{D_x}` (``exact_decades``, 2: an exact
    integral scores the floor divided by its squared sine to the earlier span, so this asks for a typical
    angle above about 6 degrees). The energy of the periodic FPUT-beta chain after :math:`P` and
    :math:`L` scores 1.1e-5 that way: exact, but a decade above the floor.

    **Each candidate's own floor** (``floors`` given; what :meth:`count` uses by default,
    ``floor_reference = "candidate"``).
    The floor an exact integral reaches depends on its gradients: the guard term is
    :math:`\delta^2 m/\|g\|^2` and the deflation factor :math:`D = (\sin^2\theta + \epsilon)^{-1}` divides
    by the squared sine between :math:`\nabla H_k` and the earlier span, so an exact integral that is
    nearly dependent on the earlier ones over part of the data sits well above :math:`\delta^2` (the third
    integral of the periodic Toda lattice: median 7.5e-6 with the exact :math:`\mathrm{tr}\,L^3`, median
    :math:`D` = 3.5). With ``floors`` :math:`F_k` - the held-out median of the loss the candidate would have
    with :math:`\langle g, \hat v\rangle = 0`, i.e. :math:`\delta^2 m/(\|g\|^2 + \delta^2 m)\,D` - the
    thresholds become :math:`F_k\,10^{D}` (:math:`F_k\,10^{D_x}` for exact polynomials), which measure
    conservation alone, and independence is checked apart: the held-out median of :math:`D` must stay
    below :math:`10^{D_i}` (``independence_decades``; 1.5: a typical angle above about 10 degrees).
    Calibrated once on the N = 3 catalogue (``docs/conservation.md``): :math:`D = 0.75`, :math:`D_i = 1.5`
    (trained true integrals sit 1.2-3.2x above their floors, approximate ones of chaotic data 12x and more,
    candidates squeezed into the earlier span have :math:`D \ge 94`); with the global floor the rule was
    calibrated at :math:`D = 1`.

    The margin is the distance in decades of the candidate nearest to its threshold(s).

    Args:
        floor: :math:`\delta` of the loss (``DiscoveryConfig.floor``).
        decades: :math:`D`.
        exact_decades: :math:`D_x`.
        independence_decades: :math:`D_i` (used with ``deflation``).
        floor_reference: what :meth:`count` measures against: ``"candidate"``, each candidate's own
            floor (its ``floor_loss`` statistic, with the independence check on ``deflation``; the global
            floor for statistics without them), or ``"delta"``, :math:`\delta^2` for all.
    """

    floor: float = 1e-3
    decades: float = 0.75
    exact_decades: float = 2.0
    independence_decades: float = 1.5
    floor_reference: str = "candidate"

    def count(self, stats: Sequence[Mapping[str, Any]], losses: Sequence[float], *, complete: bool,
              cap: int | None) -> CountDecision:
        own = self.floor_reference == "candidate" and all("floor_loss" in st for st in stats)
        return self.decide(losses, complete=complete, cap=cap, exact=exact_flags(stats),
                           floors=[st["floor_loss"] for st in stats] if own else None,
                           deflation=[st["deflation"] for st in stats] if own else None)

    @property
    def threshold(self) -> float:
        return self.floor**2 * 10**self.decades

    @property
    def exact_threshold(self) -> float:
        return self.floor**2 * 10**self.exact_decades

    def decide(self, losses: Sequence[float], *, complete: bool = True, cap: int | None = None,
               constancy: Sequence[float] | None = None, exact: Sequence[bool] | None = None,
               floors: Sequence[float] | None = None, deflation: Sequence[float] | None = None) -> CountDecision:
        r"""Decide the count from held-out losses ``L_1..L_K`` (arguments as :meth:`JumpRule.decide`;
        ``constancy`` is only recorded).

        Args:
            exact: per candidate, whether it is a polynomial shown exact against the velocity error
                (:mod:`sciml.conservation.library`); such a candidate counts below the looser
                ``exact_threshold`` (its loss only has to show it independent of the earlier laws).
            floors: per candidate, its own floor :math:`F_k` (held-out ``floor_loss``); ``None``: the
                global :math:`\delta^2`.
            deflation: per candidate, the held-out median deflation factor (independence check, with
                ``floors``).
        """
        if not losses:
            raise ValueError("no losses to decide from")
        K = len(losses)
        ell = [math.log10(max(float(x), 1e-300)) for x in losses]
        ex = [bool(e) for e in exact] if exact is not None else [False] * K
        base = ([math.log10(max(float(f), 1e-300)) for f in floors] if floors is not None
                else [2 * math.log10(self.floor)] * K)
        lim = [b + (self.exact_decades if x else self.decades) for b, x in zip(base, ex)]
        # per candidate: decades inside the boundary (> 0: counted); independence only with own floors
        score = [t - e for e, t in zip(ell, lim)]
        if floors is not None and deflation is not None:
            score = [min(sc, self.independence_decades - math.log10(max(float(dk), 1e-300)))
                     for sc, dk in zip(score, deflation)]
        counted = tuple(k + 1 for k, sc in enumerate(score) if sc > 0)
        if cap is not None:
            counted = counted[:cap]
        n = len(counted)
        margin = min(abs(sc) for sc in score)
        seq = ell + [lim[-1]]
        gaps = [seq[k + 1] - seq[k] for k in range(K)]
        capped = n == K and not complete
        if floors is None:
            rule = (f"candidates with held-out loss below {self.threshold:.0e} (floor delta^2 = {self.floor**2:.0e} x "
                    f"10^{self.decades:g}), or below {self.exact_threshold:.0e} for exact polynomials")
        else:
            rule = (f"candidates with held-out loss below 10^{self.decades:g} x their own floor (10^"
                    f"{self.exact_decades:g} for exact polynomials)"
                    + (f" and median deflation factor below 10^{self.independence_decades:g}"
                       if deflation is not None else ""))
        return CountDecision(n, tuple(seq), tuple(gaps), float(margin), bool(margin <= 0), bool(capped), rule, n,
                             tuple(float(c) for c in constancy) if constancy is not None else None, counted,
                             tuple(10 ** t for t in lim))


COUNT_RULES: Registry[CountRule] = Registry("count rule", CountRule)
COUNT_RULES.register("floor", FloorRule)
COUNT_RULES.register("jump", JumpRule)


def count_rule(config: Any, rule: str | CountRule | None = None) -> CountRule:
    """The count rule of a :class:`~sciml.conservation.DiscoveryConfig`: ``rule`` (a registered name or an
    object, passed through) or else ``config.rule``, built with the config's parameters for it
    (``floor``, ``floor_decades``, ... for the floor rule; ``min_jump``, ``constancy_tol``, ``veto`` for
    the jump rule)."""
    return COUNT_RULES.resolve(config.rule if rule is None else rule, floor=config.floor,
                               decades=config.floor_decades, exact_decades=config.floor_exact_decades,
                               independence_decades=config.independence_decades,
                               floor_reference=config.floor_reference, min_jump=config.min_jump,
                               constancy_tol=config.constancy_tol, veto=config.veto)


def rule_spec(rule: CountRule) -> dict[str, Any] | None:
    """``{"name": registered name, "params": {...}}`` of a registered dataclass rule (to rebuild it with
    ``COUNT_RULES.resolve(name, **params)``); ``None`` for other rules."""
    name = next((n for n in COUNT_RULES if COUNT_RULES[n] is type(rule)), None)
    if name is None:
        return None
    return {"name": name, "params": {f.name: getattr(rule, f.name) for f in fields(rule)}}
