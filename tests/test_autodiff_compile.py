"""compile_loss: a whole forward-Laplacian loss compiles without graph breaks, and its loss and
parameter gradients equal the float64 hessian oracle's; a loss that cannot compile falls back to eager."""

import torch

from sciml import autodiff as ad
from sciml.nn import MLP


def _problem():
    torch.manual_seed(0)
    model = MLP(4, 1, 16, 2, "tanh", init="default").double()
    params = {k: v.detach().clone().requires_grad_(True) for k, v in model.named_parameters()}
    t = torch.rand(12, dtype=torch.float64)
    x = torch.randn(12, 3, dtype=torch.float64)
    return model, params, t, x


def test_compiled_evolution_loss_matches_hessian_oracle(can_compile):
    model, params, t, x = _problem()

    def loss_fn(p, tt, xx):  # u_t - lap_x u, the heat residual; dims given as a range (no graph break)
        e = ad.evolution_terms(model, p, tt, xx, method=ad.ForwardLaplacian())
        return ((e.u_t - e.lap_x) ** 2).mean()

    compiled = ad.compile_loss(loss_fn, params, t, x, fullgraph=True)  # fullgraph: a graph break is an error
    assert compiled.compiled

    def oracle(p):
        f = lambda z: torch.func.functional_call(model, p, (z[None],))[0, 0]  # noqa: E731
        z = torch.cat([t[:, None], x], 1)
        h = torch.vmap(torch.func.hessian(f))(z)
        g = torch.vmap(torch.func.grad(f))(z)
        return ((g[:, 0] - h[:, 1:, 1:].diagonal(dim1=1, dim2=2).sum(-1)) ** 2).mean()

    lo, lc = oracle(params), compiled(params, t, x)
    torch.testing.assert_close(lc, lo, rtol=1e-9, atol=1e-12)
    go = torch.autograd.grad(lo, list(params.values()), allow_unused=True)
    gc = torch.autograd.grad(compiled(params, t, x), list(params.values()), allow_unused=True)
    for a, b in zip(gc, go):  # (the output bias does not enter the residual: None or zero)
        a = torch.zeros_like(b) if a is None and b is not None else a
        b = torch.zeros_like(a) if b is None and a is not None else b
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def test_a_loss_that_cannot_compile_falls_back_to_eager(can_compile):
    model, params, t, x = _problem()

    def loss_fn(p, tt, xx):
        out = ad.ForwardLaplacian()(model, p, torch.cat([tt[:, None], xx], 1))
        if float(out.laplacian.sum()) > -1e300:  # data-dependent Python branch: a graph break
            return (out.laplacian**2).mean()
        return out.value.mean()

    f = ad.compile_loss(loss_fn, params, t, x, fullgraph=True)
    assert f is loss_fn and not f.compiled
    assert torch.isfinite(f(params, t, x))


def test_a_compiled_loss_that_disagrees_with_eager_is_not_used(monkeypatch):
    """The check catches a wrong compiled graph: a stand-in 'compiler' that perturbs the loss by 1%
    (or its gradient only) is rejected, and the eager function comes back; a perturbation below the
    tolerance is accepted."""
    model, params, t, x = _problem()

    def loss_fn(p, tt, xx):
        e = ad.evolution_terms(model, p, tt, xx)
        return ((e.u_t - e.lap_x) ** 2).mean()

    def fake_compile(scale_loss, scale_grad):
        def compile_(fn, **kw):
            def wrong(p, *a):
                out = fn(p, *a)
                # value scaled by scale_loss, gradient by scale_grad
                return scale_loss * (out.detach() + scale_grad * (out - out.detach()))
            return wrong
        return compile_

    for scales, accepted in (((1.01, 1.0), False), ((1.0, 1.01), False), ((1.0 + 1e-5, 1.0), True)):
        monkeypatch.setattr(torch, "compile", fake_compile(*scales))
        f = ad.compile_loss(loss_fn, params, t, x)
        assert (f is not loss_fn) == accepted and bool(getattr(f, "compiled", False)) == accepted, scales
