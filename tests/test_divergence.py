"""Alpha-divergences in variational form against closed forms; Lipschitz constraints hold the critic's
constant near L."""

from __future__ import annotations

import math

import pytest
import torch

from sciml.autodiff import point_function
from sciml.heavytail.constraints import (CONSTRAINTS, GradientPenalty, SpectralNormalization, Unconstrained,
                                         make_constraint)
from sciml.heavytail.objectives import (DIVERGENCES, AlphaDivergence, KLDivergence, WassersteinCritic, discrete_divergence,
                                        gaussian_alpha_divergence, make_divergence, variational_objective)
from sciml.nn.lipschitz import CriticMLP, input_gradient_norms, lipschitz_upper_bound



@pytest.fixture(autouse=True)
def _f64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("alpha", [0.5, 2.0, 3.0, 10.0])
def test_conjugate_is_legendre_transform(alpha):
    """f*(y) = sup_x xy - f(x), checked by brute force on a fine grid of x."""
    div = AlphaDivergence(alpha)
    x = torch.linspace(0, 30, 300001)
    ys = torch.tensor([-2.0, -0.5, -0.1, 0.3, 1.0, 2.0]) if alpha > 1 else torch.tensor([-3.0, -1.0, -0.5])
    for y in ys:
        brute = (x * y - div.f(x)).max()
        assert float(div.f_star(y)) == pytest.approx(float(brute), rel=1e-5, abs=1e-6)
    if alpha < 1:
        assert math.isinf(float(div.f_star(torch.tensor(0.5))))


def test_alpha_two_conjugate_formula():
    y = torch.tensor([-1.0, 0.0, 2.0])
    assert torch.allclose(AlphaDivergence(2.0).f_star(y), torch.tensor([0.5, 0.5, 2.5]))
    assert torch.allclose(KLDivergence().f_star(y), torch.exp(y - 1))


def _grid_problem():
    x = torch.linspace(-3, 3, 13)
    p = torch.exp(-0.5 * (x - 0.7) ** 2)
    q = torch.exp(-0.5 * (x + 0.2) ** 2 / 1.3)
    return x, p / p.sum(), q / q.sum()


def _maximise_lipschitz(div, x, p, q, L, iters=300):
    """sup over L-Lipschitz phi on a 1-d grid: phi_i = c + sum_{j<i} L tanh(u_j) dx_j (exactly that set)."""
    dx = x[1:] - x[:-1]
    u = torch.zeros(len(x) - 1, requires_grad=True)
    c = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([u, c], lr=1, max_iter=iters, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def phi():
        return c + torch.cat([torch.zeros(1), torch.cumsum(L * torch.tanh(u) * dx, 0)])

    def closure():
        opt.zero_grad()
        val = (p * phi()).sum() - (q * div.f_star(phi())).sum()
        (-val).backward()
        return -val

    for _ in range(5):
        opt.step(closure)
    with torch.no_grad():
        return float((p * phi()).sum() - (q * div.f_star(phi())).sum())


def _w1_1d(x, p, q):
    return float((torch.cumsum(p - q, 0)[:-1].abs() * (x[1:] - x[:-1])).sum())


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_variational_formula_limits_and_bound(alpha):
    """Optimal L-Lipschitz critic: L large -> exact D_alpha; L small -> L W1; in between <= min of both."""
    div = make_divergence(alpha)
    x, p, q = _grid_problem()
    exact = float(discrete_divergence(div, p, q))
    w1 = _w1_1d(x, p, q)
    assert _maximise_lipschitz(div, x, p, q, 100.0) == pytest.approx(exact, rel=1e-4)
    L = 1e-3
    assert _maximise_lipschitz(div, x, p, q, L) / L == pytest.approx(w1, rel=1e-2)
    L = 0.3
    mid = _maximise_lipschitz(div, x, p, q, L)
    assert 0 < mid <= min(exact, L * w1) + 1e-9
    assert mid > 0.5 * min(exact, L * w1)


@pytest.mark.parametrize("alpha", [1.0, 2.0, 1.5])
def test_optimal_critic_gives_gaussian_closed_form(alpha):
    """phi* = f'(dP/dQ) in E_P[phi] - E_Q[f*(phi)] recovers the closed-form alpha-divergence of Gaussians."""
    div = make_divergence(alpha)
    mp, mq, s = 0.6, 0.0, 1.0
    g = torch.Generator().manual_seed(0)
    xp = mp + s * torch.randn(400000, generator=g)
    xq = mq + s * torch.randn(400000, generator=g)

    def ratio(x):
        return torch.exp(((x - mq) ** 2 - (x - mp) ** 2) / (2 * s**2))

    est = float(variational_objective(div, div.f_prime(ratio(xp)), div.f_prime(ratio(xq))))
    assert est == pytest.approx(gaussian_alpha_divergence(mp, mq, s, alpha), rel=0.02)
    # any other critic gives less
    worse = float(variational_objective(div, 0.8 * div.f_prime(ratio(xp)), 0.8 * div.f_prime(ratio(xq))))
    assert worse < est


def test_objective_finite_where_divergence_infinite():
    """Disjoint supports: D_alpha = inf, but the Lipschitz-regularised value is L * W1 (finite)."""
    x = torch.linspace(0, 4, 9)
    p = torch.zeros(9); p[-1] = 1
    q = torch.zeros(9); q[0] = 1
    div = AlphaDivergence(2.0)
    val = _maximise_lipschitz(div, x, p, q + 1e-300, 0.5)  # q > 0 only for the optimiser's sake
    assert math.isfinite(val)
    assert val <= 0.5 * 4.0 + 1e-9 and val > 0.5 * 4.0 * 0.5


def _train_critic(constraint, x_real, x_fake, steps=400, div=None):
    torch.manual_seed(0)
    critic = CriticMLP(x_real.shape[1], 32, 2, "relu").double()
    f = point_function(critic)
    opt = torch.optim.Adam(critic.parameters(), lr=2e-3)
    div = div or WassersteinCritic()
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        p = dict(critic.named_parameters())
        obj = variational_objective(div, critic(x_fake).squeeze(-1), critic(x_real).squeeze(-1))
        t = constraint.draw(len(x_real), generator=g, dtype=x_real.dtype)
        loss = constraint.penalty(f, p, x_real, x_fake, t) - obj
        opt.zero_grad()
        loss.backward()
        opt.step()
        constraint.project_(critic)
    return critic, f


@pytest.mark.parametrize("L", [0.5, 2.0])
def test_gradient_penalty_holds_lipschitz_constant_near_L(L):
    g = torch.Generator().manual_seed(0)
    real = torch.randn(256, 2, generator=g)
    fake = torch.randn(256, 2, generator=g) + torch.tensor([6.0, 0.0])
    critic, f = _train_critic(GradientPenalty(L, 10.0), real, fake)
    t = torch.rand(256, 1, generator=g)
    w = t * real + (1 - t) * fake
    norms = input_gradient_norms(f, dict(critic.named_parameters()), w)
    assert float(norms.detach().median()) == pytest.approx(L, rel=0.15)
    assert float(norms.detach().quantile(0.95)) < 1.3 * L
    # without it the W1 critic's slope grows without bound
    critic0, f0 = _train_critic(Unconstrained(), real, fake, steps=150)
    assert float(input_gradient_norms(f0, dict(critic0.named_parameters()), w).median().detach()) > 3 * L


def test_spectral_normalisation_is_a_hard_bound():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(256, 2, generator=g)
    fake = torch.randn(256, 2, generator=g) * 3 + 4
    L = 0.7
    critic, f = _train_critic(SpectralNormalization(L), real, fake, steps=100)
    assert lipschitz_upper_bound(critic) == pytest.approx(L, rel=1e-6)
    x = torch.randn(2000, 2, generator=g) * 5
    assert float(input_gradient_norms(f, dict(critic.named_parameters()), x).max().detach()) <= L * (1 + 1e-9)


def test_make_constraint_and_divergence_errors():
    assert isinstance(make_constraint("none", 1.0), Unconstrained)
    with pytest.raises(ValueError, match="constraint"):
        make_constraint("clip", 1.0)
    with pytest.raises(ValueError, match="alpha"):
        AlphaDivergence(1.0)
    with pytest.raises(ValueError, match="lipschitz"):
        GradientPenalty(0.0)
    assert isinstance(make_divergence(1), KLDivergence)


def test_registries_resolve_names_and_pass_objects_through():
    """Names build the strategy with the options it takes; objects pass unchanged; unknown names list the
    registered ones."""
    assert DIVERGENCES.names() == ("alpha", "kl", "wasserstein")
    assert CONSTRAINTS.names() == ("gp", "spectral", "none")
    assert DIVERGENCES.resolve("alpha", alpha=3.0) == AlphaDivergence(3.0)
    assert isinstance(DIVERGENCES.resolve("alpha", alpha=1.0), KLDivergence)  # the alpha -> 1 limit
    assert isinstance(DIVERGENCES.resolve("kl", alpha=3.0), KLDivergence)  # alpha ignored
    assert isinstance(DIVERGENCES.resolve("wasserstein"), WassersteinCritic)
    assert make_constraint("gp", 2.0, 5.0) == GradientPenalty(2.0, 5.0)
    assert make_constraint("spectral", 0.5) == SpectralNormalization(0.5)
    two_sided = GradientPenalty(1.0, one_sided=False)
    assert make_constraint(two_sided, 7.0) is two_sided
    with pytest.raises(ValueError, match="wasserstein"):
        DIVERGENCES.resolve("hellinger")
    with pytest.raises(TypeError):
        make_constraint(3.0)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [2.0, 1.0])
def test_neural_critic_reaches_gaussian_alpha_divergence(alpha):
    """A trained (nearly unconstrained, L = 50) neural critic attains the closed-form divergence of two
    Gaussians from samples."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    mp, mq = 1.0, 0.0
    xp = (mp + torch.randn(4000, 1, generator=g, dtype=torch.float64))
    xq = (mq + torch.randn(4000, 1, generator=g, dtype=torch.float64))
    div = make_divergence(alpha)
    critic, _ = _train_critic(GradientPenalty(50.0, 10.0), xq, xp, steps=1500, div=div)
    xp2 = mp + torch.randn(200000, 1, generator=g, dtype=torch.float64)
    xq2 = mq + torch.randn(200000, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        est = float(variational_objective(div, critic(xp2).squeeze(-1), critic(xq2).squeeze(-1)))
    exact = gaussian_alpha_divergence(mp, mq, 1.0, alpha)
    assert est == pytest.approx(exact, rel=0.1)
