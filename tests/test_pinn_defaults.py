"""Accuracy-first defaults of ``sciml.pinn`` (issue #18, item 3): the learning-rate schedule (warm-up, cosine or
exponential decay to a floor, never increasing after the warm-up), fresh points every step by default (the
paper reproduction configs keep their fixed points), and ``laplacian.compile = "auto"`` deciding from the
run's length and budget (a fake clock: no real compile here)."""

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
import torch

from problems.pdes import allen_cahn, family_member
from sciml.autodiff import EvolutionDerivatives, HessianTrace, evolution_terms
from sciml.pinn import (SAMPLERS, Ball, DistanceAnsatz, PINNConfig, Trainer, ball_distance, build_network,
                        identity_parametrisation, sample_domain)
from sciml.pinn.config import OptimConfig
from sciml.pinn.problem import InitialLift
from sciml.pinn.solver import (COMPILE_GAIN, COMPILE_SECONDS, ansatz_terms, compile_pays, distance_terms, lr_factor,
                               stationary_terms, with_hard_constraints)
from sciml.run import ConfigError, load_config
from sciml.transfer import TransferRunConfig

ROOT = Path(__file__).resolve().parents[1]


def cfg_of(**over) -> PINNConfig:
    base = {"problem": {"family": "allen_cahn", "value": 1.0, "d": 2}, "model": {"widths": [8]},
            "sampling": {"n_interior": 16, "n_boundary": 8, "n_initial": 8, "n_test": 50},
            "optim": {"iters": 40, "lr": 1e-2}, "log_every": 1000}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(base, PINNConfig)


def trainer(cfg: PINNConfig, **kw) -> Trainer:
    torch.manual_seed(0)
    m = build_network(3, cfg.model.widths)
    return Trainer(allen_cahn(1.0, 2), m, identity_parametrisation(m), cfg, **kw)


# ----------------------------------------------------------------------------------------------------
# The schedule
@pytest.mark.parametrize("schedule,rate", [("cosine", 1.0), ("exponential", 0.1)])
def test_schedule_warms_up_then_never_increases_down_to_its_floor(schedule, rate):
    o = OptimConfig(iters=1000, lr=2e-3, lr_min=1e-5, warmup=100, schedule=schedule, decay_rate=rate,
                    decay_steps=200)
    f = [lr_factor(o)(i) for i in range(1500)]
    assert f[0] == pytest.approx(1 / 100) and f[99] == 1.0  # linear warm-up reaching the peak lr, no spike
    assert all(b > a for a, b in zip(f[:99], f[1:100]))
    assert all(b <= a for a, b in zip(f[99:], f[100:]))  # after the warm-up: never up
    floor = 1e-5 / 2e-3
    assert min(f) >= min(floor, f[0]) and f[-1] == pytest.approx(floor)
    if schedule == "cosine":  # half-way through the decay: the mean of peak and floor
        assert f[100 + 450] == pytest.approx(floor + (1 - floor) / 2)
    else:  # the exponential decay: rate per decay_steps, counted from the warm-up's end
        assert f[100 + 200] == pytest.approx(0.1) and f[100 + 400] == pytest.approx(0.01)


def test_exponential_without_warmup_or_floor_is_the_old_decay():
    o = OptimConfig(iters=300, lr=5e-3, decay_rate=0.5, decay_steps=200)
    assert all(lr_factor(o)(i) == 0.5 ** (i / 200) for i in range(300))


def test_trainer_follows_the_schedule_and_a_floor_above_lr_is_refused():
    cfg = cfg_of(optim={"iters": 12, "lr": 1e-2, "lr_min": 1e-4, "warmup": 4, "schedule": "cosine"})
    tr = trainer(cfg)
    f = lr_factor(cfg.optim)
    for i in range(12):
        assert tr.opts[0].param_groups[0]["lr"] == pytest.approx(1e-2 * f(i))  # the lr step i used
        tr.step(i)
    with pytest.raises(ConfigError, match="optim.lr_min"):
        trainer(cfg_of(optim={"lr": 1e-3, "lr_min": 1e-2}))


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
def test_schedule_with_a_budget_decays_by_the_larger_of_step_and_time_fractions(schedule):
    o = OptimConfig(iters=1000, lr=1e-2, lr_min=1e-4, warmup=10, schedule=schedule, decay_rate=0.01, decay_steps=990)
    tau = [0.0]
    f = lr_factor(o, lambda: tau[0])
    assert [f(i) for i in range(1000)] == [lr_factor(o)(i) for i in range(1000)]  # no time used: the step schedule
    assert f(3) == pytest.approx(4 / 10)  # the warm-up counts steps only
    tau[0] = 0.5  # half the budget gone at step 20: the schedule is half-way whatever the step count
    assert f(20) == pytest.approx(lr_factor(o)(10 + 495))
    tau[0] = 0.1  # the step fraction ahead of the time: the steps rule
    assert f(10 + 495) == pytest.approx(lr_factor(o)(10 + 495))
    tau[0] = 1.0  # the budget's end: the floor, from any step
    assert f(20) == pytest.approx(1e-2) and f(500) == pytest.approx(1e-2)


@pytest.mark.parametrize("follow", [True, False])
def test_a_budget_cut_run_ends_at_the_floor_when_the_schedule_follows_the_budget(follow):
    # a fake clock of 1 s a read, two reads a step: after step i, 2i + 1 s of a 40 s budget are gone, so the
    # budget ends after 20 of the 1,000 steps; a step-only cosine would still be at its peak there
    cfg = cfg_of(optim={"iters": 1000, "lr": 1e-2, "lr_min": 1e-4, "schedule": "cosine", "max_seconds": 40.0,
                        "schedule_budget": follow})
    tr = trainer(cfg, clock=fake_clock(1.0))
    lrs = []
    for i in range(20):
        lrs.append(tr.opts[0].param_groups[0]["lr"])
        tr.step(i)
    assert tr.wall_seconds == pytest.approx(39.0) and tr.train_seconds == pytest.approx(20.0)
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    # the lr of step 19: set at the end of step 18, 36 s into the budget (steps and the gaps between them)
    cosine = 1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi * (36 / 40 if follow else 19 / 1000)))
    assert lrs[-1] == pytest.approx(cosine, rel=1e-9)
    assert (lrs[-1] < 4e-4) if follow else (lrs[-1] > 0.99 * 1e-2)
    st = tr.state()  # resumed, the budget used so far carries over (not the gap between the sessions)
    again = trainer(cfg, clock=fake_clock(1.0))
    again.load(st)
    assert again.wall_seconds == pytest.approx(39.0) and again._budget_fraction() == pytest.approx(39 / 40)


# ----------------------------------------------------------------------------------------------------
# Fresh points by default; the reproduction configs keep theirs
def test_resample_is_the_default_and_reproduction_configs_keep_fixed_points():
    assert load_config({}, PINNConfig).sampling.resample is True
    for name in ("allen_cahn_pretrain", "allen_cahn_transfer", "linear_parabolic"):
        assert load_config(ROOT / "configs" / "pinn" / f"{name}.toml", TransferRunConfig).sampling.resample is False
    for name in ("allen_cahn_10d", "allen_cahn_100d"):  # the accuracy-first configs: fresh points, exact data,
        c = load_config(ROOT / "configs" / "pinn" / f"{name}.toml", PINNConfig)  # a budget the schedule follows
        assert c.sampling.resample and c.loss.hard == "initial_boundary" and c.optim.max_seconds == 600
        assert c.optim.schedule == "cosine" and c.optim.schedule_budget and c.laplacian.method == "forward"
    tr = trainer(cfg_of(optim={"iters": 3}))
    first = tr.points.x_in.clone()
    tr.step(0)
    assert not torch.equal(first, tr.points.x_in)  # the default draws new points every step


# ----------------------------------------------------------------------------------------------------
# compile = "auto" decides from the budget
def test_compile_pays_when_the_saving_exceeds_the_one_off_cost():
    n_break = COMPILE_SECONDS / COMPILE_GAIN  # eager seconds of the rest of the run where compiling breaks even
    assert compile_pays(0.1, math.ceil(1.01 * n_break / 0.1))
    assert not compile_pays(0.1, math.floor(0.99 * n_break / 0.1))
    assert not compile_pays(1.0, 10**6, seconds_left=0.99 * n_break)  # a budget shorter than the break-even
    assert compile_pays(1.0, 10**6, seconds_left=1.01 * n_break)
    assert not compile_pays(10.0, 0)


def fake_clock(step_seconds: float):
    """Each step reads the clock twice (start, end): every read advances by one step's time."""
    c = itertools.count()
    return lambda: next(c) * step_seconds


@pytest.mark.parametrize("step_s,iters,budget,expect", [
    (1e-3, 5000, None, False),   # a short run: 5 s of steps cannot repay the compile
    (1.0, 5000, None, True),     # 5000 s of slow steps repay it
    (1.0, 5000, 60.0, False),    # ... unless the wall-clock budget is a minute
])
def test_auto_compile_decides_after_timing_eager_steps(step_s, iters, budget, expect):
    cfg = cfg_of(optim={"iters": iters, "max_seconds": budget}, laplacian={"method": "forward", "compile": "auto"})
    tr = trainer(cfg, clock=fake_clock(step_s))
    assert not tr.use_compile
    for i in range(3):  # the probe steps run eager
        assert not tr.use_compile
        tr.step(i)
    assert tr.use_compile is expect
    assert tr.train_seconds == pytest.approx(3 * step_s)


def test_auto_compile_weighs_the_budget_fit_enforces_not_only_the_configs():
    """``--max-seconds`` (fit's budget, set through ``set_budget``) wins over ``optim.max_seconds``."""
    cfg = cfg_of(optim={"iters": 5000, "max_seconds": 10**6}, laplacian={"method": "forward", "compile": "auto"})
    tr = trainer(cfg, clock=fake_clock(1.0))
    tr.budget_seconds = 60.0  # what PINN.set_budget does with fit's max_seconds
    for i in range(3):
        tr.step(i)
    assert tr.use_compile is False  # a minute cannot repay the compile; the config's budget alone would


def test_auto_never_compiles_a_stochastic_laplacian_and_on_off_are_obeyed():
    slow = fake_clock(10.0)
    cfg = cfg_of(optim={"iters": 5000}, laplacian={"method": "sdgd", "probes": 1, "compile": "auto"})
    tr = trainer(cfg, clock=slow)
    for i in range(4):
        tr.step(i)
    assert not tr.use_compile  # SDGD gains nothing from compiling (experiments/bench_pinn_compile.py)
    assert trainer(cfg_of(laplacian={"method": "forward", "compile": "on"})).use_compile
    assert not trainer(cfg_of(optim={"iters": 10**6}, laplacian={"compile": "off"}), clock=slow).use_compile


# ----------------------------------------------------------------------------------------------------
# The pieces that make a resampled stationary step cheap and accurate
def test_mixed_sampler_is_half_radial_half_volume():
    """P(r < 1/2) = (1/2)(1/2) + (1/2)(1/2)^10 in d = 10: the radial half's and the volume half's."""
    x = sample_domain(Ball(10), 40000, sampler=SAMPLERS.resolve("mixed"), generator=torch.Generator().manual_seed(0),
                      dtype=torch.float64)
    r = x.norm(dim=1)
    assert (r <= 1).all()
    assert float((r < 0.5).double().mean()) == pytest.approx(0.25 + 0.5**11, abs=0.01)
    assert float((r[:20000] < 0.5).double().mean()) == pytest.approx(0.5, abs=0.015)  # the radial half


def test_ball_distance_terms_in_closed_form_equal_the_hessian_trace():
    ball = Ball(6, radius=1.5, center=(0.1, 0.0, -0.2, 0.3, 0.0, 0.5))
    x = sample_domain(ball, 50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for normalised in (True, False):
        phi = ball_distance(ball, normalised=normalised)
        closed = distance_terms(DistanceAnsatz(phi), x)[1]
        ref = stationary_terms(lambda p, z: phi(z), {}, x, method=HessianTrace())  # the generic route
        s = 1 / 1.5**2 if normalised else 1.0
        assert torch.allclose(closed.lap, torch.full((50,), -2 * 6 * s, dtype=torch.float64), atol=1e-12)
        for a, b in ((closed.u, ref.u), (closed.grad, ref.grad), (closed.lap, ref.lap)):
            assert torch.allclose(a, b, atol=1e-12)


def _hessian_terms(fn, t, x):
    """The generic route: a (d+1) x (d+1) Hessian per point of the per-point ``fn(t, x)`` (float64 oracle)."""
    return evolution_terms(lambda p, z: fn(z[0], z[1:]), {}, t, x, method=HessianTrace())


@pytest.mark.parametrize("family", ["allen_cahn", "linear_parabolic"])
def test_evolution_ansatz_terms_in_closed_form_equal_the_hessian_trace(family):
    """The ``initial_boundary`` ansatz of the catalogue's families takes no Hessian per point and step: the
    factor (t - t0)(R^2 - |x - c|^2) and the radial initial data have closed-form terms, equal to the float64
    Hessian trace of the same callables (points kept off the origin, where the parabolic data have a cone)."""
    d = 7
    prob = with_hard_constraints(family_member(family, 0.7, d), "initial_boundary")
    g = torch.Generator().manual_seed(5)
    x = sample_domain(Ball(d), 40, generator=g, dtype=torch.float64)
    x = x * (0.05 + 0.9 * torch.rand(40, 1, generator=g, dtype=torch.float64)) / x.norm(dim=1, keepdim=True)
    t = torch.rand(40, generator=g, dtype=torch.float64) * 0.5
    assert hasattr(prob.hard.lift, "terms") and hasattr(prob.hard.factor, "terms")
    closed_a, closed_b = ansatz_terms(prob.hard, t, x)
    tau, s = t, 1 - (x * x).sum(1)
    assert torch.allclose(closed_b.lap_x, -2 * d * tau) and torch.allclose(closed_b.u_t, s)  # by hand
    for fn, closed in ((prob.hard.lift, closed_a), (prob.hard.factor, closed_b)):
        ref = _hessian_terms(fn, t, x)
        for a, b in zip(dataclasses.astuple(closed), dataclasses.astuple(ref)):
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_initial_lift_without_closed_form_uses_the_hessian_over_x():
    """User data without ``terms``: the lift's terms come from the exact Hessian over x alone (u_t = 0)."""
    lift = InitialLift(lambda x: torch.sin(x[..., 0]) * torch.exp(x[..., 1]) + (x * x).sum(-1))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 3, generator=g, dtype=torch.float64)
    t = torch.rand(30, generator=g, dtype=torch.float64)
    got = EvolutionDerivatives(*lift.terms(t, x))
    s0, e1 = torch.sin(x[:, 0]), torch.exp(x[:, 1])
    assert torch.allclose(got.u, s0 * e1 + (x * x).sum(1))
    assert torch.equal(got.u_t, torch.zeros(30, dtype=torch.float64))
    assert torch.allclose(got.grad_x[:, 0], torch.cos(x[:, 0]) * e1 + 2 * x[:, 0])
    assert torch.allclose(got.lap_x, -s0 * e1 + s0 * e1 + 6)  # d^2/dx0^2 + d^2/dx1^2 + 2 * 3


def test_lbfgs_finish_of_a_resampled_run_trains_on_one_batch_drawn_when_it_starts():
    """A line search compares losses, so they must be of one batch: fresh points every Adam step, then one
    batch of ``optim.lbfgs_points`` for the whole finish, and the finish lowers the loss on it."""
    tr = trainer(cfg_of(optim={"iters": 3, "lbfgs_iters": 4, "lbfgs_points": 40}))
    seen = []
    for i in range(7):
        tr.step(i)
        seen.append(tr.points.x_in)
    assert all(a.shape[0] == 16 for a in seen[:3]) and not torch.equal(seen[0], seen[1])
    assert seen[3].shape[0] == 40 and all(s is seen[3] for s in seen[4:])
    with torch.no_grad():
        first = float(tr.loss()[0])
    for i in range(7, 10):  # past the configured steps the trainer keeps its L-BFGS batch
        tr.step(i)
    assert tr.points.x_in is seen[3]
    with torch.no_grad():
        assert float(tr.loss()[0]) < first


# ----------------------------------------------------------------------------------------------------
# The shipped configs
@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("configs/pinn/*.toml")),
                         ids=lambda p: p.name)
def test_every_shipped_pinn_config_loads_and_reproductions_keep_the_papers_inputs(path):
    from sciml.run import load_config
    from sciml.transfer import TransferRunConfig

    cfg = load_config(path, TransferRunConfig)  # a PINNConfig with the [transfer] table: reads every file
    reproduction = ("pretrain" in path.name or "linear_parabolic" in path.name) and "resampled" not in path.name
    if reproduction:  # the paper's reproductions: raw inputs
        assert cfg.model.input_scale == "none" and cfg.sampling.resample is False
