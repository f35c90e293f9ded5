"""Score models: analytic checks of the SDEs, targets, objectives, control variates and samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sciml.autodiff import gradient
from sciml.nn.score_nets import ScoreMLP, SmallUNet
from sciml.score.gmm import GMM, fit_gmm
from sciml.score.model import EMA, ScoreModel
from sciml.score.objectives import DSM, NDSM, ControlVariates
from sciml.score.samplers import EulerMaruyama, ProbabilityFlow, StochasticHeun, sample
from sciml.score.sde import VESDE, VPSDE, LangevinSDE, NonlinearSDE


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _random_gmm(d, k, seed=0):
    g = _gen(seed)
    a = torch.randn(k, d, d, generator=g) * 0.5
    cov = a @ a.transpose(-1, -2) + 0.3 * torch.eye(d)
    w = torch.rand(k, generator=g) + 0.2
    return GMM.from_covariances(w, 3 * torch.randn(k, d, generator=g), cov)


# ---- GMM -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("d,k", [(2, 3), (5, 4)])
def test_gmm_autodiff_score_matches_closed_form(d, k):
    gmm = _random_gmm(d, k)
    x = 2 * torch.randn(500, d, generator=_gen(1))
    torch.testing.assert_close(gmm.score(x), gmm.score_exact(x), rtol=1e-4, atol=1e-4)


def test_gmm_log_prob_and_sampling_match_scipy_moments():
    from scipy.stats import multivariate_normal

    gmm = _random_gmm(3, 2, seed=3)
    x = torch.randn(50, 3, generator=_gen(2)).double()
    ref = np.log(sum(float(w) * multivariate_normal(m.numpy(), c.numpy()).pdf(x.numpy())
                     for w, m, c in zip(gmm.weights, gmm.means, gmm.covariances)))
    np.testing.assert_allclose(gmm.to(dtype=torch.float64).log_prob(x).numpy(), ref, rtol=1e-6)
    s = gmm.sample(100_000, generator=_gen(4))
    mean = (gmm.weights[:, None] * gmm.means).sum(0)
    torch.testing.assert_close(s.mean(0), mean, atol=0.05, rtol=0)


def test_fit_gmm_recovers_a_known_mixture():
    true = GMM.from_covariances([0.7, 0.3], [[-3.0, 0.0], [3.0, 1.0]], torch.eye(2).expand(2, 2, 2) * 0.25)
    x = true.sample(4000, generator=_gen(5))
    fit = fit_gmm(x, 2, n_init=1)
    order = fit.means[:, 0].argsort()
    torch.testing.assert_close(fit.weights[order], true.weights, atol=0.03, rtol=0)
    torch.testing.assert_close(fit.means[order], true.means, atol=0.05, rtol=0)


# ---- SDEs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sde", [VPSDE((2,), 0.1, 20.0), VESDE((2,), 0.01, 5.0)])
def test_dsm_target_is_the_gaussian_kernel_score(sde):
    """The DSM target equals grad_x log N(x; m_t x0, sigma_t^2 I), taken by autodiff, and -z/sigma_t."""
    x0 = torch.randn(64, 2, generator=_gen(0))
    t = torch.rand(64, generator=_gen(1)) * 0.99 + 0.01
    z = torch.randn(64, 2, generator=_gen(2))
    mean, std = sde.marginal(x0, t)
    xt = mean + std[:, None] * z

    def log_kernel(params, x):  # per point: params = (mean, std) of this point
        m, s = params
        return -0.5 * ((x - m) / s).pow(2).sum() - 2 * torch.log(s)

    auto = torch.func.vmap(gradient(log_kernel))((mean, std), xt)
    target = DSM(sde).target(x0, xt, t)
    torch.testing.assert_close(target, auto, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(target, -z / std[:, None], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("sde", [VPSDE((1,), 0.1, 20.0), VESDE((1,), 0.01, 3.0)])
def test_marginal_matches_simulated_moments(sde):
    """The closed-form kernel against a fine Euler-Maruyama simulation of the SDE from x0 = 1.5."""
    x0 = torch.full((40_000, 1), 1.5)
    times = torch.linspace(0, 0.6, 601)
    path = sde.simulate(x0, times, generator=_gen(3))
    mean, std = sde.marginal(x0[:1], times[-1:])
    assert abs(float(path[-1].mean()) - float(mean)) < 0.02
    assert abs(float(path[-1].std()) / float(std) - 1) < 0.02


def test_langevin_toward_standard_normal_is_the_vp_sde():
    vp = VPSDE((3,), 0.1, 20.0)
    lv = LangevinSDE(GMM.from_covariances([1.0], torch.zeros(1, 3), torch.eye(3)[None]), (3,), 0.1, 20.0)
    x = torch.randn(10, 3, generator=_gen(0))
    t = torch.rand(10, generator=_gen(1))
    torch.testing.assert_close(lv.drift(x, t), vp.drift(x, t), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lv.diffusion(t), vp.diffusion(t))


def test_int_g2_quadrature_matches_closed_form():
    sde = VPSDE((1,), 0.1, 20.0)
    t = torch.tensor([0.1, 0.5, 1.0])
    generic = NonlinearSDE((1,), sde.drift, sde.diffusion, None).int_g2  # trapezoid rule
    torch.testing.assert_close(generic(t), sde.int_beta(t), rtol=1e-4, atol=1e-6)


# ---- NDSM ------------------------------------------------------------------------------------------

def _em_gaussian_moments(m0, v0, beta, dt, n):
    """Mean and variance of the Euler-Maruyama VP chain after n steps, from N(m0, v0)."""
    m, v = m0, v0
    for i in range(n):
        b = beta(i * dt)
        m, v = (1 - 0.5 * b * dt) * m, (1 - 0.5 * b * dt) ** 2 * v + b * dt
    return m, v


def test_ndsm_target_agrees_with_dsm_for_a_linear_drift():
    """With the linear VP drift given as a *user* drift (NonlinearSDE), regressing the NDSM targets on the
    states recovers the analytic score of the Euler-Maruyama marginal, and regressing the DSM targets
    recovers the exact marginal's score: both are -(x - m_t)/v_t to within the O(dt) gap."""
    vp = VPSDE((1,), 0.1, 20.0)
    user = NonlinearSDE((1,), lambda x, t: -0.5 * vp.beta(t)[:, None] * x, vp.diffusion, None)
    m0, s0 = 2.0, 0.5
    ndsm, n_pts = NDSM(user, n_steps=100), 200_000
    g = _gen(7)
    for k_step in (20, 60):
        m_em, v_em = _em_gaussian_moments(m0, s0**2, lambda t: float(vp.beta(torch.tensor(t))), ndsm.dt, k_step - 1)
        x_prev = m_em + math.sqrt(v_em) * torch.randn(n_pts, 1, generator=g, dtype=torch.float64)
        z = torch.randn(n_pts, 1, generator=g, dtype=torch.float64)
        k = torch.full((n_pts,), k_step)
        y, _, h, t = ndsm.transition(x_prev, k, z)
        slope_n, icpt_n = np.polyfit(y[:, 0].numpy(), ndsm.target(z, h)[:, 0].numpy(), 1)
        # DSM at the same time with the exact kernel
        x0 = m0 + s0 * torch.randn(n_pts, 1, generator=g, dtype=torch.float64)
        mean, std = vp.marginal(x0, t)
        xt = mean + std[:, None] * torch.randn(n_pts, 1, generator=g, dtype=torch.float64)
        slope_d, icpt_d = np.polyfit(xt[:, 0].numpy(), DSM(vp).target(x0, xt, t)[:, 0].numpy(), 1)
        alpha = math.exp(-0.5 * float(vp.int_beta(t[:1])))
        v_exact = alpha**2 * s0**2 + 1 - alpha**2
        m_next, v_next = _em_gaussian_moments(m0, s0**2, lambda t: float(vp.beta(torch.tensor(t))), ndsm.dt, k_step)
        assert slope_n == pytest.approx(-1 / v_next, rel=0.03)
        assert icpt_n == pytest.approx(m_next / v_next, abs=0.03)
        assert slope_d == pytest.approx(-1 / v_exact, rel=0.03)
        assert slope_n == pytest.approx(slope_d, rel=0.05)  # NDSM and DSM agree up to the O(dt) gap


def _fixed_model(sde, d, seed=0):
    torch.manual_seed(seed)
    return ScoreModel(ScoreMLP(d, 32, 2), sde)


def test_control_variates_keep_the_mean_and_cut_the_variance():
    gmm = _random_gmm(2, 3, seed=1)
    sde = LangevinSDE(gmm, (2,), 0.1, 2.0)
    model = _fixed_model(sde, 2)
    ndsm = NDSM(sde, n_steps=200, control_variates=ControlVariates(learn=False))
    n = 20_000
    x_prev = sde.simulate(gmm.sample(n, generator=_gen(0)), ndsm.times()[:101], generator=_gen(1))
    k = torch.randint(1, 101, (n,), generator=_gen(2))
    x_prev = x_prev[k - 1, torch.arange(n)]
    z = torch.randn(n, 2, generator=_gen(3))
    with torch.no_grad():
        terms = ndsm.terms(model, x_prev, k, z)
        ell_cv, _ = ndsm.combine(terms)
    diff = terms.raw - ell_cv  # = C1 + C2, zero mean
    se = diff.std() / math.sqrt(n)
    assert abs(float(diff.mean())) < 4 * float(se)
    ratio = float(terms.raw.var() / ell_cv.var())
    assert ratio > 5, ratio


def test_control_variate_cuts_the_gradient_variance():
    """The s(mu) control variate lowers the variance of the parameter gradient, not only of the value."""
    gmm = _random_gmm(2, 3, seed=1)
    sde = LangevinSDE(gmm, (2,), 0.1, 2.0)
    model = _fixed_model(sde, 2)
    params = [p for p in model.parameters() if p.requires_grad]
    g = _gen(4)
    x0 = gmm.sample(2048, generator=g)
    grads = {False: [], True: []}
    for use_cv in (False, True):
        ndsm = NDSM(sde, n_steps=400, control_variates=ControlVariates(learn=False) if use_cv else None)
        path = sde.simulate(x0, ndsm.times()[:401], generator=_gen(5))
        for rep in range(40):
            gg = _gen(100 + rep)
            k = torch.randint(1, 401, (32,), generator=gg)
            x_prev = path[k - 1, torch.randint(0, 2048, (32,), generator=gg)]
            z = torch.randn(32, 2, generator=gg)
            ell, _ = ndsm.combine(ndsm.terms(model, x_prev, k, z, need_cv=use_cv))
            gr = torch.autograd.grad(ell.mean(), params)
            grads[use_cv].append(torch.cat([q.reshape(-1) for q in gr]))
    var = {c: torch.stack(v).var(0).sum() for c, v in grads.items()}
    assert var[False] / var[True] > 5, (var[False], var[True])


def test_learned_coefficients_approach_the_optimum():
    """Coefficients started at zero, trained only to minimise the variance, move toward ~1 and the
    variance falls below the plain objective's."""
    gmm = _random_gmm(2, 2, seed=2)
    sde = LangevinSDE(gmm, (2,), 0.1, 2.0)
    model = _fixed_model(sde, 2).requires_grad_(False)
    cv = ControlVariates(learn=True)
    with torch.no_grad():
        cv.net[2].bias.zero_()
    ndsm = NDSM(sde, n_steps=200, control_variates=cv)
    opt = torch.optim.Adam(cv.parameters(), lr=0.05)
    path = sde.simulate(gmm.sample(1024, generator=_gen(0)), ndsm.times()[:201], generator=_gen(1))
    g = _gen(2)
    for _ in range(150):
        k = torch.randint(1, 201, (256,), generator=g)
        x_prev = path[k - 1, torch.randint(0, 1024, (256,), generator=g)]
        loss, info = ndsm.loss(model, x_prev, k, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    a, c, _ = cv(torch.tensor([0.3, 0.7]))
    assert torch.all((c - 1).abs() < 0.2), c
    assert torch.all((a - 1).abs() < 0.5), a
    k = torch.randint(1, 201, (8192,), generator=g)
    x_prev = path[k - 1, torch.randint(0, 1024, (8192,), generator=g)]
    with torch.no_grad():
        terms = ndsm.terms(model, x_prev, k, torch.randn(8192, 2, generator=g))
        ell, _ = ndsm.combine(terms)
    assert float(terms.raw.var() / ell.var()) > 5


# ---- learning and sampling -------------------------------------------------------------------------

def test_score_model_learns_the_analytic_score_of_a_gaussian():
    torch.manual_seed(0)
    m0, s0 = torch.tensor([1.0, -0.5]), torch.tensor([0.6, 1.2])
    sde = VPSDE((2,), 0.1, 20.0)
    model = ScoreModel(ScoreMLP(2, 64, 2, 16), sde)
    dsm = DSM(sde, eps=1e-2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ema = EMA(model.net, 0.99)
    g = _gen(0)
    for _ in range(1500):
        x0 = m0 + s0 * torch.randn(256, 2, generator=g)
        loss, _ = dsm.loss(model, x0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model.net)
    with ema.applied(model.net):
        for tv in (0.1, 0.4, 1.0):
            t = torch.full((2000,), tv)
            alpha = torch.exp(-0.5 * sde.int_beta(t[:1]))
            m_t, v_t = alpha * m0, alpha**2 * s0**2 + 1 - alpha**2
            x = m_t + v_t.sqrt() * torch.randn(2000, 2, generator=g)
            exact = -(x - m_t) / v_t
            with torch.no_grad():
                err = float((model(x, t) - exact).norm() / exact.norm())
            assert err < 0.1, (tv, err)


def _vp_gaussian_exact_score(sde, m0, s0):
    def score(x, t):
        alpha = torch.exp(-0.5 * sde.int_beta(t))[:, None]
        return -(x - alpha * m0) / (alpha**2 * s0**2 + 1 - alpha**2)

    return score


@pytest.mark.parametrize("sampler", [EulerMaruyama(), StochasticHeun(), ProbabilityFlow("heun"), ProbabilityFlow("rk4")])
def test_sampler_with_exact_score_reproduces_moments(sampler):
    sde = VPSDE((2,), 0.1, 20.0)
    m0, s0 = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 1.5])
    x = sample(_vp_gaussian_exact_score(sde, m0, s0), sde, 20_000, sampler=sampler, n_steps=200, t_min=1e-3,
               generator=_gen(0), show_progress=False)
    torch.testing.assert_close(x.mean(0), m0, atol=0.04, rtol=0)
    torch.testing.assert_close(x.std(0), s0, atol=0.04, rtol=0)


def test_heun_is_more_accurate_than_euler_with_few_steps():
    """With the exact score and only 25 steps, the second-order samplers' variance error is smaller."""
    sde = VPSDE((2,), 0.1, 20.0)
    m0, s0 = torch.zeros(2), torch.tensor([0.3, 0.3])
    score = _vp_gaussian_exact_score(sde, m0, s0)
    err = {}
    for name, smp in (("em", EulerMaruyama()), ("heun", StochasticHeun()), ("ode", ProbabilityFlow("heun"))):
        x = sample(score, sde, 40_000, sampler=smp, n_steps=25, t_min=1e-3, generator=_gen(1), show_progress=False)
        err[name] = float((x.std(0) - s0).abs().max())
    assert err["heun"] < 0.7 * err["em"], err
    assert err["ode"] < 0.5 * err["em"], err


def test_langevin_sampler_with_exact_score_keeps_the_mixture():
    """If the data *is* the reference mixture, p_t = pi for all t and the exact score is grad log pi:
    the nonlinear reverse SDE started from pi must return pi (weights and means)."""
    gmm = GMM.from_covariances([0.8, 0.15, 0.05], [[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]],
                               torch.eye(2).expand(3, 2, 2) * 0.09)
    sde = LangevinSDE(gmm, (2,), 0.1, 2.0)
    x = sample(lambda x, t: gmm.score(x), sde, 10_000, sampler=EulerMaruyama(), n_steps=100, t_min=1e-2,
               generator=_gen(3), show_progress=False)
    w = torch.bincount(gmm.responsibilities(x).argmax(1), minlength=3).double() / x.shape[0]
    torch.testing.assert_close(w, gmm.weights.double(), atol=0.015, rtol=0)
    torch.testing.assert_close(x.mean(0), (gmm.weights[:, None] * gmm.means).sum(0), atol=0.03, rtol=0)


# ---- networks and EMA ------------------------------------------------------------------------------

def test_score_nets_shapes():
    assert ScoreMLP(5)(torch.randn(7, 5), torch.rand(7)).shape == (7, 5)
    net = SmallUNet(1, 16, 32)
    assert net(torch.randn(3, 1, 8, 8), torch.rand(3)).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="even"):
        net(torch.randn(3, 1, 7, 7), torch.rand(3))


def test_ema_is_the_closed_form_average():
    lin = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(lin, decay=0.5)
    ema.n_updates = 10**6  # past the warm-up: plain decay 0.5
    with torch.no_grad():
        lin.weight.fill_(0.0)
    ema.shadow["weight"].fill_(8.0)
    for _ in range(3):
        ema.update(lin)
    assert float(ema.shadow["weight"]) == pytest.approx(8.0 * 0.5**3)
    with ema.applied(lin):
        assert float(lin.weight.detach()) == pytest.approx(1.0)
    assert float(lin.weight.detach()) == 0.0


def test_dsm_refuses_a_nonlinear_sde():
    sde = LangevinSDE(_random_gmm(2, 2), (2,))
    with pytest.raises(ValueError, match="NDSM"):
        DSM(sde)
    with pytest.raises(NotImplementedError):
        sde.marginal(torch.zeros(1, 2), torch.zeros(1))
