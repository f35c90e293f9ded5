"""Configs of ``sciml pinn``: frozen dataclasses loaded from TOML (see ``configs/pinn/*.toml``).

Choices of strategy keys are the names of their registries (``laplacian.method``: :data:`LAPLACIANS`,
``sampling.sampler``: :data:`~sciml.pinn.sampling.SAMPLERS`). ``problem.family`` names a family of the
catalogue (``problems/pdes.py``; with ``problem.kind = "stationary"`` a benchmark of
``problems/highd.py``, e.g. ``"poisson_two_body"``), which only the command line reads; the library trains the
:class:`~sciml.pinn.problem.PDEProblem` it is given and records its name and dimension here. The
``[transfer]`` table belongs to :class:`sciml.transfer.TransferRunConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sciml.autodiff import LAPLACIANS
from sciml.run import param

from .sampling import SAMPLERS

__all__ = ["ProblemConfig", "ModelConfig", "SamplingConfig", "LossConfig", "LaplacianConfig", "OptimConfig",
           "PINNConfig", "ACTIVATIONS"]

ACTIVATIONS = ("tanh", "sin", "sigmoid", "silu", "softplus", "gelu", "relu3")


@dataclass(frozen=True)
class ProblemConfig:
    kind: str = param("evolution", choices=("evolution", "stationary"),
                      doc="evolution: u(t, x) on a time interval; stationary: u(x), the network sees x only "
                          "(set from the problem a run trains on)")
    family: str = param("allen_cahn", doc="PDE family of the catalogue (problems/pdes.py), or for a stationary "
                                          "problem a benchmark of problems/highd.py (e.g. poisson_two_body), "
                                          "for the command line")
    value: float = param(0.0, doc="family parameter: eps (Allen-Cahn) or c (linear parabolic); for a stationary "
                                  "benchmark the seed of its coefficients")
    d: int = param(10, ge=1, doc="spatial dimension (set from the problem a run trains on)")
    name: str = param("", doc="the trained problem's own name, set by the method from the problem it is given")


@dataclass(frozen=True)
class ModelConfig:
    widths: tuple[int, ...] = param((300, 300), ge=1, doc="hidden widths (the paper: two layers of 300)")
    activation: str = param("tanh", choices=ACTIVATIONS, doc="relu3 = max(z,0)^3/6, the released code's")
    input_scale: str = param("auto", choices=("auto", "none"),
                             doc="auto: the first layer acts on inputs standardised by the training distribution "
                                 "(sciml.pinn.inputs; a coordinate of a d-ball point is about 1/sqrt(3d)); none: raw "
                                 "inputs (the SVD-PINN paper). Training from scratch only: a transfer trains the "
                                 "pre-trained network's weights as they are")


@dataclass(frozen=True)
class SamplingConfig:
    sampler: str = param("volume", choices=SAMPLERS.names(),
                         doc="ball sampler: uniform in volume, uniform in radius (the paper code's), or half "
                             "of each (mixed)")
    r_min: float = param(0.0, ge=0, lt=1, doc="smallest radius of the radial sampler")
    n_interior: int = param(1000, ge=1)
    n_boundary: int = param(500, ge=0)
    n_initial: int = param(500, ge=0, doc="initial points (unused by a stationary problem)")
    n_test: int = param(10000, ge=1, doc="held-out test points, drawn like the interior points")
    resample: bool = param(True, doc="draw fresh collocation points every step (fixed points over-fit in high d; "
                                     "false: one fixed set, the SVD-PINN reproduction and family runs)")


@dataclass(frozen=True)
class LossConfig:
    w_residual: float = param(1.0, ge=0)
    w_boundary: float = param(100.0, ge=0, doc="the released code weights boundary and initial MSE by 100")
    w_initial: float = param(100.0, ge=0)
    hard: str = param("none", choices=("none", "initial", "initial_boundary", "boundary"),
                      doc="hard constraints by the ansatz u = h(x) + (t - t0) [(R^2 - |x|^2)] N (soft otherwise); "
                          "boundary (stationary): u = g(x) + phi(x) N(x), phi the domain's distance factor")


@dataclass(frozen=True)
class LaplacianConfig:
    method: str = param("auto", choices=("auto", *LAPLACIANS.names()),
                        doc="auto: exact forward Laplacian for d <= 64, SDGD above")
    probes: int = param(16, ge=1, doc="Hutchinson probes / SDGD sampled dimensions")
    chunk_size: int | None = param(None, ge=1, doc="points per chunk (memory cap)")
    compile: str = param("auto", choices=("auto", "on", "off"),
                         doc="torch.compile the whole loss, derivatives inside, after a check against eager "
                             "(falls back to eager with a warning); auto: for the exact forward Laplacian, "
                             "time 3 eager steps and compile when the rest of the run (steps left x step time, "
                             "capped by optim.max_seconds) repays the compile (solver.compile_pays)")


@dataclass(frozen=True)
class OptimConfig:
    iters: int = param(20000, ge=0, doc="steps of the main optimiser (optim.optimizer)")
    optimizer: str = param("adam", choices=("adam", "spring"),
                           doc="adam: Adam at optim.lr; spring: natural-gradient steps with momentum in the dual "
                               "form (sciml.pinn.natural_gradient), step ng_lr, exact derivatives, one member")
    lr: float = param(1e-3, gt=0, doc="Adam learning rate")
    schedule: str = param("exponential", choices=("exponential", "cosine"),
                          doc="exponential: lr decay_rate^(i / decay_steps); cosine: from lr down to lr_min over the "
                              "Adam iterations; both after a linear warm-up and never below lr_min")
    decay_rate: float = param(1.0, gt=0, le=1, doc="lr multiplied by this every decay_steps (smoothly; exponential)")
    decay_steps: int = param(1000, ge=1)
    warmup: int = param(0, ge=0, doc="linear warm-up steps from lr / warmup to lr (0: none)")
    lr_min: float = param(0.0, ge=0, doc="the floor of the schedule (absolute; at most lr)")
    schedule_budget: bool = param(True, doc="with a wall-clock budget (max_seconds / --max-seconds), the decay "
                                            "follows the larger of the step and the time fraction, so it reaches "
                                            "lr_min when the budget ends if that comes before iters")
    lbfgs_iters: int = param(0, ge=0, doc="L-BFGS polishing iterations after Adam")
    lbfgs_lr: float = param(1.0, gt=0)
    lbfgs_points: int = param(0, ge=0, doc="interior points of the L-BFGS finish when resampling: one batch drawn "
                                           "when it starts, since a line search needs one loss (0: n_interior)")
    gn_iters: int = param(0, ge=0, doc="Levenberg-Marquardt (damped Gauss-Newton) steps after Adam and L-BFGS: "
                                       "exact derivatives, one (J^T J + lambda I) solve per step (docs/pinn.md)")
    gn_points: int = param(2048, ge=1, doc="interior points of each Levenberg-Marquardt step, fresh every step when "
                                           "resampling (fixed runs use their own points)")
    gn_damping: float = param(1e-3, gt=0, doc="the first damping lambda, relative to the mean diagonal of J^T J "
                                              "(adapted every step by the gain ratio)")
    ng_lr: float = param(0.03, gt=0, doc="the step eta of optimizer = spring; the schedule (warm-up, decay, "
                                         "floor lr_min / lr) scales it as it scales lr")
    ng_damping: float = param(1e-3, gt=0, doc="spring: lambda relative to the mean diagonal of J J^T")
    ng_momentum: float = param(0.99, ge=0, lt=1, doc="spring: mu, the weight of the last direction as the prior of "
                                                     "the next (0: each batch's own natural gradient)")
    max_seconds: float | None = param(None, gt=0, doc="wall-clock budget of the training, resumed sessions "
                                                      "included (the command line's --max-seconds wins)")


@dataclass(frozen=True)
class PINNConfig:
    """A PINN run: the problem's record, the network, collocation, loss, Laplacian and optimiser."""

    problem: ProblemConfig = field(default_factory=ProblemConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    laplacian: LaplacianConfig = field(default_factory=LaplacianConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = param(0, ge=0)
    dtype: str = param("float32", choices=("float32", "float64"))
    log_every: int = param(100, ge=1, doc="log metrics and the test error every this many steps")
    checkpoint_every: int = param(1000, ge=0)
