"""Heavy-tail problems, metrics and training against exact tails; the method on sciml.fit (five-line usage,
bit-identical kill-and-resume for the three generators), the registries and the CLI."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch
from scipy import integrate

import sciml
from problems.heavy_tails import PROBLEMS, cauchy_power, make_problem, mixed, pareto, student_t
from sciml import fit
from sciml.heavytail import (CONSTRAINTS, DIVERGENCES, MODELS, CriticConfig, GANConfig, GradientPenalty,
                             HeavyTail, HeavyTailModel, KLDivergence)
from sciml.heavytail.config import HeavyTailConfig
from sciml.heavytail.data import prepare_data
from sciml.heavytail.metrics import ccdf_l1, empirical_sf, evaluate_samples, hill, tail_probabilities
from sciml.heavytail.models import Generator, ParticleCloud, PotentialFlow, sample_latent, student_t_logpdf
from sciml.io import DataError
from sciml.run import CheckpointError, ConfigError, Status, UserError, load_config


@pytest.mark.parametrize("nu,dim", [(0.5, 1), (1.5, 2), (3.0, 10)])
def test_student_t_radial_survival_is_exact(nu, dim):
    p = student_t(nu, dim)
    x = p.sample(100000, 0)
    r = np.linalg.norm(x, axis=1)
    for q in (0.5, 0.1, 0.01):
        rq = np.quantile(r, 1 - q)
        exact = float(p.radial_sf(rq))
        assert exact == pytest.approx(q, abs=4 * math.sqrt(q * (1 - q) / len(r)))
    assert float(p.marginal_sf[0](1.0)) == pytest.approx(float(np.mean(np.abs(x[:, 0]) > 1)), abs=0.01)


def test_other_problems_marginal_survival():
    for prob in (cauchy_power(4, 6, seed=1), pareto(1.5, 2), mixed(3, 1, 2.0)):
        x = prob.sample(100000, 1)
        assert x.shape == (100000, prob.dim)
        for j, sf in enumerate(prob.marginal_sf):
            if sf is None:
                assert np.all(x[:, j] == 0)
                continue
            for r in (0.5, 3.0):
                assert float(sf(r)) == pytest.approx(float(np.mean(np.abs(x[:, j]) > r)), abs=0.006)
    cp = cauchy_power(10, 110)
    assert cp.dim == 110 and len(cp.heavy_coordinates) == 10
    assert 0.5 <= cp.radial_index <= 2.0
    with pytest.raises(ValueError, match="unknown problem"):
        make_problem("gauss")


@pytest.mark.parametrize("a", [0.8, 1.5, 2.5])
def test_hill_recovers_index_of_exact_pareto_samples(a):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=50000) ** (-1.0 / a)  # exact Pareto(a): P(X > x) = x^-a
    assert hill(x, k=5000) == pytest.approx(a, rel=0.04)
    assert hill(-x, k=5000) == pytest.approx(a, rel=0.04)  # uses |x|


def test_hill_on_student_t_and_light_tails():
    p = student_t(1.5, 2)
    ests = [hill(np.linalg.norm(p.sample(20000, s), axis=1)) for s in range(5)]
    assert np.mean(ests) == pytest.approx(1.5, rel=0.1)
    gauss = np.random.default_rng(0).standard_normal(20000)
    assert hill(gauss) > 4  # light tail: a large apparent index
    assert math.isnan(hill(np.ones(5)))


def test_ccdf_l1_and_tail_probabilities():
    p = student_t(1.0, 1)
    exact = p.sample(20000, 0)
    light = np.random.default_rng(0).standard_normal((20000, 1)) * 2
    e_exact, e_light = ccdf_l1(exact, p.radial_sf), ccdf_l1(light, p.radial_sf)
    assert e_exact < 0.6 and e_light > 4 * e_exact
    # a sample equal to the exact quantiles has a tiny error
    q = np.tan(np.pi / 2 * (np.arange(20000) + 0.5) / 20000)  # |Cauchy| quantiles
    assert ccdf_l1(q, p.radial_sf) < 0.05
    assert np.allclose(tail_probabilities(q, [1.0, 10.0]), p.radial_sf(np.array([1.0, 10.0])), atol=1e-3)
    assert np.allclose(empirical_sf(np.array([1.0, 2.0, 3.0]), np.array([0.0, 2.0, 5.0])), [1.0, 1 / 3, 0.0])
    # NaN samples count as failures, not as missing
    bad = exact.copy()
    bad[:5000] = np.nan
    assert ccdf_l1(bad, p.radial_sf) > e_exact
    m = evaluate_samples(bad[:4000], p, reference=exact[:4000])
    assert m["nonfinite"] == pytest.approx(1.0) and m["ccdf_l1"] > 2  # the first 4000 rows are all NaN
    m = evaluate_samples(exact[:4000], p, reference=exact[4000:8000])
    assert m["nonfinite"] == 0 and m["hill_error"] < 0.3 and m["sw_body"] < 0.3


def test_latent_samples_have_the_requested_tail():
    g = torch.Generator().manual_seed(0)
    z = sample_latent("student", 50000, 2, 1.5, generator=g)
    assert hill(z.norm(dim=1).numpy()) == pytest.approx(1.5, rel=0.12)
    z = sample_latent("gaussian", 50000, 2, 0.0, generator=g)
    assert hill(z.norm(dim=1).numpy()) > 4


def test_student_t_logpdf_normalised():
    val, _ = integrate.quad(lambda x: math.exp(float(student_t_logpdf(torch.tensor([[x]], dtype=torch.float64), 1.5))),
                            -np.inf, np.inf)
    assert val == pytest.approx(1.0, rel=1e-6)


def test_flow_density_integrates_to_one_and_hutchinson_is_unbiased():
    torch.manual_seed(0)
    flow = PotentialFlow(1, 16, 2, "tanh", horizon=1.0, n_steps=8).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.mul_(2.0)  # a non-trivial map
    x = torch.linspace(-12, 12, 1601, dtype=torch.float64)[:, None]
    dens = flow.log_prob(x).detach().exp()
    assert float(torch.trapezoid(dens, x[:, 0])) == pytest.approx(1.0, abs=2e-3)
    # backward integration inverts the forward map
    z, *_ = flow.integrate(x[::100])
    xr, *_ = flow.integrate(z.detach(), reverse=True, with_terms=False)
    assert torch.allclose(xr, x[::100], atol=1e-3)

    # 2-d: Hutchinson divergence is unbiased for the exact one
    f2 = PotentialFlow(2, 16, 2, "tanh").double()
    fh = PotentialFlow(2, 16, 2, "tanh", divergence="hutchinson", probes=400).double()
    fh.load_state_dict(f2.state_dict())
    y = torch.randn(8, 2, dtype=torch.float64)
    exact = f2.integrate(y)[1]
    est = fh.integrate(y, generator=torch.Generator().manual_seed(0))[1]
    assert torch.allclose(est, exact, atol=0.1 * float(exact.detach().abs().max()) + 1e-3)
    assert not torch.allclose(est, exact, atol=1e-9)  # it is an estimate, not the exact trace


def _particles_cfg(steps, dt, seed=0):
    return load_config({"model": "particles", "steps": steps, "batch": 500, "seed": seed, "alpha": 2.0,
                        "lipschitz": 1.0, "log_every": 1000, "critic": {"steps": 3, "width": 32, "depth": 2},
                        "particles": {"dt": dt, "coordinates": "linear"}}, HeavyTailConfig)


def test_short_training_moves_tail_index_toward_truth(tmp_path):
    """1-d Student-t(1): the Lipschitz-regularised particle flow moves the Hill index from the Gaussian
    start toward 1; an untrained (zero step size) generator stays where it started."""
    prob = student_t(1.0, 1)
    data = prob.sample(2000, 0)
    untrained = fit(HeavyTail, _particles_cfg(1, 1e-12), data, problem=prob)
    trained = fit(HeavyTail, _particles_cfg(300, 2.0), data, out=tmp_path / "run", problem=prob)
    assert trained.ok and untrained.ok
    h0, h1 = untrained.metrics["hill"], trained.metrics["hill"]
    assert abs(h0 - 1.0) > 3.0  # Gaussian start: far from the truth
    assert abs(h1 - 1.0) < 0.5 * abs(h0 - 1.0)
    assert trained.metrics["ccdf_l1"] < 0.7 * untrained.metrics["ccdf_l1"]
    assert trained.metrics["max_speed"] <= 1.0 + 0.2  # the critic's slope bounds the particle speed by ~L
    # results and sampling from the run directory
    with h5py.File(tmp_path / "run" / "results.h5") as fh:
        assert fh["samples"].shape == (2000, 1)
    assert HeavyTail.load(tmp_path / "run").sample(100).shape == (100, 1)


def test_config_and_data_errors(tmp_path):
    with pytest.raises(ConfigError, match="alpha"):
        load_config({"model": "gan", "alpha": 0.5}, HeavyTailConfig)
    with pytest.raises(ConfigError, match="critic.steps"):
        load_config({"critic": {"steps": 0}}, HeavyTailConfig)
    with pytest.raises(ConfigError, match="flow.divergence"):
        load_config({"flow": {"divergence": "trace"}}, HeavyTailConfig)
    with pytest.raises(DataError, match="NaN"):
        prepare_data(np.array([[1.0], [np.nan]] * 40))
    with pytest.raises(DataError, match="at least"):
        prepare_data(np.ones((10, 2)))
    with pytest.raises(DataError, match="shape"):
        prepare_data(np.ones((60, 2, 2)))
    with pytest.raises(DataError, match="config.toml"):
        HeavyTail.load(tmp_path)


def test_cli_train_from_file_and_sample(tmp_path):
    from sciml.cli import main

    x = student_t(1.5, 2).sample(500, 0)
    np.save(tmp_path / "d.npy", x)
    rc = main(["heavytail", "train", "--data", str(tmp_path / "d.npy"), "--model", "gan", "--steps", "20",
               "--set", "batch=128", "--set", "n_samples=1000", "--out", str(tmp_path / "run")])
    assert rc == 0
    rc = main(["heavytail", "sample", str(tmp_path / "run"), "-n", "300", "--out", str(tmp_path / "s.h5")])
    assert rc == 0
    with h5py.File(tmp_path / "s.h5") as fh:
        assert fh["samples"].shape == (300, 2) and np.isfinite(fh["samples"][()]).all()
    np.save(tmp_path / "bad.npy", np.ones((3, 2)))
    assert main(["heavytail", "train", "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "r2")]) == 2
    assert main(["heavytail", "train", "--problem", "student_t", "--set", "critic.depth=0",
                 "--out", str(tmp_path / "r3")]) == 2


def test_five_line_usage(tmp_path):
    """The usage every wing shares: fit, load, read a metric. A GAN with a Student-t latent learns a 1-d
    Cauchy target: its Hill index is within 30% of the true 1 (a Gaussian sample's is about 7)."""
    data = student_t(1.0, 1).sample(2000, 0)
    cfg = HeavyTailConfig(model="gan", steps=100, batch=256, n_samples=20000, gan=GANConfig(width=32, depth=2),
                          critic=CriticConfig(width=32, depth=2, steps=2))
    res = sciml.fit(HeavyTail, cfg, data, out=tmp_path)
    model = HeavyTail.load(tmp_path)
    hill_index = res.metrics["hill"]

    assert res.status == Status.SUCCESS and isinstance(model, HeavyTailModel)
    assert abs(hill_index - 1.0) < 0.3 and res.metrics["nonfinite"] == 0
    assert abs(hill(np.random.default_rng(0).standard_normal(20000)) - 1.0) > 3  # what a light tail scores
    _assert_same(model.sampler.state_dict(), res.payload.sampler.state_dict())
    assert np.array_equal(model.samples, res.payload.samples) and model.metrics["hill"] == hill_index
    g = torch.Generator().manual_seed(5)
    assert model.sample(10, generator=g).shape == (10, 1) and model.capacity is None


def _tiny(model: str, **over) -> HeavyTailConfig:
    base = {"model": model, "steps": 20, "batch": 64, "n_samples": 500, "checkpoint_every": 5, "log_every": 1,
            "critic": {"width": 8, "depth": 2, "steps": 2}, "gan": {"width": 8, "depth": 2},
            "particles": {"n_particles": 200, "dt": 1.0},
            "flow": {"width": 8, "n_steps": 2, "divergence": "hutchinson", "base": "student", "hjb": 1.0}}
    base.update(over)
    # each table belongs to its model (another model's table, or [critic] for the flow, is refused)
    drop = {"gan", "particles", "flow"} - {model} | ({"critic"} if model == "flow" else set())
    return load_config({k: v for k, v in base.items() if k not in drop}, HeavyTailConfig)


def _assert_same(a, b, where="state"):
    """Every tensor, number and string of two checkpoints equal (the wall-clock entries aside)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        keys = set(a) - {"time", "elapsed"}
        assert keys == set(b) - {"time", "elapsed"}, where
        for k in keys:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("model", ["gan", "particles", "flow"])
def test_kill_and_resume_is_bit_identical(tmp_path, model):
    """Run B stops at step 12 (between the checkpoints at 10 and 15) and is resumed: it redoes steps 10-11
    from the checkpoint and ends with the same networks, optimisers, particles and random streams as
    the uninterrupted run A, and draws the same final samples."""
    data = student_t(1.5, 2).sample(300, 1)
    cfg = _tiny(model)
    a = fit(HeavyTail, cfg, data, out=tmp_path / "a")
    b = fit(HeavyTail, cfg, data, out=tmp_path / "b", stop_at=12)
    assert a.status == Status.SUCCESS and b.status == Status.INTERRUPTED and b.step == 12
    b = fit(HeavyTail, cfg, data, out=tmp_path / "b", resume=True)
    assert b.status == Status.SUCCESS and b.step == 20
    ck = [torch.load(p / "checkpoints" / "ckpt_20.pt", weights_only=False) for p in (tmp_path / "a", tmp_path / "b")]
    assert {"sampler", "rng", "data", "info"} <= set(ck[0])
    assert ({"critic", "opt_critic"} <= set(ck[0])) == (model != "flow")
    assert ("optimiser" in ck[0]) == (model != "particles")
    _assert_same(ck[0], ck[1])
    _assert_same(a.payload.sampler.state_dict(), b.payload.sampler.state_dict())
    assert np.array_equal(a.payload.samples, b.payload.samples)
    assert a.metrics == b.metrics
    # a resumed run refuses other data: its checkpoints were trained on these
    with pytest.raises(UserError, match="differ"):
        fit(HeavyTail, cfg, data[::-1].copy(), out=tmp_path / "b", resume=True)


GAN_P_FIRST = {"width": 8, "depth": 2, "order": "gen_data"}


def test_names_and_objects_give_the_same_run():
    """The registries' names in the config and objects passed to build are interchangeable: divergence
    "kl" by name and KLDivergence() as an object train bit-identically; alpha = 2 differs. (A t(5) target:
    KL's conjugate exp overflows on the far points of heavier tails.)"""
    data = student_t(5.0, 2).sample(300, 2)
    # the order D(P_G || Q): the generator's gradient E phi(G(z)) is never zero, so 5 steps tell the
    # constraints apart (in the default order the alpha = 2 generator gets no gradient while phi(G(z)) < 0)
    by_name = fit(HeavyTail, _tiny("gan", gan=GAN_P_FIRST, divergence="kl", steps=5), data)
    by_object = fit(HeavyTail, _tiny("gan", gan=GAN_P_FIRST, steps=5), data, divergence=KLDivergence())
    alpha2 = fit(HeavyTail, _tiny("gan", gan=GAN_P_FIRST, steps=5), data)
    assert np.array_equal(by_name.payload.samples, by_object.payload.samples)
    assert not np.array_equal(by_name.payload.samples, alpha2.payload.samples)
    two_sided = fit(HeavyTail, _tiny("gan", gan=GAN_P_FIRST, steps=5), data, constraint=GradientPenalty(1.0, one_sided=False))
    assert not np.array_equal(two_sided.payload.samples, alpha2.payload.samples)
    with pytest.raises(ConfigError, match="constraint"):
        fit(HeavyTail, _tiny("gan", gan=GAN_P_FIRST, constraint="none"), data, divergence="wasserstein")


def test_config_choices_come_from_the_registries():
    from dataclasses import fields

    meta = {f.name: f.metadata for f in fields(HeavyTailConfig)}
    assert meta["model"]["choices"] == MODELS.names() == ("gan", "particles", "flow")
    assert meta["divergence"]["choices"] == DIVERGENCES.names()
    assert meta["constraint"]["choices"] == CONSTRAINTS.names()
    assert PROBLEMS.names() == ("student_t", "cauchy_power", "pareto", "mixed")
    assert isinstance(MODELS.resolve("particles").build(_tiny("particles"), {"dim": 3, "n_particles": 7},
                                                         device=torch.device("cpu"), generator=None), ParticleCloud)
    with pytest.raises(ConfigError, match="constraint.*Wasserstein"):
        load_config({"model": "particles", "divergence": "wasserstein", "constraint": "none"}, HeavyTailConfig)
    with pytest.raises(ConfigError, match="divergence.*no critic"):  # an option the flow would not use is refused
        load_config({"model": "flow", "divergence": "wasserstein", "constraint": "none"}, HeavyTailConfig)


def test_payload_samplers_draw_from_the_generator_they_are_given():
    """GAN: the same generator seed gives the same draws, another seed others; the particle cloud returns
    its first n particles and refuses more than it has."""
    g = Generator(2, 2, 8, 2, latent="student", latent_nu=1.5)
    x1 = g.sample(50, generator=torch.Generator().manual_seed(3))
    x2 = g.sample(50, generator=torch.Generator().manual_seed(3))
    x3 = g.sample(50, generator=torch.Generator().manual_seed(4))
    assert x1.shape == (50, 2) and torch.equal(x1, x2) and not torch.equal(x1, x3)
    y = torch.arange(12.0).reshape(6, 2)
    cloud = ParticleCloud(y)
    assert torch.equal(cloud.sample(4), y[:4]) and cloud.dim == 2
    from sciml.run import UsageError

    with pytest.raises(UsageError, match="6 particles"):
        cloud.sample(7)


def test_load_refuses_damaged_runs(tmp_path):
    data = student_t(1.5, 1).sample(200, 0)
    fit(HeavyTail, _tiny("gan", steps=3), data, out=tmp_path / "run")
    m = tmp_path / "run" / "model.pt"
    m.write_bytes(m.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="model.pt"):
        HeavyTail.load(tmp_path / "run")
    m.unlink()
    with pytest.raises(CheckpointError, match="missing"):
        HeavyTail.load(tmp_path / "run")
    with pytest.raises(DataError, match="no such run"):
        HeavyTail.load(tmp_path / "nothing")
