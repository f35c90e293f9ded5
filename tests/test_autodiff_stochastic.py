"""Stochastic Laplacian estimators are unbiased: checked with a fixed seed and a tolerance derived
from each estimator's exact variance (computed from the float64 oracle Hessian)."""

import pytest
import torch

from sciml import autodiff as ad
from sciml.nn import MLP

R = 400  # independent repetitions per point


def setup(d=8, seed=0):
    torch.manual_seed(seed)
    model = MLP(d, 1, 32, 3, "tanh", init="default").double()
    x = torch.randn(5, d, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    f = ad.point_function(model)
    h = torch.func.vmap(torch.func.hessian(f, argnums=1), in_dims=(None, 0))(dict(model.named_parameters()), x)
    return model, x, h


def repeated(method, model, x, d):
    """R independent estimates at every point: (R, N)."""
    gen = torch.Generator().manual_seed(1234)
    xs = x.repeat(R, 1)
    noise = method.draw(xs.shape[0], d, generator=gen, dtype=x.dtype)
    if noise.dim() == 1:  # a shared SDGD subset: draw one per repetition instead
        outs = [method(model, None, x, noise=method.draw(x.shape[0], d, generator=gen)).laplacian for _ in range(R)]
        return torch.stack(outs).detach()
    return method(model, None, xs, noise=noise).laplacian.detach().view(R, x.shape[0])


def check_unbiased(est, exact, var_single):
    """|mean - exact| within 4.5 standard errors at every point (a 1-in-150,000 false alarm per point)."""
    se = (var_single / est.shape[0]).sqrt()
    z = (est.mean(0) - exact).abs() / se
    assert bool((z < 4.5).all()), f"z-scores {z}"
    # and the empirical variance agrees with the theory within 30% (R = 400 samples)
    ratio = est.var(0) / var_single
    assert bool(((ratio > 0.7) & (ratio < 1.3)).all()), f"variance ratio {ratio}"


@pytest.mark.parametrize("k", [1, 4])
def test_hutchinson_rademacher_unbiased(k):
    model, x, h = setup()
    exact = h.diagonal(dim1=1, dim2=2).sum(-1)
    off = h - torch.diag_embed(h.diagonal(dim1=1, dim2=2))
    var = 2 * (off**2).sum((1, 2)) / k  # Var of v^T H v with Rademacher v, averaged over k
    check_unbiased(repeated(ad.Hutchinson(k), model, x, 8), exact, var)


def test_hutchinson_gaussian_unbiased():
    model, x, h = setup(seed=3)
    exact = h.diagonal(dim1=1, dim2=2).sum(-1)
    var = 2 * (h**2).sum((1, 2)) / 2
    check_unbiased(repeated(ad.Hutchinson(2, "gaussian"), model, x, 8), exact, var)


@pytest.mark.parametrize("per_point", [False, True])
def test_sdgd_unbiased(per_point):
    model, x, h = setup(seed=5)
    d, m = 8, 3
    diag = h.diagonal(dim1=1, dim2=2)
    exact = diag.sum(-1)
    sigma2 = diag.var(1, unbiased=False)  # population variance of the d diagonal entries
    var = d**2 * sigma2 / m * (d - m) / (d - 1)  # sampling m of d without replacement, scaled by d/m
    check_unbiased(repeated(ad.SDGD(m, per_point=per_point), model, x, d), exact, var)


def test_estimators_are_reproducible_from_the_generator():
    model, x, _ = setup()
    for method in (ad.Hutchinson(3), ad.SDGD(2), ad.SDGD(2, per_point=True)):
        a = method(model, None, x, generator=torch.Generator().manual_seed(7)).laplacian
        b = method(model, None, x, generator=torch.Generator().manual_seed(7)).laplacian
        c = method(model, None, x, generator=torch.Generator().manual_seed(8)).laplacian
        torch.testing.assert_close(a, b)
        assert not torch.allclose(a, c)
