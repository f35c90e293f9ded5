"""The payload of a discovery (:class:`Discovery`), and its files in the run directory: written by
:func:`write_results`, read back by :func:`load_discovery` (``Deflation.load``).

Files: ``summary.json`` (the count, its evidence, every candidate's held-out statistics, the config),
``results.h5`` (losses, training histories, the trajectory split), ``H<k>.pt`` (each candidate's state
dict) and ``loss_vs_k.png`` (the evidence plot).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import DataError
from ..run import RunDir, Status, atomic_torch_save, atomic_write_text, config_to_dict, load_config
from .candidate import LawFit
from .config import DiscoveryConfig
from .count import COUNT_RULES, CountDecision, CountRule, rule_spec
from .library import MonomialFeatures
from .model import ConservedQuantity, LearnedInvariant

__all__ = ["Discovery", "write_results", "load_discovery"]


@dataclass
class Discovery:
    """What a discovery returns (the payload of ``sciml.fit(Deflation, ...)`` and of ``Deflation.load``).

    Attributes:
        status, message: how it ended (a budget stop or an interruption keeps the candidates finished so far).
        n_conserved: the count decided by the rule.
        decision: the rule's evidence (log-losses, gaps, thresholds, margin; ``None`` before any candidate).
        laws: learned quantities :math:`H_1..H_K` as callables (all candidates; ``conserved``: the counted).
        fits: per-candidate losses, statistics and timings.
        config: the run's config.
        dim: state dimension ``d``; n_dof: ``N`` of a ``qp`` layout, else ``None``.
        seconds: wall-clock seconds of the training, resumed sessions included.
        split: training and held-out trajectory indices.
        run_dir: where the files are (``None``: none written).
        rule: the count rule that decided (``None`` when read back for a rule that is not registered).
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
    rule: CountRule | None = None

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
        """JSON-ready summary (``summary.json``; what ``sciml discover --json`` prints)."""
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
            "n_dof": self.n_dof, "seconds": self.seconds, "seconds_per_law": [f.seconds for f in self.fits],
            "decision": asdict(d) if d else None,
            "rule_spec": rule_spec(self.rule) if self.rule is not None else None,
            "laws": [{"index": law.index, "poly_degree": _poly_degree(law.module)} for law in self.laws],
            "config": config_to_dict(self.config),
        }


def _poly_degree(module: ConservedQuantity) -> int | None:
    return int(module.poly.degree) if module.poly is not None else None


def write_results(run: RunDir, res: Discovery) -> dict[str, Path]:
    """Write ``summary.json``, ``results.h5``, ``H<k>.pt`` and (with a decision) ``loss_vs_k.png`` into
    ``run`` (each atomically); returns them by name."""
    from .plots import plot_losses

    out = {"summary": run.path / "summary.json"}
    atomic_write_text(out["summary"], json.dumps(res.summary(), indent=1, default=str))
    arrays: dict[str, Any] = {
        "losses": np.array(res.losses), "train_losses": np.array([f.train_loss for f in res.fits]),
        "train_trajectories": res.split[0], "heldout_trajectories": res.split[1],
        "history": {f"H{f.index}": np.array(f.history) for f in res.fits},
    }
    d = res.decision
    out["results"] = run.write_results(arrays, {"n_conserved": res.n_conserved, "margin": d.margin if d else np.nan,
                                                "status": res.status.value})
    for law in res.laws:
        out[f"H{law.index}"] = run.path / f"H{law.index}.pt"
        atomic_torch_save(law.module.state_dict(), out[f"H{law.index}"])
    if d is not None:
        out["plot"] = plot_losses(res, run.path / "loss_vs_k.png")
    return out


def _decision(d: dict[str, Any] | None) -> CountDecision | None:
    if d is None:
        return None
    tup = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return CountDecision(**tup)


def _rule(spec: dict[str, Any] | None) -> CountRule | None:
    if spec is None or spec["name"] not in COUNT_RULES:
        return None
    return COUNT_RULES.resolve(spec["name"], **spec["params"])


def load_discovery(run_dir: str | Path, *, device: str | torch.device = "cpu") -> Discovery:
    """The :class:`Discovery` of a finished (or stopped) run, read back from its files.

    Raises:
        DataError: ``run_dir`` holds no discovery's results (or they are unreadable).
    """
    import h5py

    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise DataError(f"{run_dir}: no summary.json; not the folder of a discovery that has finished or stopped "
                        "(run `sciml discover FILE.h5 --out DIR`, or continue it with --resume)")
    try:
        summ = json.loads(path.read_text())
        cfg = load_config(summ["config"], DiscoveryConfig)
        with h5py.File(run_dir / "results.h5", "r") as fh:
            split = (np.asarray(fh["train_trajectories"]), np.asarray(fh["heldout_trajectories"]))
            hist = {k: np.asarray(v).tolist() for k, v in fh["history"].items()} if "history" in fh else {}
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{run_dir}: the discovery's results are unreadable ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); run it again") from None
    fits = [LawFit(k + 1, summ["losses"][k], summ["train_losses"][k], st, summ["seconds_per_law"][k],
                   hist.get(f"H{k + 1}", [])) for k, st in enumerate(summ["heldout_statistics"])]
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    laws = []
    for entry, fit in zip(summ["laws"], fits):
        laws.append(LearnedInvariant(_network(run_dir / f"H{entry['index']}.pt", summ["dim"], entry["poly_degree"],
                                              cfg, torch.device(device), dtype), entry["index"], fit.loss))
    return Discovery(Status(summ["status"]), summ["message"], summ["n_conserved"], _decision(summ.get("decision")),
                     laws, fits, cfg, summ["dim"], summ.get("n_dof"), summ["seconds"], split, run_dir,
                     _rule(summ.get("rule_spec")))


def _network(path: Path, dim: int, poly_degree: int | None, cfg: DiscoveryConfig, device: torch.device,
             dtype: torch.dtype) -> ConservedQuantity:
    """A candidate network of the run's architecture with the state dict in ``path``."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        # the head loads its own columns and atoms (MonomialFeatures is self-describing); its coefficients'
        # count is the saved one
        poly = MonomialFeatures(dim, poly_degree) if poly_degree else None
        coef = torch.zeros(state["coef"].shape[0], dtype=torch.float64) if poly is not None else None
        net = cfg.network
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten: leave the caller's RNG alone
            m = ConservedQuantity(dim, torch.zeros(dim), torch.ones(dim), net.width, net.depth, net.activation,
                                  poly=poly, coef=coef, raw_inputs=net.inputs == "raw",
                                  input_matrix=torch.eye(dim) if net.inputs == "whitened" else None).to(device, dtype)
        m.load_state_dict(state)
    except (OSError, RuntimeError, EOFError, KeyError) as e:
        raise DataError(f"{path}: unreadable learned quantity ({type(e).__name__}); run the discovery again") \
            from None
    return m
