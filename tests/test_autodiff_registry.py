"""The LAPLACIANS registry: every registered method against a float64 ``torch.func.hessian`` trace, and
how names and objects resolve.

A method added to the registry is checked here without further ado if it is exact (to 1e-10); a
stochastic one needs an entry in ``EXPECTATIONS`` that averages it over its whole probe distribution,
which must give the trace exactly (the estimator is unbiased), and the same when given probes that
span every dimension.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from sciml import autodiff as ad
from sciml.autodiff import LAPLACIANS
from sciml.nn import MLP
from sciml.registry import UnknownChoice
from sciml.run.seeds import derived_generator

D = 4  # small enough to enumerate every Rademacher probe (2^D) and every SDGD subset


def _setup(seed: int = 0):
    """A float64 MLP, points, and the oracle Hessians from torch.func alone (no sciml method)."""
    torch.manual_seed(seed)
    model = MLP(D, 1, 16, 3, "tanh", init="default").double()
    x = torch.randn(6, D, generator=derived_generator(seed, "points"), dtype=torch.float64)
    f = ad.point_function(model)
    h = torch.func.vmap(torch.func.hessian(f, argnums=1), in_dims=(None, 0))(dict(model.named_parameters()), x)
    return model, x, h


def _trace(h: torch.Tensor, dims=None) -> torch.Tensor:
    idx = torch.arange(D) if dims is None else torch.as_tensor(list(dims))
    return h[:, idx][:, :, idx].diagonal(dim1=1, dim2=2).sum(-1)


def _hutchinson_mean(method: ad.Hutchinson, model, x, dims) -> torch.Tensor:
    """The mean over all 2^d sign vectors: sum_v v_i v_j = 2^d delta_ij, so it is the trace exactly."""
    d = D if dims is None else len(dims)
    signs = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d)), dtype=x.dtype)  # (2^d, d)
    assert method.num_probes == signs.shape[0], "resolve the method with probes = 2^d"
    probes = signs.T.expand(x.shape[0], d, signs.shape[0])
    return method(model, None, x, dims=dims, noise=probes).laplacian


def _sdgd_mean(method: ad.SDGD, model, x, dims) -> torch.Tensor:
    """The mean over all C(d, m) subsets of the shared-subset estimate (d/m) sum_{i in S} H_ii."""
    d = D if dims is None else len(dims)
    subsets = list(itertools.combinations(range(d), min(method.num_dims, d)))
    outs = [method(model, None, x, dims=dims, noise=torch.tensor(s)).laplacian for s in subsets]
    return torch.stack(outs).mean(0)


# every stochastic class registered in LAPLACIANS needs its exact expectation here
EXPECTATIONS = {ad.Hutchinson: _hutchinson_mean, ad.SDGD: _sdgd_mean}


def test_registry_names():
    assert set(LAPLACIANS.names()) >= {"forward", "hessian", "nested", "hutchinson", "sdgd"}
    for name in LAPLACIANS.names():
        assert isinstance(LAPLACIANS.resolve(name), ad.AbstractLaplacian)
        assert LAPLACIANS.doc(name)


@pytest.mark.parametrize("dims", [None, (0, 2, 3)], ids=["all", "partial"])
@pytest.mark.parametrize("name", LAPLACIANS.names())
def test_every_entry_matches_the_hessian_trace(name, dims):
    model, x, h = _setup()
    exact = _trace(h, dims)
    d = D if dims is None else len(dims)
    method = LAPLACIANS.resolve(name, probes=2**d, d=d)
    if not method.stochastic:
        out = method(model, None, x, dims=dims, with_gradient=True)
        torch.testing.assert_close(out.laplacian, exact, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out.value, model(x).squeeze(-1), rtol=1e-12, atol=1e-12)
        return
    expectation = EXPECTATIONS.get(type(method))
    assert expectation is not None, f"{name}: add the exact expectation of {type(method).__name__} to EXPECTATIONS"
    torch.testing.assert_close(expectation(method, model, x, dims), exact, rtol=1e-10, atol=1e-10)
    # with few probes the expectation is still exact (m = 2 of the d dims, k = 2^d sign vectors)
    few = LAPLACIANS.resolve(name, probes=2, d=d)
    if isinstance(few, ad.SDGD):
        torch.testing.assert_close(_sdgd_mean(few, model, x, dims), exact, rtol=1e-10, atol=1e-10)


def test_stochastic_entries_with_all_probes_are_exact():
    """SDGD sampling every dimension, and Hutchinson with the scaled basis probes sqrt(d) e_i, give the
    trace for any draw."""
    model, x, h = _setup(seed=3)
    exact = _trace(h)
    sdgd = LAPLACIANS.resolve("sdgd", probes=16, d=D)  # m is capped at d
    assert sdgd.num_dims == D
    torch.testing.assert_close(sdgd(model, None, x, generator=torch.Generator().manual_seed(0)).laplacian, exact,
                               rtol=1e-10, atol=1e-10)
    hutch = LAPLACIANS.resolve("hutchinson", probes=D)
    basis = (torch.eye(D, dtype=x.dtype) * D**0.5).expand(x.shape[0], D, D)
    torch.testing.assert_close(hutch(model, None, x, noise=basis).laplacian, exact, rtol=1e-10, atol=1e-10)


def test_resolve_passes_objects_through():
    for obj in (ad.SDGD(8, per_point=True), ad.Hutchinson(3, "gaussian"), ad.ForwardLaplacian(fallback=ad.HessianTrace()),
                ad.HessianTrace(), ad.NestedAutograd()):
        assert LAPLACIANS.resolve(obj, probes=99, d=2) is obj


def test_resolve_builds_with_the_options_its_factory_takes():
    assert LAPLACIANS.resolve("hutchinson", probes=3, d=10) == ad.Hutchinson(3)
    assert LAPLACIANS.resolve("sdgd", probes=16, d=5) == ad.SDGD(5)
    assert LAPLACIANS.resolve("sdgd", probes=2, d=5) == ad.SDGD(2)
    assert LAPLACIANS.resolve("forward", probes=3, d=5) == ad.ForwardLaplacian()
    assert LAPLACIANS.resolve("hessian") == ad.HessianTrace()


def test_resolve_rejects_unknown_names_and_other_objects():
    with pytest.raises(UnknownChoice) as e:
        LAPLACIANS.resolve("hutch")
    msg = str(e.value)
    assert "'hutch'" in msg and all(repr(n) in msg for n in LAPLACIANS.names())
    with pytest.raises(TypeError, match="laplacian"):
        LAPLACIANS.resolve(3.0)
