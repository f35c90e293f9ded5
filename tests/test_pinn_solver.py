"""PINN solver: samplers, a small problem trained to an accuracy an untrained or wrong model cannot
reach, hard-constraint derivatives against the exact Hessian, d = 100, L-BFGS, compile, registries."""

import math

import pytest
import torch

from problems.pdes import allen_cahn, family_member
from sciml import fit
from sciml.autodiff import LAPLACIANS, HessianTrace, evolution_terms
from sciml.pinn import (PINN, SAMPLERS, Ball, Box, HardDirichlet, PDEProblem, PINNConfig, RadialUniformBall, Trainer,
                        UniformBall, build_network, identity_parametrisation, sample_boundary, sample_domain)
from sciml.pinn.solver import _ansatz_terms, predict, relative_l2
from sciml.run import ConfigError, load_config


def train(cfg, problem=None, **kw):
    """``fit(PINN, ...)`` on ``problem`` or the catalogue member the config names."""
    p = cfg.problem
    return fit(PINN, cfg, problem if problem is not None else family_member(p.family, p.value, p.d), **kw)


def small_cfg(**over):
    base = {"problem": {"family": "allen_cahn", "value": 1.0, "d": 2}, "model": {"widths": [32, 32]},
            "sampling": {"n_interior": 256, "n_boundary": 128, "n_initial": 128, "n_test": 2000},
            "loss": {"w_boundary": 10.0, "w_initial": 10.0},
            "optim": {"iters": 300, "lr": 5e-3, "decay_rate": 0.5, "decay_steps": 200}, "log_every": 100}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(base, PINNConfig)


def test_volume_and_radial_samplers():
    gen = torch.Generator().manual_seed(0)
    ball = Ball(d=10)
    r_vol = sample_domain(ball, 20000, sampler=UniformBall(), generator=gen).norm(dim=1)
    r_rad = sample_domain(ball, 20000, sampler=RadialUniformBall(), generator=gen).norm(dim=1)
    assert r_vol.max() <= 1 and r_rad.max() <= 1
    # volume-uniform: P(r < 0.9) = 0.9^10 = 0.349; radial-uniform: mean radius 1/2
    assert abs(float((r_vol < 0.9).float().mean()) - 0.9**10) < 0.015
    assert abs(float(r_rad.mean()) - 0.5) < 0.01
    assert float(RadialUniformBall(0.2).radii(1000, ball, gen, None, torch.float32).min()) >= 0.2
    assert torch.allclose(sample_boundary(ball, 100, generator=gen).norm(dim=1), torch.ones(100))
    box = Box((0.0, -1.0), (1.0, 2.0))
    xb = sample_boundary(box, 200, generator=gen)
    on_face = ((xb[:, 0] == 0) | (xb[:, 0] == 1) | (xb[:, 1] == -1) | (xb[:, 1] == 2))
    assert bool(on_face.all())
    xi = sample_domain(box, 500, generator=gen)
    assert bool(((xi[:, 0] >= 0) & (xi[:, 0] <= 1) & (xi[:, 1] >= -1) & (xi[:, 1] <= 2)).all())


def test_small_problem_trains_below_threshold():
    cfg = small_cfg()
    res = train(cfg)
    tr = res.payload.trainer
    assert res.ok
    first, last = tr.history[0][1], tr.history[-1][1]
    assert first > 0.9                # the (one-step) untrained network is far off
    assert last < 0.15, tr.history    # the trained one is close to the exact solution
    assert math.isclose(tr.history[-1][2], last**2, rel_tol=1e-6)  # rel_l2_sq is the square
    # the same network against another member's exact solution is far off: the threshold discriminates
    other = allen_cahn(0.0, 2).exact(tr.test.t, tr.test.x)
    u = predict(tr.module, tr.par.params(), tr.test.t, tr.test.x, t_shift=tr.t_shift)
    assert relative_l2(u, other)[0] > 0.3


def test_hard_constraint_terms_match_exact_hessian():
    """u = A + B N by the product rule vs the exact Hessian trace of the composed function."""
    d = 3
    torch.manual_seed(0)
    net = build_network(d + 1, (8, 8)).double()
    params = dict(net.named_parameters())
    hard = HardDirichlet(lift=lambda t, x: torch.exp(-t) * torch.cos(x.sum()),
                         factor=lambda t, x: t * (1 - (x * x).sum()))
    t = torch.rand(20, dtype=torch.float64)
    x = torch.randn(20, d, dtype=torch.float64) * 0.5
    n_terms = evolution_terms(net, params, t, x)
    got = _ansatz_terms(hard, n_terms, t, x)

    def composed(p, z):
        return hard.lift(z[0], z[1:]) + hard.factor(z[0], z[1:]) * net(z[None])[0, 0]

    ref = evolution_terms(composed, params, t, x, method=HessianTrace())
    for a, b in zip((got.u, got.u_t, got.grad_x, got.lap_x), (ref.u, ref.u_t, ref.grad_x, ref.lap_x)):
        assert torch.allclose(a, b, atol=1e-10)
    assert torch.allclose(predict(net, params, t, x, hard=hard), ref.u, atol=1e-12)


def test_user_defined_problem_with_hard_constraints_trains():
    """The docs' recipe: the heat equation u_t = Lap u on the 2-d unit disc, exact solution known."""
    def exact(t, x):  # e^{-2t} sin(x1) sin(x2) solves u_t = Lap u
        return torch.exp(-2 * t) * torch.sin(x[..., 0]) * torch.sin(x[..., 1])

    # hard initial condition: u = sin(x1) sin(x2) + t N(t, x); the boundary stays a soft constraint
    prob = PDEProblem(name="heat2d", domain=Ball(2), t_range=(0.0, 0.5),
                      operator=lambda du, t, x: du.u_t - du.lap_x, rhs=lambda t, x: torch.zeros_like(t),
                      boundary=exact, initial=lambda x: exact(torch.zeros_like(x[..., 0]), x), exact=exact,
                      hard=HardDirichlet(lift=lambda t, x: torch.sin(x[0]) * torch.sin(x[1]),
                                         factor=lambda t, x: t, enforces_boundary=False))
    cfg = small_cfg(optim={"iters": 150})
    res = train(cfg, prob)
    tr = res.payload.trainer
    # untrained: 2.4 with standardised inputs (model.input_scale = "auto"), 0.9 with raw ones; 150 steps: 0.32
    assert tr.history[0][1] > 0.8 and tr.history[-1][1] < 0.4, tr.history


def test_d100_uses_an_unbiased_stochastic_laplacian():
    """At d = 100 the auto method is SDGD(16); its Laplacian averages to the exact one, and training runs."""
    from sciml.autodiff import ForwardLaplacian

    cfg = small_cfg(problem={"d": 100}, model={"widths": [32, 32]},
                    sampling={"n_interior": 32, "n_boundary": 16, "n_initial": 16, "n_test": 200, "sampler": "radial",
                              "resample": True},
                    loss={"hard": "initial_boundary"}, optim={"iters": 5}, log_every=5)
    res = train(cfg)
    tr = res.payload.trainer
    assert res.ok and type(tr.method).__name__ == "SDGD" and tr.method.num_dims == 16
    assert all(math.isfinite(v) for v in res.metrics.values())
    t, x = tr.points.t_in[:8], tr.points.x_in[:8]
    params = tr.par.params()
    exact = evolution_terms(tr.module, params, t, x, method=ForwardLaplacian()).lap_x.detach()
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([evolution_terms(tr.module, params, t, x, method=tr.method,
                                         noise=tr.method.draw(8, 100, generator=gen)).lap_x.detach()
                         for _ in range(300)])
    se = draws.std(0) / math.sqrt(draws.shape[0])
    assert bool(((draws.mean(0) - exact).abs() < 5 * se + 1e-6).all())
    assert float(draws.std(0).max()) > 0  # it is stochastic


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config({"optim": {"lr": -1.0}}, PINNConfig)
    with pytest.raises(ConfigError, match="sampling.sampler"):
        load_config({"sampling": {"sampler": "gaussian"}}, PINNConfig)
    with pytest.raises(ConfigError, match="model.widht"):
        load_config({"model": {"widht": 3}}, PINNConfig)


def test_lbfgs_polishing_lowers_the_loss():
    over = dict(problem={"d": 2}, model={"widths": [16, 16]},
                sampling={"n_interior": 64, "n_boundary": 32, "n_initial": 32, "n_test": 200},
                optim={"iters": 60, "lr": 5e-3})
    adam = train(small_cfg(**over))
    polished = train(small_cfg(**{**over, "optim": {"iters": 60, "lr": 5e-3, "lbfgs_iters": 40}}))
    assert polished.ok and polished.metrics["loss"] < 0.5 * adam.metrics["loss"]


def test_compiled_training_takes_the_eager_steps(can_compile):
    """``laplacian.compile = "on"``: the whole loss (SDGD noise, resampled points, hard-constraint terms as
    inputs) runs compiled after its check, and 12 float64 steps land on the eager run's parameters."""
    over = dict(problem={"d": 4}, model={"widths": [16, 16]}, dtype="float64",
                sampling={"n_interior": 64, "n_boundary": 32, "n_initial": 32, "n_test": 100, "resample": True},
                loss={"hard": "initial_boundary"}, optim={"iters": 12})
    eager = train(small_cfg(**over, laplacian={"method": "sdgd", "probes": 2, "compile": "off"}))
    comp = train(small_cfg(**over, laplacian={"method": "sdgd", "probes": 2, "compile": "on"}))
    te, tc = eager.payload.trainer, comp.payload.trainer
    assert tc.compiled and not te.compiled
    for k, v in te.par.theta.items():
        assert torch.allclose(tc.par.theta[k], v, rtol=1e-9, atol=1e-11), k
    assert abs(comp.metrics["loss"] - eager.metrics["loss"]) <= 1e-9 * abs(eager.metrics["loss"])
    # the steps moved the parameters, so the comparison could fail
    fresh = build_network(5, (16, 16)).double()
    assert not torch.allclose(te.par.theta["0.weight"], dict(fresh.named_parameters())["0.weight"])


def test_auto_compile_is_decided_later_and_for_the_forward_laplacian_only():
    """``on``/``off`` hold from the start; ``auto`` starts eager and times steps of the forward Laplacian only
    (the decision itself: tests/test_pinn_defaults.py)."""
    def made(iters, mode="auto", method="auto"):
        cfg = small_cfg(optim={"iters": iters}, laplacian={"compile": mode, "method": method})
        m = build_network(3, (8,))
        return Trainer(allen_cahn(1.0, 2), m, identity_parametrisation(m), cfg)

    assert made(5, "on").use_compile and not made(5000, "off").use_compile
    assert not made(5000).use_compile and made(5000)._probe == []  # eager until the probe steps are timed
    assert made(5000, method="sdgd")._probe is None and made(5, "on", method="sdgd").use_compile


def test_strategy_choices_come_from_the_registries():
    """Config choices are the registries' names; a registered name resolves to its strategy object."""
    from sciml.pinn.config import LaplacianConfig, SamplingConfig
    from sciml.pinn.network import laplacian_for

    with pytest.raises(ConfigError, match="laplacian.method"):
        load_config({"laplacian": {"method": "bogus"}}, PINNConfig)
    for name in LAPLACIANS.names():
        assert load_config({"laplacian": {"method": name}}, PINNConfig).laplacian.method == name
    assert load_config({"sampling": {"sampler": "radial"}}, PINNConfig).sampling.sampler == "radial"
    import dataclasses

    meta = {f.name: f.metadata for f in dataclasses.fields(SamplingConfig)}
    assert meta["sampler"]["choices"] == SAMPLERS.names() == ("volume", "radial", "mixed")
    assert {f.name: f.metadata for f in dataclasses.fields(LaplacianConfig)}["method"]["choices"] == \
        ("auto", *LAPLACIANS.names())
    assert SAMPLERS.resolve("radial", r_min=0.25) == RadialUniformBall(0.25)
    assert SAMPLERS.resolve("volume", r_min=0.25) == UniformBall()
    m = build_network(4, (8,))
    assert type(laplacian_for(m, "auto", d=3)).__name__ == "ForwardLaplacian"
    assert laplacian_for(m, "auto", d=100, probes=16).num_dims == 16
    assert laplacian_for(m, "sdgd", d=3, probes=16).num_dims == 3  # at most d dimensions
    assert laplacian_for(m, "hutchinson", probes=5).num_probes == 5
    obj = HessianTrace()
    assert laplacian_for(m, obj) is obj


def test_laplacian_option_overrides_the_config_and_is_recorded(tmp_path):
    """``fit(PINN, ..., laplacian=name)`` trains with that method and saves it as laplacian.method."""
    import tomllib

    cfg = small_cfg(model={"widths": [8, 8]}, sampling={"n_interior": 16, "n_boundary": 8, "n_initial": 8, "n_test": 50},
                    optim={"iters": 2})
    res = train(cfg, out=tmp_path / "a", laplacian="hessian")
    assert type(res.payload.trainer.method).__name__ == "HessianTrace"
    assert tomllib.loads((tmp_path / "a" / "config.toml").read_text())["laplacian"]["method"] == "hessian"
    res = train(cfg, laplacian=LAPLACIANS.resolve("hutchinson", probes=3))
    assert type(res.payload.trainer.method).__name__ == "Hutchinson"


def test_user_problem_name_and_dimension_are_recorded(tmp_path):
    """The saved config records the problem a run trained on, not the config's catalogue keys."""
    import tomllib

    prob = dataclasses_replace_name(allen_cahn(1.0, 2), "my_heat")
    cfg = small_cfg(problem={"d": 7}, model={"widths": [8, 8]},
                    sampling={"n_interior": 16, "n_boundary": 8, "n_initial": 8, "n_test": 50}, optim={"iters": 1})
    res = train(cfg, prob, out=tmp_path / "a")
    saved = tomllib.loads((tmp_path / "a" / "config.toml").read_text())["problem"]
    assert saved["name"] == "my_heat" and saved["d"] == 2 and res.payload.problem == "my_heat"
    assert PINN.load(tmp_path / "a").config.problem.name == "my_heat"


def dataclasses_replace_name(problem, name):
    import dataclasses

    return dataclasses.replace(problem, name=name)


def test_sizes_that_cannot_fit_are_refused_before_allocating():
    from sciml.pinn import check_memory, memory_estimate

    cfg = small_cfg()
    with pytest.raises(ConfigError, match=r"problem\.d.*GiB") as e:
        check_memory(cfg, 10**9, torch.device("cpu"))
    assert "1000000000" in str(e.value)
    big = small_cfg(model={"widths": [10**6, 10**6]})
    with pytest.raises(ConfigError, match=r"model\.widths"):
        check_memory(big, 2, torch.device("cpu"))
    # the estimate: 4 copies (values, gradients, Adam moments) of the paper network's 94,201 parameters, float32
    est = memory_estimate(small_cfg(problem={"d": 10}, model={"widths": [300, 300]}), 10)
    assert est["parameters"] == 4 * 4 * 94201
    check_memory(cfg, 2, torch.device("cpu"))  # a small run passes
    with pytest.raises(ConfigError, match="problem.d"):
        train(small_cfg(problem={"d": 10**9}))
    # the Levenberg-Marquardt Jacobian: gn_points x parameters, 2,048 x 94,201 x 4 bytes for the paper network
    lm = small_cfg(problem={"d": 10}, model={"widths": [300, 300]}, optim={"gn_iters": 5})
    assert memory_estimate(lm, 10)["gauss_newton"] == (2048 + lm.sampling.n_boundary + lm.sampling.n_initial) * (
        94201 * 4 + 8 * (2048 + lm.sampling.n_boundary + lm.sampling.n_initial))
    with pytest.raises(ConfigError, match=r"optim\.gn_points"):
        check_memory(small_cfg(optim={"gn_iters": 5, "gn_points": 10**9}), 2, torch.device("cpu"))


def test_payload_predicts_with_the_configs_ansatz(tmp_path):
    """A network trained with loss.hard predicts u = A + B N from the problem's data, as the trainer did."""
    cfg = small_cfg(model={"widths": [8, 8]}, sampling={"n_interior": 16, "n_boundary": 8, "n_initial": 8,
                                                         "n_test": 50}, loss={"hard": "initial_boundary"},
                    optim={"iters": 3})
    res = train(cfg, out=tmp_path / "a")
    tr, back = res.payload.trainer, PINN.load(tmp_path / "a")
    t, x = tr.test.t, tr.test.x
    want = predict(tr.module, tr.par.params(), t, x, t_shift=tr.t_shift, hard=tr.problem.hard)
    assert torch.allclose(back.predict(t, x, allen_cahn(1.0, 2)), want, atol=1e-6)
    assert relative_l2(want, tr.test.u)[0] == pytest.approx(res.metrics["rel_l2"], rel=1e-6)
    with pytest.raises(ValueError, match="loss.hard"):
        back.predict(t, x)
