r"""Neural deflation from trajectories as a method of :func:`sciml.fit`: learn :math:`H_1, H_2, \dots` one at a
time, then count.

    import sciml
    from sciml.conservation import Deflation, DiscoveryConfig

    res = sciml.fit(Deflation, DiscoveryConfig(), traj, out="runs/iso")   # Result[Discovery]
    disc = Deflation.load("runs/iso")                                      # the same Discovery, read back
    print(res.metrics["count"], disc.conserved[0](traj.X[0]))

For :math:`k = 1..K` the best conserved polynomial independent of :math:`H_1..H_{k-1}` is computed
(:mod:`sciml.conservation.library`); if it is exact to the accuracy of the velocities it is taken as
:math:`H_k` with no training steps, otherwise it joins ``restarts`` random MLPs as one more start, and the
best after the warm-up is trained to minimise the batch mean of :math:`\log` of the per-point loss
:func:`sciml.conservation.losses.point_loss` over the training trajectories, with :math:`H_1..H_{k-1}`
frozen (:mod:`sciml.conservation.candidate`). The held-out statistics of each candidate are recorded,
and the count rule (:data:`~sciml.conservation.count.COUNT_RULES`: the floor rule by default) turns them
into the count.

The run is a state machine over the driver's global step counter: each step is one training step of the
running candidate; when it is finished (its cosine's ``steps`` run, then the patience rule: on at
``lr_final`` while its validation loss falls, up to ``max_steps``), it is evaluated (after the optional
L-BFGS finish, inside the same step) and frozen, and the next one starts (exact polynomials are taken,
evaluated and frozen at once). ``done()`` ends the run when all :math:`K` candidates are frozen, so
``n_steps = K * max_candidate_steps`` is an upper bound. A checkpoint holds the frozen
candidates (networks and statistics; the deflation spans are recomputed from them on resume, bit for bit)
and the running one (networks, optimisers, schedules, batch generator, warm-up bookkeeping), so a run
killed anywhere and resumed ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..dynamics.trajectories import Trajectories
from ..io import DataError
from ..registry import UnknownChoice
from ..run import ConfigError, MethodBase, Result, RunDir, Status, get_logger, rng_state, set_rng_state
from .candidate import (Candidate, Gradients, LawFit, Spans, candidate_seeds, evaluate, lbfgs_finish, lm_finish,
                        max_candidate_steps, new_network, start_candidate, validation_loss)
from .config import DiscoveryConfig
from .count import CountRule, count_rule
from .data import prepare_data
from .model import LearnedInvariant
from .results import Discovery, load_discovery, write_results

__all__ = ["Deflation"]

log = get_logger("conservation")


def data_fingerprint(traj: Trajectories) -> str:
    """A short hash of the trajectories' states and times (a resumed run must see the same data)."""
    h = hashlib.blake2b(digest_size=8)
    for a in (np.ascontiguousarray(traj.X, dtype=np.float64), np.ascontiguousarray(traj.t, dtype=np.float64)):
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _max_candidates(cfg: DiscoveryConfig, traj: Trajectories) -> int:
    """``K``: ``max_laws``, or the most candidates that can be told apart (``d-1``; ``N+1`` in involution).

    Raises:
        ConfigError: ``max_laws`` above that, or involution without a ``qp`` layout.
    """
    if cfg.involution and traj.n_dof is None:
        raise ConfigError("involution", "needs a Hamiltonian 'qp' layout (even state dimension, first half q); "
                                        f"these trajectories have layout {traj.layout!r} and d = {traj.dim}")
    cap = (traj.n_dof + 1) if cfg.involution else (traj.dim - 1)
    K = cfg.max_laws or cap
    if K > cap:
        raise ConfigError("max_laws", f"{K} exceeds the most candidates that can be told apart here ({cap}: "
                          f"{'N+1 in involution' if cfg.involution else 'd-1 independent integrals'})")
    return K


class Deflation(MethodBase[Discovery]):
    """Conservation laws from trajectories by neural deflation (module docstring).

    ``sciml.fit(Deflation, config, trajectories, *, rule=None, ...)``: ``config`` a
    :class:`~sciml.conservation.DiscoveryConfig`, ``trajectories`` a
    :class:`~sciml.dynamics.Trajectories`; ``rule`` a count rule (a name of
    :data:`~sciml.conservation.COUNT_RULES` or an object) instead of the config's. The payload is a
    :class:`~sciml.conservation.Discovery`; ``res.metrics`` gets ``count``, ``candidates`` and ``margin``.
    """

    command = "discover"

    def __init__(self, config: DiscoveryConfig, traj: Trajectories, K: int, rule: CountRule, device: torch.device):
        self.config, self.K, self.rule, self.device = config, K, rule, device
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        self.n_steps = K * max_candidate_steps(config)
        self.traj_info = {"dim": traj.dim, "n_trajectories": traj.n_trajectories, "n_times": traj.n_times,
                          "system": str(traj.attrs.get("system", "")), "data": data_fingerprint(traj)}
        gen = torch.Generator().manual_seed(candidate_seeds(config.seed, 0, 0).data)
        self.data = prepare_data(traj, config, gen, device, self.dtype)
        self.spans = Spans(self.data, config.involution)
        self.fits: list[LawFit] = []
        self.laws: list[LearnedInvariant] = []
        self.running: Candidate | None = None

    @classmethod
    def build(cls, config: DiscoveryConfig, problem: Trajectories, *, device: torch.device, dist: Any = None,
              rule: str | CountRule | None = None) -> "Deflation":
        """Check the config against the trajectories, then split them and make the points.

        Raises:
            ConfigError: ``max_laws`` too large for the state dimension, involution without a ``qp`` layout,
                or an unknown ``rule``.
        """
        if not isinstance(problem, Trajectories):
            raise TypeError(f"Deflation needs Trajectories (sciml.dynamics.load_trajectories or simulate), got "
                            f"{type(problem).__name__}")
        if not isinstance(config, DiscoveryConfig):
            raise TypeError(f"Deflation needs a DiscoveryConfig, got {type(config).__name__}")
        K = _max_candidates(config, problem)
        try:
            resolved = count_rule(config, rule)
        except UnknownChoice as e:
            raise ConfigError("rule", str(e)) from None
        return cls(config, problem, K, resolved, torch.device(device))

    # --- the state machine -------------------------------------------------------------------------
    def step(self, i: int) -> dict[str, float]:
        """One training step of the running candidate (starting candidates, and freezing finished ones, as
        they come)."""
        t0 = time.perf_counter()
        if self.running is None:
            self._advance()
        c = self.running
        if c is None:  # every candidate was an exact polynomial: nothing to train
            return {"loss": self.fits[-1].loss, "candidate": float(len(self.fits))}
        loss, grad_sq = c.train_step(self.data, self.spans, self.config)
        c.seconds += time.perf_counter() - t0
        if c.finished:
            if self.config.finish_steps:
                t1 = time.perf_counter()
                if self.config.finish == "lm":
                    # only where it pays: a candidate the count would refuse on its validation loss
                    val, floor = validation_loss(c.inits[0], self.data, self.spans, self.config, floor=True)
                    if val > 10 ** self.config.floor_decades * floor:
                        trace = lm_finish(c.inits[0], self.data, self.spans, self.config, self.config.finish_steps,
                                          seed=candidate_seeds(self.config.seed, c.index, 0).batches + 1)
                        after = validation_loss(c.inits[0], self.data, self.spans, self.config)
                        log.info("H_%d: validation loss %.2fx its floor: %d Levenberg-Marquardt steps (batch mean "
                                 "ln loss %.2f -> %.2f), validation loss now %.2fx", c.index, val / floor,
                                 len(trace), trace[0], trace[-1], after / floor)
                else:
                    lbfgs_finish(c.inits[0], self.data, self.spans, self.config, self.config.finish_steps)
                c.seconds += time.perf_counter() - t1
            self._freeze(c)
            self._advance()
        return {"loss": loss, "grad_sq": grad_sq, "candidate": float(c.index)}

    def done(self) -> bool:
        return len(self.fits) >= self.K

    def _advance(self) -> None:
        """Start the next candidates; freeze the exact polynomials among them at once."""
        while self.running is None and len(self.fits) < self.K:
            t0 = time.perf_counter()
            c = start_candidate(len(self.fits) + 1, self.data, self.spans, self.config, self.device, self.dtype)
            c.seconds += time.perf_counter() - t0
            if c.n_steps == 0:
                self._freeze(c)
            else:
                self.running = c

    def _freeze(self, c: Candidate) -> None:
        fit, law, g_train, g_test = evaluate(c, self.data, self.spans, self.config)
        self.fits.append(fit)
        self.laws.append(law)
        self.spans.add(g_train, g_test)
        self.running = None
        st = fit.stats
        lib = f" (polynomial R {st['library_ratio']:.1e})" if "library_ratio" in st else ""
        log.info("H_%d: held-out %s loss %.3e (train %.3e; mean %.2e), constancy %.1e, start %s%s, %d steps in "
                 "%.1f s", fit.index, self.config.statistic, fit.loss, fit.train_loss, st["mean"], st["constancy"],
                 st["start"], lib, st["steps"], fit.seconds)

    # --- checkpoints -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The frozen candidates (networks, statistics), the running one, and the global RNG."""
        return {"frozen": [{"model": law.module.state_dict(), "fit": asdict(fit),
                            "polynomial": law.module.poly is not None} for law, fit in zip(self.laws, self.fits)],
                "running": self.running.state() if self.running is not None else None, "rng": rng_state(),
                "data": self.traj_info["data"]}

    def load_state(self, st: Mapping[str, Any]) -> None:
        """Restore :meth:`state`; the deflation spans are recomputed from the frozen networks (the same
        operations on the same parameters as when they were frozen).

        Raises:
            DataError: the run was started on other trajectories.
        """
        if st["data"] != self.traj_info["data"]:
            raise DataError(f"--resume: these trajectories are not the ones the run was started on (data "
                            f"fingerprint {self.traj_info['data']}, the run's {st['data']}); resume with the run's "
                            "own trajectory file, or start a new run")
        self.fits, self.laws = [], []
        self.spans = Spans(self.data, self.config.involution)
        for entry in st["frozen"]:
            fit = LawFit(**entry["fit"])
            # the head's size is that of the stage it started from (the saved coefficients)
            coef = torch.zeros(entry["model"]["coef"].shape[0]) if entry["polynomial"] else None
            model = new_network(self.data, self.config, self.device, self.dtype, coef)
            model.load_state_dict(entry["model"])
            grads = Gradients(model)
            self.spans.add(grads.frozen(self.data.train.x), grads.frozen(self.data.test.x))
            self.fits.append(fit)
            self.laws.append(LearnedInvariant(model, fit.index, fit.loss))
        self.running = (Candidate.from_state(st["running"], self.data, self.config, self.device, self.dtype)
                        if st["running"] is not None else None)
        set_rng_state(st["rng"])  # last: building the networks above drew from it

    # --- results -----------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {**self.traj_info, "candidates": self.K, "rule": repr(self.rule)}

    def discovery(self, status: Status, seconds: float, run_dir: Path | None = None) -> Discovery:
        """The payload from the frozen candidates: the rule's decision over them (a stopped run's count
        covers the candidates finished so far)."""
        cfg, d = self.config, self.data.dim
        decision, n = None, 0
        if self.fits:
            complete = len(self.fits) == d - 1 and not cfg.involution
            cap = self.data.n_dof if cfg.involution else d - 1
            decision = self.rule.count([f.stats for f in self.fits], [f.loss for f in self.fits], complete=complete,
                                       cap=cap)
            n = decision.n
        what = (f"{n} conserved quantit{'y' if n == 1 else 'ies'}{' in involution' if cfg.involution else ''}"
                + (f" (margin {decision.margin:.2f} decades)" if decision is not None else ""))
        if status == Status.SUCCESS:
            message = f"{what} from {len(self.fits)} candidates in {seconds:.1f} s"
        else:
            message = f"{status.value} with {len(self.fits)} of {self.K} candidates finished; so far {what}"
        return Discovery(status, message, n, decision, list(self.laws), list(self.fits), cfg, d, self.data.n_dof,
                         seconds, self.data.split, run_dir, self.rule)

    def finish(self, run: RunDir | None, result: Result) -> Discovery:
        """The :class:`Discovery`; with a run directory, its files (:func:`~sciml.conservation.results.write_results`)."""
        disc = self.discovery(result.status, result.seconds, run.path if run is not None else None)
        result.metrics.update(count=float(disc.n_conserved), candidates=float(len(disc.fits)))
        if disc.decision is not None:
            result.metrics["margin"] = float(disc.decision.margin)
        if run is not None:
            result.artefacts.update(write_results(run, disc))
        return disc

    @classmethod
    def load(cls, run_dir: str | Path, *, device: str | torch.device = "cpu") -> Discovery:
        """The :class:`Discovery` of a run directory (learned quantities as callables on ``device``)."""
        return load_discovery(run_dir, device=device)
