"""Settings of a discovery by neural deflation (the TOML keys of ``sciml discover --config``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..run import ConfigError, param
from .count import COUNT_RULES
from .features import DEFAULT_FEATURES, FEATURES

__all__ = ["NetworkConfig", "DiscoveryConfig"]


@dataclass(frozen=True)
class NetworkConfig:
    """The MLP of each candidate ``H_k``."""

    width: int = param(64, ge=1, doc="hidden width")
    depth: int = param(3, ge=1, doc="hidden layers")
    activation: str = param("silu", choices=("silu", "tanh", "softplus", "gelu", "sin"), doc="activation")
    inputs: str = param("auto", choices=("auto", "standardised", "raw", "whitened"),
                        doc="what the MLP sees: 'standardised' z = (x - mean)/std per coordinate, 'raw' the state x, "
                            "'auto' z except a coordinate whose std exceeds 4 robust spreads (IQR/1.349), which is "
                            "centred on its median and divided by its robust spread (a coordinate that winds far, "
                            "like the pendulum's q: docs/conservation.md), 'whitened' z rotated and scaled to unit covariance "
                            "(principal axes: a drifting centre of mass no longer squeezes the relative "
                            "coordinates); the loss is standardised either way")


@dataclass(frozen=True)
class DiscoveryConfig:
    """Settings of one discovery (``sciml.fit(Deflation, config, trajectories)``; ``docs/conservation.md``)."""

    max_laws: int = param(0, ge=0, doc="candidates to train; 0: d-1 (all integrals) or N+1 (involution)")
    involution: bool = param(False, doc="count integrals in involution (Poisson-bracket term, at most N)")
    steps: int = param(3000, ge=1, doc="Adam steps of the cosine learning-rate decay per trained candidate (an exact "
                                        "polynomial takes none); with patience, the fewest: it may go on at "
                                        "lr_final up to max_steps while the validation loss falls")
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
    rule: str = param("floor", choices=COUNT_RULES.names(),
                      doc="count rule (sciml.conservation.COUNT_RULES): 'floor' (FloorRule: candidates within "
                          "floor_decades of their loss floor) or 'jump' (JumpRule: the largest jump in log loss)")
    min_jump: float = param(1.0, gt=0, doc="jump rule: smallest decisive jump, decades of loss")
    floor_decades: float = param(0.75, gt=0, doc="floor rule: decades above its floor a counted candidate may sit "
                                                 "(calibrated: docs/conservation.md; 1.0 for floor_reference 'delta')")
    floor_exact_decades: float = param(2.0, gt=0, doc="floor rule: the same for an exact polynomial (its loss only "
                                                      "has to show it independent of the earlier laws)")
    floor_reference: str = param("candidate", choices=("candidate", "delta"),
                                 doc="floor rule: measure each candidate against its own floor (the loss an exact "
                                     "integral with its gradients would have: 'candidate', with the independence "
                                     "check) or against the global floor delta^2 ('delta')")
    independence_decades: float = param(1.5, gt=0, doc="floor rule with own floors: a counted candidate's held-out "
                                                       "median deflation factor stays below 10^this (a typical "
                                                       "angle to the earlier laws above ~10 degrees at 1.5)")
    veto: bool = param(False, doc="jump rule: also require held-out constancy < constancy_tol (off: it "
                                  "cost more right counts than it saved across the catalogue)")
    constancy_tol: float = param(0.5, gt=0, doc="largest held-out relative spread of a counted H (veto, warnings)")
    statistic: str = param("median", choices=("median", "median_value", "mean", "geomean", "trimmed"),
                           doc="held-out losses -> one number per candidate; median_value: the larger of the "
                               "median per-point loss and the value spread (both 0 for an exact integral)")
    seed: int = param(0, doc="seed of the split, the initialisations and the batches (candidate_seeds)")
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
    library_max_features: int = param(2000, ge=1, doc="the library's size cap: its monomial degree is lowered until "
                                                      "it has at most this many monomials, and atom terms are added "
                                                      "(whole stages) only within it (d = 12 keeps degree 4: 1819)")
    library_features: tuple[str, ...] = param(DEFAULT_FEATURES, doc="atom families of the library beside the "
                                              "monomials (sciml.conservation.FEATURES: log_abs, inv_abs, inv_dist, "
                                              "exp, exp_neg, exp_diff, cos, sin, or a registered one); each atom is "
                                              "used only where it is well-conditioned on the data; []: polynomials "
                                              "only")
    library_atom_degree: int = param(2, ge=0, doc="atom terms: each atom times the monomials of degree 0..this "
                                                  "(lowered to fit library_max_features); tried after every "
                                                  "polynomial stage")
    library_head_features: int = param(500, ge=1, doc="an inexact library solution starts a network on the largest "
                                                      "polynomial stage with at most this many columns (the head's "
                                                      "cost per training step)")
    library_points: int = param(10_000, ge=10, doc="training points the polynomial start is fitted on")
    library_exact_factor: float = param(4.0, gt=0, doc="a polynomial is an exact integral when its ratio R is at most "
                                                        "this times the ratio its finite-difference error alone "
                                                        "would give (then it is taken as it is)")
    patience: int = param(10, ge=0, doc="after `steps`, a candidate trains on (at lr_final, up to max_steps) until "
                                        "its validation loss has not fallen below its best / patience_factor for "
                                        "this many evaluations; 0: exactly `steps` steps")
    patience_factor: float = param(1.25, gt=1, doc="patience: the factor by which the validation loss must fall to "
                                                   "count as an improvement")
    restart_factor: float = param(2.0, ge=0, doc="patience: at the end of a cosine, a candidate above the count's bar "
                                                 "(10^floor_decades x its floor) whose best validation loss of the "
                                                 "cosine's second half is this factor below its first half's gets "
                                                 "another cosine of `steps` (within max_steps); 0: never")
    eval_every: int = param(100, ge=1, doc="patience: steps between validation losses (after the warm-up)")
    val_points: int = param(2048, ge=16, doc="patience: held-out points of the validation loss (a fixed strided "
                                             "subset: no random draw)")
    max_steps: int = param(0, ge=0, doc="patience: the most steps a candidate trains (beyond `steps` at lr_final); "
                                        "0: 2 x steps; without patience, `steps` is the count")
    finish_steps: int = param(0, ge=0, doc="L-BFGS iterations on the full-batch objective after the Adam steps "
                                           "(0: none; docs/conservation.md: the diagnosis)")
    finish: str = param("lbfgs", choices=("lbfgs", "lm"), doc="the finish of finish_steps: L-BFGS on a fixed "
                        "batch, or Levenberg-Marquardt (damped Gauss-Newton) steps on fresh batches of 1024 "
                        "training points, only for a candidate whose validation loss the count would refuse")
    hamiltonian_steps: int = param(1000, ge=0, doc="Hamiltonian start (qp data): one more initialisation per "
                                   "candidate, a network fitted in this many steps to the energy gradient the "
                                   "velocities show, (-pdot, qdot), while the energy is not yet in the span of the "
                                   "earlier laws; 0: off")
    hamiltonian_lr: float = param(3e-4, gt=0, doc="Hamiltonian start: its cosine decay starts at this rate (it is "
                                  "refined, not retrained; cfg.lr throws it out of the energy's basin)")
    warmup_fraction: float = param(0.1, gt=0, lt=1, doc="fraction of the steps all initialisations train")
    dtype: str = param("float32", choices=("float32", "float64"), doc="training precision")
    log_every: int = param(50, ge=1, doc="steps between rows of metrics.jsonl")
    checkpoint_every: int = param(500, ge=0, doc="steps between checkpoints (0: only at the end); a resumed run "
                                                 "continues from the latest")
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def __post_init__(self) -> None:
        for f in self.library_features:  # a name must be registered (an object is checked when resolved)
            if isinstance(f, str) and f not in FEATURES:
                raise ConfigError("library_features", f"unknown feature {f!r}; choose from {list(FEATURES.names())} "
                                  "or register it first (sciml.conservation.FEATURES.register)")
