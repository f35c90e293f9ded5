"""Every Laplacian method against a float64 torch.func.hessian oracle on random MLPs."""

import pytest
import torch

from sciml import autodiff as ad
from sciml.nn import MLP

ACTS = ["tanh", "silu", "softplus"]


def oracle(model, x, dims=None):
    """Laplacian over ``dims`` and gradient, from the full Hessian (independent of sciml's methods)."""
    f = ad.point_function(model)
    p = dict(model.named_parameters())
    h = torch.func.vmap(torch.func.hessian(f, argnums=1), in_dims=(None, 0))(p, x)
    g = torch.func.vmap(torch.func.grad(f, argnums=1), in_dims=(None, 0))(p, x)
    idx = torch.arange(x.shape[1]) if dims is None else torch.as_tensor(list(dims))
    return h[:, idx][:, :, idx].diagonal(dim1=1, dim2=2).sum(-1), g, h


def make(d, act, width=24, depth=3, out=1, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    model = MLP(d, out, width, depth, act, init="default").to(dtype)
    x = torch.randn(9, d, generator=torch.Generator().manual_seed(seed + 1), dtype=dtype)
    return model, x


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("d", [1, 3, 10])
@pytest.mark.parametrize("mode", ["jacobian", "gram"])
def test_forward_laplacian_matches_oracle(act, d, mode):
    model, x = make(d, act)
    lap, g, _ = oracle(model, x)
    out = ad.ForwardLaplacian(mode=mode)(model, None, x, with_gradient=True)
    torch.testing.assert_close(out.laplacian, lap, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.gradient, g, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.value, model(x).squeeze(-1))


@pytest.mark.parametrize("method", [ad.HessianTrace(), ad.NestedAutograd(), ad.ForwardLaplacian()],
                         ids=["hessian", "nested", "forward"])
@pytest.mark.parametrize("act", ACTS)
def test_exact_methods_partial_dims_and_chunks(method, act):
    d = 6
    model, x = make(d, act, seed=2)
    dims = [1, 2, 4]
    lap, g, _ = oracle(model, x, dims)
    out = method(model, None, x, dims=dims, with_gradient=True, chunk_size=4)
    torch.testing.assert_close(out.laplacian, lap, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.gradient, g, rtol=1e-10, atol=1e-10)


def test_vector_output_forward_laplacian():
    model, x = make(4, "tanh", out=3, seed=5)
    p = dict(model.named_parameters())
    f = ad.point_function(model)
    h = torch.func.vmap(torch.func.hessian(f, argnums=1), in_dims=(None, 0))(p, x)  # (N, 3, d, d)
    out = ad.ForwardLaplacian()(model, None, x, with_gradient=True)
    torch.testing.assert_close(out.laplacian, h.diagonal(dim1=-2, dim2=-1).sum(-1))
    assert out.gradient.shape == (x.shape[0], 3, 4)
    torch.testing.assert_close(out.laplacian, ad.HessianTrace()(model, None, x).laplacian)


def test_forward_laplacian_float32_close_to_float64_oracle():
    model, x = make(10, "tanh", width=64, depth=4, seed=7)
    lap64, _, _ = oracle(model, x)
    m32 = model.float()
    out = ad.ForwardLaplacian()(m32, None, x.float())
    assert out.laplacian.dtype == torch.float32
    torch.testing.assert_close(out.laplacian.double(), lap64, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", [ad.HessianTrace(), ad.NestedAutograd(), ad.ForwardLaplacian(mode="jacobian"),
                                    ad.ForwardLaplacian(mode="gram")],
                         ids=["hessian", "nested", "forward-jac", "forward-gram"])
def test_parameter_gradients_of_laplacian_loss_match_oracle(method):
    """d/dparams of mean((lap u - g)^2): the training signal of a PINN."""
    model, x = make(5, "silu", seed=11)
    params = dict(model.named_parameters())
    target = torch.sin(x).sum(1)
    names = [k for k in params if k != f"{len(model) - 1}.bias"]  # the output bias does not enter lap

    def loss_oracle(p):
        f = ad.point_function(model)
        h = torch.func.vmap(torch.func.hessian(f, argnums=1), in_dims=(None, 0))(p, x)
        return ((h.diagonal(dim1=1, dim2=2).sum(-1) - target) ** 2).mean()

    ref = torch.func.grad(loss_oracle)(params)
    out = method(model, params, x)
    loss = ((out.laplacian - target) ** 2).mean()
    got = torch.autograd.grad(loss, [params[k] for k in names])
    for k, gk in zip(names, got):
        torch.testing.assert_close(gk, ref[k], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("method", [ad.Hutchinson(4), ad.Hutchinson(3, "gaussian"), ad.SDGD(3), ad.SDGD(3, per_point=True)],
                         ids=["hutch-rad", "hutch-gauss", "sdgd", "sdgd-pp"])
def test_stochastic_forward_path_equals_hvp_path_for_the_same_noise(method):
    """The MLP fast path and the generic Hessian-vector-product path agree probe by probe,
    and so do their parameter gradients."""
    model, x = make(7, "tanh", seed=13)
    params = dict(model.named_parameters())
    noise = method.draw(x.shape[0], 7, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    fast = method(model, params, x, noise=noise, with_gradient=True)
    f = ad.point_function(model)
    plain = lambda p, z: f(p, z)  # no .module attribute: forces the hvp path
    slow = method(plain, params, x, noise=noise, with_gradient=True)
    torch.testing.assert_close(fast.laplacian, slow.laplacian, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast.gradient, slow.gradient)
    gf = torch.autograd.grad(fast.laplacian.sum(), params["2.weight"])[0]
    gs = torch.autograd.grad(slow.laplacian.sum(), params["2.weight"])[0]
    torch.testing.assert_close(gf, gs, rtol=1e-9, atol=1e-10)


def test_sdgd_with_all_dims_is_exact_and_hutchinson_with_basis_probes_is_exact():
    model, x = make(6, "softplus", seed=17)
    lap, _, _ = oracle(model, x)
    out = ad.SDGD(6)(model, None, x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.laplacian, lap)
    # probes sqrt(d) e_i / ... : with k = d probes v_i = sqrt(d) e_i,  (1/d) sum v^T H v = tr H
    probes = (torch.eye(6, dtype=x.dtype) * 6**0.5).expand(x.shape[0], 6, 6)
    out = ad.Hutchinson(6)(model, None, x, noise=probes)
    torch.testing.assert_close(out.laplacian, lap)


def test_chunked_batch_equals_unchunked():
    model, x = make(4, "tanh", seed=19)
    op = ad.gradient(ad.point_function(model))
    p = dict(model.named_parameters())
    torch.testing.assert_close(ad.batch(op, chunk_size=2)(p, x), ad.batch(op)(p, x))


def test_cuda_path_if_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model, x = make(5, "tanh", seed=23)
    lap, g, _ = oracle(model, x)
    m = model.cuda()
    for method in (ad.ForwardLaplacian(), ad.HessianTrace(), ad.NestedAutograd()):
        out = method(m, None, x.cuda(), with_gradient=True)
        torch.testing.assert_close(out.laplacian.cpu(), lap)
    gen = torch.Generator(device="cuda").manual_seed(0)
    out = ad.Hutchinson(8)(m, None, x.cuda(), generator=gen)
    assert out.laplacian.device.type == "cuda"


def test_forward_laplacian_under_vmap_over_parameter_sets_and_func_grad():
    """K parameter sets at once (the family-transfer pattern): vmap over stacked params, torch.func.grad
    of the Laplacian loss; must equal K separate oracle evaluations."""
    model, x = make(4, "tanh", seed=29)
    sets = []
    for k in range(3):
        torch.manual_seed(100 + k)
        sets.append({n: torch.randn_like(p) * 0.5 for n, p in model.named_parameters()})
    stacked = {n: torch.stack([s[n] for s in sets]) for n in sets[0]}
    target = torch.cos(x).sum(1)

    def loss(p):
        out = ad.ForwardLaplacian()(model, p, x)
        return ((out.laplacian - target) ** 2).mean()

    losses = torch.func.vmap(loss)(stacked)
    grads = torch.func.vmap(torch.func.grad(loss))(stacked)
    f = ad.point_function(model)
    for k, p in enumerate(sets):
        def oracle_loss(pp):
            h = torch.func.vmap(torch.func.hessian(f, argnums=1), in_dims=(None, 0))(pp, x)
            return ((h.diagonal(dim1=1, dim2=2).sum(-1) - target) ** 2).mean()
        torch.testing.assert_close(losses[k], oracle_loss(p))
        ref = torch.func.grad(oracle_loss)(p)
        for n in ref:
            torch.testing.assert_close(grads[n][k], ref[n], rtol=1e-9, atol=1e-10)


def test_registered_activation_gets_the_forward_laplacian():
    """A user activation (z^3/6 for z > 0, the SVD-PINN code's ReLU^3/6) registered with the core."""

    class Cube(torch.nn.Module):
        def forward(self, z):
            return z.clamp_min(0) ** 3 / 6

    def derivs(z):
        p = z.clamp_min(0)
        return p**3 / 6, p**2 / 2, p

    with pytest.raises(ad.UnsupportedModelError, match="register_activation"):
        ad.mlp_structure(torch.nn.Sequential(torch.nn.Linear(3, 8), Cube(), torch.nn.Linear(8, 1)))
    ad.register_activation(Cube, ad.Activation("test_cube", derivs))
    torch.manual_seed(31)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), Cube(), torch.nn.Linear(8, 8), Cube(),
                              torch.nn.Linear(8, 1)).double()
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(32), dtype=torch.float64)
    lap, g, _ = oracle(net, x)
    out = ad.ForwardLaplacian()(net, None, x, with_gradient=True)
    torch.testing.assert_close(out.laplacian, lap)
    torch.testing.assert_close(out.gradient, g)
