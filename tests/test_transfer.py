"""SVD transfer: the factored network equals the pre-trained one, s stays >= 0, frozen parts stay put,
trainable-parameter counts match the paper's arithmetic, resume = uninterrupted, and one vmapped family
step equals K separate transfers."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from problems.pdes import allen_cahn
from sciml.nn.svd import SVDLinear, svd_factor, svd_weight
from sciml.pinn import PINNConfig, Pretrained, Trainer, build_network, train
from sciml.run import load_config
from sciml.transfer import (FamilyTrainer, FrozenHidden, FullFineTune, LastLayer, Scratch, SVDTransfer,
                            solve_family, stack_parametrisation, transfer)


def paper_net(dtype=torch.float32, activation="tanh"):
    torch.manual_seed(0)
    return build_network(11, (300, 300), activation).to(dtype)


def tiny_cfg(**over):
    base = {"problem": {"family": "allen_cahn", "value": 0.0, "d": 3}, "model": {"widths": [16, 16]},
            "sampling": {"n_interior": 64, "n_boundary": 32, "n_initial": 32, "n_test": 200, "sampler": "radial"},
            "optim": {"iters": 20}, "log_every": 5, "checkpoint_every": 5}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(base, PINNConfig)


@pytest.fixture(scope="module")
def pretrained():
    cfg = tiny_cfg(optim={"iters": 30})
    res = train(cfg)
    tr = res.extra["trainer"]
    return Pretrained(tr.module, {k: v.detach() for k, v in tr.par.params().items()}, cfg)


@pytest.mark.parametrize("strategy", [SVDTransfer(), SVDTransfer(rank=40), SVDTransfer("all_hidden"),
                                      SVDTransfer(train_rest=False)], ids=lambda s: s.label)
@pytest.mark.parametrize("activation", ["tanh", "relu3"])
def test_svd_conversion_reproduces_the_network(strategy, activation):
    net = paper_net(torch.float64, activation)
    params = {k: v.detach() for k, v in net.named_parameters()}
    par = strategy.parametrise(net, params)
    z = torch.randn(500, 11, dtype=torch.float64)
    ref = net(z)
    got = functional_call(net, par.params(), (z,))
    assert (got - ref).abs().max() < 1e-12 * (1 + ref.abs().max())
    # and in float32, to round-off
    net32 = paper_net(torch.float32, activation)
    p32 = {k: v.detach() for k, v in net32.named_parameters()}
    got32 = functional_call(net32, strategy.parametrise(net32, p32).params(), (z.float(),))
    ref32 = net32(z.float())
    assert (got32 - ref32).abs().max() < 1e-5 * (1 + ref32.abs().max())


def test_svd_linear_module_and_projection():
    lin = nn.Linear(7, 5).double()
    layer = SVDLinear.from_linear(lin)
    x = torch.randn(10, 7, dtype=torch.float64)
    assert torch.allclose(layer(x), lin(x), atol=1e-12)
    assert torch.allclose(layer.to_linear()(x), lin(x), atol=1e-12)
    assert layer.U.requires_grad is False and {n for n, _ in layer.named_parameters()} == {"s", "bias"}
    with torch.no_grad():
        layer.s[0] = -1.0
    layer.project()
    assert float(layer.s.detach().min()) == 0.0
    f = svd_factor(lin.weight, rank=2)
    assert f.s.shape == (2,) and torch.allclose(svd_weight(f.U, f.s, f.V, f.residual), lin.weight, atol=1e-12)
    assert torch.all(f.s[:-1] >= f.s[1:])  # sorted, the top two


def test_trainable_parameter_counts_match_the_paper():
    net = paper_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    n = lambda s: s.parametrise(net, params).n_trainable  # noqa: E731
    # SVD-PINN: D 300 + W0 3300 + b0 300 + b1 300 + W2 300 + b2 1 = 4501 (reference notes); full 94201
    assert n(SVDTransfer()) == 4501
    assert n(FullFineTune()) == 94201 == n(Scratch())
    assert n(FrozenHidden()) == 94201 - 300 * 300
    assert n(LastLayer()) == 301
    assert n(SVDTransfer(train_rest=False)) == 300
    assert n(SVDTransfer(rank=50)) == 4501 - 250


def test_frozen_parts_do_not_move_and_s_stays_nonnegative(pretrained):
    cfg = tiny_cfg(transfer={"s_lr": 5.0}, optim={"iters": 15})  # a huge s step: the projection must act
    w1 = "2.weight"
    p0 = pretrained.params
    res = transfer(pretrained, cfg, target=5.0, strategy=SVDTransfer())
    tr = res.extra["trainer"]
    s = tr.par.theta[w1 + ".s"]
    assert float(s.detach().min()) >= 0.0
    assert not torch.equal(s, svd_factor(p0[w1]).s)  # it did move
    # U and V are frozen: U^T W1_new V is diagonal (= diag(s))
    f = svd_factor(p0[w1])
    core = f.U.T @ tr.par.params()[w1].detach() @ f.V
    off = core - torch.diag(torch.diagonal(core))
    assert off.abs().max() < 1e-4 * core.abs().max()
    assert torch.allclose(torch.diagonal(core), s.detach(), rtol=1e-4, atol=1e-4 * float(s.max()))
    assert bool((s == 0).any())  # the projection was active
    # the other weights did move (they are trained by Adam)
    assert not torch.equal(tr.par.params()["0.weight"], p0["0.weight"])

    for strat, frozen in ((FrozenHidden(), {w1}), (LastLayer(), set(p0) - {"4.weight", "4.bias"}),
                          (SVDTransfer(train_rest=False), set(p0) - {w1})):
        tr2 = transfer(pretrained, tiny_cfg(optim={"iters": 5}), target=5.0, strategy=strat).extra["trainer"]
        built = tr2.par.params()
        for k in frozen:
            assert torch.equal(built[k], p0[k]), (strat.label, k)
        moved = set(p0) - frozen
        assert any(not torch.equal(built[k], p0[k]) for k in moved), strat.label


def test_transfer_resume_gives_the_same_parameters(pretrained, tmp_path):
    cfg = tiny_cfg(optim={"iters": 20}, sampling={"resample": True})
    a = transfer(pretrained, cfg, target=2.0, run_dir=tmp_path / "a").extra["trainer"]
    cut = transfer(pretrained, cfg, target=2.0, run_dir=tmp_path / "b", stop_at=12)
    assert cut.status.value == "interrupted"
    b = transfer(pretrained, cfg, target=2.0, run_dir=tmp_path / "b", resume=True).extra["trainer"]
    assert all(torch.equal(a.par.theta[k], b.par.theta[k]) for k in a.par.theta)
    assert a.history == b.history[-len(a.history):] or a.history[-1] == b.history[-1]


def test_family_step_equals_separate_transfers():
    torch.manual_seed(1)
    net = build_network(4, (16, 16)).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    cfg = tiny_cfg(dtype="float64", optim={"iters": 6})
    eps = [0.5, 2.0, 5.0]
    members = [allen_cahn(e, 3) for e in eps]
    par = stack_parametrisation(SVDTransfer().parametrise(net, params), len(eps))
    fam = FamilyTrainer(members[0], net, par, cfg, members=members)
    fam.fit()
    for k, m in enumerate(members):
        single = Trainer(m, net, SVDTransfer().parametrise(net, params), cfg)
        single.fit()
        for name, v in single.par.theta.items():
            assert torch.allclose(v, fam.par.theta[name][k], atol=1e-11, rtol=1e-9), (eps[k], name)
        assert abs(single.history[-1][1] - fam.member_history[-1][1][k]) < 1e-9
    # members really differ (different data): their parameters are not all equal
    s = fam.par.theta["2.weight.s"]
    assert not torch.allclose(s[0], s[2])


def test_solve_family_api(pretrained, tmp_path):
    cfg = tiny_cfg(optim={"iters": 5}, transfer={"targets": [1.0, 3.0]})
    res = solve_family(pretrained, cfg, run_dir=tmp_path / "fam")
    assert res.ok and set(res.extra["member_errors"]) == {1.0, 3.0}
    assert (tmp_path / "fam" / "results.h5").exists()


def test_scratch_is_a_fresh_network():
    net = paper_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    fresh = Scratch(seed=3).parametrise(net, params).params()
    assert not torch.equal(fresh["2.weight"], params["2.weight"])
    assert torch.all(fresh["2.bias"] == 0)
