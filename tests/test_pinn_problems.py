"""The PDE families: the residual of the exact solution is ~0, with every derivative of the closed-form
exact solution taken independently by torch.func in float64 (not via the right-hand-side formulas)."""

import math

import pytest
import torch
from torch.func import grad, hessian, jacrev, vmap

from problems.pdes import allen_cahn, family_member, linear_parabolic
from sciml.autodiff import EvolutionDerivatives

F64 = torch.float64


def _ac_exact(eps):
    # the formula, written out again here (not imported)
    def u(z):
        t, x = z[0], z[1:]
        r = torch.sqrt((x * x).sum())
        return torch.exp(-t) * (torch.sin(math.pi / 2 * (1 - r) ** 2.5) + eps * torch.sin(math.pi / 2 * (1 - r)))
    return u


def _lp_exact(c):
    def u(z):
        t, x = z[0], z[1:]
        r = torch.sqrt((x * x).sum())
        return torch.exp(r * (torch.sqrt(1 - t) + c * (1 - t)))
    return u


def _points(n, d, t_max, gen):
    # radii in [0.05, 0.95]: away from the cone at the origin and the sphere
    dirs = torch.randn(n, d, generator=gen, dtype=F64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    r = 0.05 + 0.9 * torch.rand(n, generator=gen, dtype=F64)
    t = t_max * torch.rand(n, generator=gen, dtype=F64)
    return t, r[:, None] * dirs


def _terms(u, t, x):
    z = torch.cat([t[:, None], x], 1)
    g = vmap(grad(u))(z)
    h = vmap(hessian(u))(z)
    lap = torch.diagonal(h[:, 1:, 1:], dim1=-2, dim2=-1).sum(-1)
    return vmap(u)(z), g[:, 0], g[:, 1:], lap


@pytest.mark.parametrize("d,eps", [(3, 0.5), (10, 0.0), (10, 50.0), (100, 2.0)])
def test_allen_cahn_residual_at_exact_solution(d, eps):
    gen = torch.Generator().manual_seed(d)
    t, x = _points(100, d, 1.0, gen)
    prob = allen_cahn(eps, d)
    u, u_t, _, lap = _terms(_ac_exact(eps), t, x)
    f = prob.rhs(t, x)
    res = u_t - lap - u + u**3 - f
    assert res.abs().max() < 1e-9 * (1 + f.abs().max())
    assert torch.allclose(prob.exact(t, x), u, atol=1e-12)
    # a wrong right-hand side (another member) cannot pass
    assert (u_t - lap - u + u**3 - allen_cahn(eps + 1, d).rhs(t, x)).abs().max() > 1e-2


@pytest.mark.parametrize("d,c", [(3, 0.5), (10, 1.0), (100, 2.0)])
def test_linear_parabolic_residual_at_exact_solution(d, c):
    gen = torch.Generator().manual_seed(d + 1)
    t, x = _points(100, d, 0.5, gen)
    prob = linear_parabolic(c, d)
    u_fn = _lp_exact(c)
    z = torch.cat([t[:, None], x], 1)

    def flux(zz):  # (1 + |x|/2) grad_x u, differentiated again for the divergence
        r = torch.sqrt((zz[1:] ** 2).sum())
        return (1 + r / 2) * grad(u_fn)(zz)[1:]

    div = vmap(lambda zz: torch.trace(jacrev(flux)(zz)[:, 1:]))(z)
    u_t = vmap(grad(u_fn))(z)[:, 0]
    f = prob.rhs(t, x)
    res = u_t - div - f
    assert res.abs().max() < 1e-9 * (1 + f.abs().max())
    assert torch.allclose(prob.exact(t, x), vmap(u_fn)(z), atol=1e-12)


@pytest.mark.parametrize("member", [("allen_cahn", 2.0), ("linear_parabolic", 1.5)])
def test_operator_of_exact_terms_equals_rhs(member):
    """The problem's operator (what the PINN loss uses) applied to autodiff terms of the exact solution."""
    fam, v = member
    d = 10
    prob = family_member(fam, v, d)
    gen = torch.Generator().manual_seed(3)
    t, x = _points(100, d, prob.t_range[1], gen)
    u_fn = _ac_exact(v) if fam == "allen_cahn" else _lp_exact(v)
    u, u_t, g, lap = _terms(u_fn, t, x)
    lhs = prob.operator(EvolutionDerivatives(u, u_t, g, lap), t, x)
    f = prob.rhs(t, x)
    assert (lhs - f).abs().max() < 1e-9 * (1 + f.abs().max())


def test_boundary_and_initial_data():
    prob = allen_cahn(3.0, 10)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 10, generator=gen, dtype=F64)
    x = x / x.norm(dim=1, keepdim=True)
    t = torch.rand(50, generator=gen, dtype=F64)
    assert prob.exact(t, x).abs().max() < 1e-12  # zero on the sphere for every eps
    assert torch.allclose(prob.initial(0.5 * x), prob.exact(torch.zeros(50, dtype=F64), 0.5 * x))


def test_unknown_family_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown PDE family"):
        family_member("burgers", 1.0)
