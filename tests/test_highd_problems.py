"""The high-dimensional benchmarks of ``problems/highd.py``.

The exact solutions are written out again here (not imported) and differentiated by ``torch.func`` in
float64; the closed-form derivatives and right-hand sides must agree with those to rounding. Up to
d = 100 with full Hessians; at d = 1000 and 10^4 with the exact Hessian at one point (d = 1000) and
exact second directional derivatives along coordinate axes (forward-over-forward ``jvp``) elsewhere,
plus a check that the closed forms only ever hold O(d) numbers per point.
"""

import math
import statistics

import pytest
import torch
from torch.func import grad, hessian, jvp, vmap
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

from problems.highd import (BENCHMARKS, OPERATORS, AffineBaseline, HJBRosenbrock, ManyBodySolution,
                            affine_baseline, benchmark, cole_hopf_reference, highd_problem, three_body, two_body)
from tests.docblocks import run_block

F64 = torch.float64
BODIES = (2, 3)
SMALL_D = (3, 10, 100)


# ----------------------------------------------------------------------------------------------------
# the definitions, written out again
def _formula(body: int, c: torch.Tensor):
    """Per-point u(x) = (1 - |x|^2) s(x), x of shape (d,)."""
    def u(x):
        if body == 2:
            a, b = x[:-1], x[1:]
            s = (c * torch.sin(a + torch.cos(b) + b * torch.cos(a))).sum()
        else:
            s = (c * torch.exp(x[:-2] * x[1:-1] * x[2:])).sum()
        return (1 - (x * x).sum()) * s
    return u


def _ball(n, d, gen, r_low=0.0, r_high=1.0):
    """Uniform directions times r ~ U(r_low, r_high)."""
    w = torch.randn(n, d, generator=gen, dtype=F64)
    r = r_low + (r_high - r_low) * torch.rand(n, 1, generator=gen, dtype=F64)
    return r * w / w.norm(dim=1, keepdim=True)


def _points(d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    # interior points of every radius, some near the sphere, and the origin
    return torch.cat([_ball(6, d, gen), _ball(2, d, gen, 0.95, 0.999), torch.zeros(1, d, dtype=F64)])


def _autodiff_terms(body, c, x):
    """(u, grad u, lap u) by torch.func from the written-out formula."""
    u = _formula(body, c)
    H = vmap(hessian(u))(x)
    return vmap(u)(x), vmap(grad(u))(x), H.diagonal(dim1=-2, dim2=-1).sum(-1), H


# ----------------------------------------------------------------------------------------------------
# values, coefficients, boundary
def test_value_matches_the_formula_in_three_dimensions():
    x = torch.tensor([[0.1, -0.4, 0.3], [0.5, 0.2, -0.6]], dtype=F64)
    for body in BODIES:
        sol = ManyBodySolution(3, body, seed=7)
        c = sol.coeffs.tolist()
        for p in x.tolist():
            x1, x2, x3 = p
            B = 1 - (x1**2 + x2**2 + x3**2)
            if body == 2:
                s = (c[0] * math.sin(x1 + math.cos(x2) + x2 * math.cos(x1))
                     + c[1] * math.sin(x2 + math.cos(x3) + x3 * math.cos(x2)))
            else:
                s = c[0] * math.exp(x1 * x2 * x3)
            assert sol(torch.tensor(p, dtype=F64)).item() == pytest.approx(B * s, rel=1e-14, abs=1e-15)
        assert sol(x).shape == (2,)


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("d", SMALL_D)
def test_batched_and_per_point_values_agree_with_the_formula(body, d):
    sol = ManyBodySolution(d, body, seed=1)
    x = _points(d)
    ref = vmap(_formula(body, sol.coeffs))(x)
    torch.testing.assert_close(sol(x), ref, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(torch.stack([sol(p) for p in x]), ref, rtol=1e-13, atol=1e-13)


def test_coefficients_are_seeded_standard_normal_shared_by_both_solutions():
    d = 10_000
    c = two_body(d, seed=3).coeffs
    assert c.shape == (d - 1,) and c.dtype == F64
    assert torch.equal(c, two_body(d, seed=3).coeffs)                 # fixed by the seed
    assert not torch.equal(c, two_body(d, seed=4).coeffs)
    assert torch.equal(three_body(d, seed=3).coeffs, c[:-1])           # first d-1 / d-2 of one draw
    n = c.numel()                                                      # N(0, 1): 5-sigma bands
    assert abs(c.mean().item()) < 5 / math.sqrt(n)
    assert abs(c.var().item() - 1) < 5 * math.sqrt(2 / n)
    assert abs((c.abs() < 1).double().mean().item() - 0.6826895) < 5 * math.sqrt(0.22 / n)
    assert two_body(5, seed=1) == ManyBodySolution(5, 2, 1) and hash(two_body(5, 1)) == hash(two_body(5, 1))


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("d", SMALL_D)
def test_zero_on_the_sphere(body, d):
    sol = ManyBodySolution(d, body)
    x = _ball(64, d, torch.Generator().manual_seed(2), 1.0, 1.0)
    assert (sol(x).abs() <= 1e-14 * (1 + sol.inner(x).abs())).all()
    prob = highd_problem("sine_gordon", d, body)
    assert torch.equal(prob.boundary(x), torch.zeros(64, dtype=F64))
    assert (prob.factor(x).abs() < 1e-14).all()


# ----------------------------------------------------------------------------------------------------
# closed-form derivatives against torch.func
@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("d", SMALL_D)
def test_closed_form_derivatives_equal_autodiff(body, d):
    sol = ManyBodySolution(d, body, seed=5)
    x = _points(d, seed=d)
    u, g, lap, H = _autodiff_terms(body, sol.coeffs, x)
    scale = lap.abs().max().item()
    torch.testing.assert_close(sol.laplacian(x), lap, rtol=1e-10, atol=1e-12 * scale)
    torch.testing.assert_close(sol.hessian_diagonal(x), H.diagonal(dim1=-2, dim2=-1), rtol=1e-10, atol=1e-12 * scale)
    torch.testing.assert_close(sol.grad(x), g, rtol=1e-10, atol=1e-13)
    du = sol.derivatives(x, with_grad=True)
    torch.testing.assert_close(du.u, u, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(du.grad, g, rtol=1e-10, atol=1e-13)
    assert sol.derivatives(x).grad is None


@pytest.mark.parametrize("equation", sorted(OPERATORS))
@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("d", SMALL_D)
def test_residual_of_the_exact_solution_vanishes(equation, body, d):
    prob = highd_problem(equation, d, body, seed=2)
    x = _points(d, seed=11)
    u, g, lap, _ = _autodiff_terms(body, prob.solution.coeffs, x)
    res = prob.residual(u, g, lap, x)
    assert res.shape == (x.shape[0],)
    assert (res.abs() <= 1e-10 * (1 + lap.abs())).all(), res.abs().max()
    # and a wrong candidate does not pass: 1.01 u leaves a residual of the size of the operator's change
    bad = prob.residual(1.01 * u, 1.01 * g, 1.01 * lap, x)
    assert bad.abs().max() > 1e-4 * (1 + lap.abs().max())


def test_operators_are_the_stated_equations():
    u, lap = torch.tensor([0.3, -1.2], dtype=F64), torch.tensor([2.0, 0.5], dtype=F64)
    x = torch.zeros(2, 4, dtype=F64)
    torch.testing.assert_close(OPERATORS["poisson"](u, None, lap, x), -lap)
    torch.testing.assert_close(OPERATORS["sine_gordon"](u, None, lap, x), lap + torch.sin(u))
    torch.testing.assert_close(OPERATORS["allen_cahn"](u, None, lap, x), lap + u - u**3)
    assert not any(op.uses_grad for op in OPERATORS.values())
    assert set(BENCHMARKS) == {f"{e}_{b}" for e in OPERATORS for b in ("two_body", "three_body")}
    assert benchmark("allen_cahn_three_body", 7, seed=2).params == {
        "equation": "allen_cahn", "body": 3, "d": 7, "seed": 2}


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="unknown equation"):
        highd_problem("heat", 10)
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmark("poisson", 10)
    with pytest.raises(ValueError, match="d >= 3"):
        ManyBodySolution(2, body=3)
    with pytest.raises(ValueError, match="body"):
        ManyBodySolution(10, body=4)
    with pytest.raises(ValueError, match="d=10"):
        two_body(10)(torch.zeros(3, 9))


# ----------------------------------------------------------------------------------------------------
# d = 1000 and 10^4
class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operation creates."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))

        def note(t):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
            return t
        tree_map(note, out)
        return out


def _axis_second_derivatives(f, x, coords):
    """d^2 f / dx_j^2 at x for j in coords, exactly, by forward-over-forward jvp along e_j."""
    E = torch.zeros(len(coords), x.numel(), dtype=x.dtype)
    E[torch.arange(len(coords)), torch.as_tensor(coords)] = 1

    def along(v):
        return jvp(lambda y: jvp(f, (y,), (v,))[1], (x,), (v,))[1]
    return vmap(along)(E)


@pytest.mark.parametrize("d", (1000, 10_000))
def test_closed_forms_run_in_linear_memory_at_large_d(d):
    n = 16
    x = _ball(n, d, torch.Generator().manual_seed(d))
    for equation in OPERATORS:
        for body in BODIES:
            prob = highd_problem(equation, d, body)
            with _LargestTensor() as mode:
                g = prob.rhs(x)
                du = prob.solution.derivatives(x, with_grad=True)
            assert g.shape == (n,) and torch.isfinite(g).all()
            assert du.grad.shape == (n, d) and torch.isfinite(du.grad).all()
            assert mode.largest <= n * d          # never a d x d (or n x d x anything) tensor


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("d", (1000, 10_000))
def test_large_d_second_derivatives_equal_autodiff(body, d):
    sol = ManyBodySolution(d, body, seed=9)
    f = _formula(body, sol.coeffs)
    gen = torch.Generator().manual_seed(d + body)
    x = torch.cat([_ball(2, d, gen), _ball(1, d, gen, 0.97, 0.99)])      # inside and near the sphere
    coords = sorted({0, 1, 2, d // 2, d - 3, d - 2, d - 1, *torch.randint(d, (33,), generator=gen).tolist()})
    diag = sol.hessian_diagonal(x)
    for p, row in zip(x, diag):
        ref = _axis_second_derivatives(f, p, coords)
        torch.testing.assert_close(row[coords], ref, rtol=1e-10, atol=1e-12 * ref.abs().max().item())
    # the Laplacian is the sum of that diagonal (its separate O(d) formula, to rounding)
    torch.testing.assert_close(sol.laplacian(x), diag.sum(-1), rtol=1e-11, atol=0.0)
    if d == 1000:                              # and the full Hessian's trace at one point
        lap = torch.trace(hessian(f)(x[0]))
        torch.testing.assert_close(sol.laplacian(x[0]), lap, rtol=1e-10, atol=0.0)


# ----------------------------------------------------------------------------------------------------
# the trivial baseline
def test_affine_baseline_recovers_an_affine_target_exactly():
    d, n = 50, 400
    gen = torch.Generator().manual_seed(0)
    x = _ball(n, d, gen)
    a = torch.tensor([0.7, -2.0], dtype=F64)
    b = torch.randn(d, 2, generator=gen, dtype=F64)
    target = (1 - (x * x).sum(1))[:, None] * (a + x @ b)
    fit = affine_baseline(x, target, chunk=64)          # chunks: the accumulation must add up
    torch.testing.assert_close(fit.a, a, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(fit.b, b, rtol=1e-8, atol=1e-8)
    one = affine_baseline(x, target[:, 1])
    assert isinstance(one, AffineBaseline) and one(x).shape == (n,)
    torch.testing.assert_close(one(x), target[:, 1], rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="more than 50 points"):
        affine_baseline(x[:50], target[:50])


def test_affine_baseline_of_the_two_body_solution_matches_the_reference_at_d100():
    # reference (shared notes): rel L2 0.0047 at d = 100 on radial test points, coefficients unknown;
    # the median over coefficient seeds must be of that size
    d = 100
    gen = torch.Generator().manual_seed(0)
    x, xt = _ball(5000, d, gen), _ball(5000, d, gen)        # r ~ U(0, 1): the radial sampler
    sols = [two_body(d, s) for s in range(5)]
    fit = affine_baseline(x, torch.stack([s(x) for s in sols], 1))
    ut = torch.stack([s(xt) for s in sols], 1)
    rel = ((fit(xt) - ut).norm(dim=0) / ut.norm(dim=0)).tolist()
    assert 0.0025 < statistics.median(rel) < 0.0075, rel


# ----------------------------------------------------------------------------------------------------
# HJB with the Rosenbrock terminal cost
def test_hjb_terminal_cost_matches_the_formula():
    prob = HJBRosenbrock(3, seed=4)
    (c11, c12), (c21, c22) = prob.coeffs.tolist()
    assert all(0.5 <= c < 1.5 for c in (c11, c12, c21, c22))
    x1, x2, x3 = 0.3, -1.1, 0.8
    g = math.log(1 + c11 * (x1 - x2) ** 2 + c21 * x2**2 + c12 * (x2 - x3) ** 2 + c22 * x3**2)
    assert prob.terminal(torch.tensor([x1, x2, x3], dtype=F64)).item() == pytest.approx(g, rel=1e-14)
    t, x = prob.sample(5, generator=torch.Generator().manual_seed(0), dtype=F64)
    assert t.shape == (5,) and x.shape == (5, 3) and ((t >= 0) & (t <= prob.T)).all()


def test_hjb_operator_vanishes_on_a_closed_form_solution():
    # g = |x|^2: u = d/2 log(1 + 4 (T - t)) + |x|^2 / (1 + 4 (T - t)) solves u_t + Lap u - |grad u|^2 = 0
    d, T = 6, 1.0

    def u(tx):
        t, x = tx[0], tx[1:]
        k = 1 + 4 * (T - t)
        return d / 2 * torch.log(k) + (x * x).sum() / k

    gen = torch.Generator().manual_seed(3)
    tx = torch.cat([torch.rand(8, 1, generator=gen, dtype=F64), torch.randn(8, d, generator=gen, dtype=F64)], 1)
    g = vmap(grad(u))(tx)
    lap = vmap(hessian(u))(tx)[:, 1:, 1:].diagonal(dim1=-2, dim2=-1).sum(-1)
    res = HJBRosenbrock.operator(vmap(u)(tx), g[:, 0], g[:, 1:], lap, tx[:, 0], tx[:, 1:])
    assert res.abs().max() < 1e-12
    bad = HJBRosenbrock.operator(vmap(u)(tx), -g[:, 0], g[:, 1:], lap, tx[:, 0], tx[:, 1:])
    assert bad.abs().max() > 1e-2


def test_cole_hopf_reference_matches_a_closed_form():
    d, T = 5, 1.0
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, d, generator=gen, dtype=F64)
    t = torch.tensor([0.0, 0.2, 0.5, 0.8, 0.95, 1.0], dtype=F64)
    ref, se = cole_hopf_reference(lambda y: (y * y).sum(-1), t, x, T, n_mc=40_000, generator=gen)
    k = 1 + 4 * (T - t)
    exact = d / 2 * torch.log(k) + (x * x).sum(-1) / k
    assert (se[:-1] > 1e-4).all() and se[-1] < 1e-12              # at t = T the reference is g itself
    assert ref[-1].item() == pytest.approx((x[-1] ** 2).sum().item(), rel=1e-14)
    assert ((ref - exact).abs() <= 5 * se + 1e-14).all(), ((ref - exact) / se)


def test_hjb_rosenbrock_reference_follows_the_equation_near_the_terminal_time():
    # u(T - tau) = g + tau (Lap g - |grad g|^2) + O(tau^2); antithetic pairs remove the O(sqrt(tau)) noise
    prob = HJBRosenbrock(10, seed=1)
    gen = torch.Generator().manual_seed(5)
    x = 0.5 * torch.randn(4, 10, generator=gen, dtype=F64)
    tau = 1e-3
    ref, se = prob.reference(torch.full((4,), prob.T - tau, dtype=F64), x, n_mc=20_000, generator=gen)
    g = prob.terminal(x)
    dg = vmap(grad(prob.terminal))(x)
    lap = vmap(hessian(prob.terminal))(x).diagonal(dim1=-2, dim2=-1).sum(-1)
    step = tau * (lap - (dg * dg).sum(-1))
    assert (step.abs() > 1e-3).all()
    assert ((ref - g - step).abs() <= 0.05 * step.abs() + 5 * se).all(), (ref - g - step, step)


# ----------------------------------------------------------------------------------------------------
def test_docs_usage_block_runs():
    ns = run_block("highd_benchmarks.md", "highd-usage")
    assert ns["residual"].abs().max() < 1e-10
