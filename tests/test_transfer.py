"""SVD transfer: the factored network equals the pre-trained one, s stays >= 0, frozen parts stay put,
trainable-parameter counts match the paper's arithmetic, one vmapped family step equals K separate
transfers, the strategy registry, and model files (``--from``) are validated."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from problems.pdes import allen_cahn
from sciml import fit
from sciml.nn.svd import SVDLinear, svd_factor, svd_weight
from sciml.pinn import PINN, Trainer, build_network
from sciml.run import ConfigError, load_config
from sciml.transfer import (TRANSFER_STRATEGIES, Family, FrozenHidden, FullFineTune, LastLayer, Scratch, SVDTransfer,
                            Transfer, TransferRunConfig, family_trainer, s_optimizer_for, stack_parametrisation)


def paper_net(dtype=torch.float32, activation="tanh"):
    torch.manual_seed(0)
    return build_network(11, (300, 300), activation).to(dtype)


def tiny_cfg(**over):
    base = {"problem": {"family": "allen_cahn", "value": 0.0, "d": 3}, "model": {"widths": [16, 16]},
            "sampling": {"n_interior": 64, "n_boundary": 32, "n_initial": 32, "n_test": 200, "sampler": "radial",
                         "resample": False},  # the paper's fixed points; a family run needs them
            "optim": {"iters": 20}, "log_every": 5, "checkpoint_every": 5}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(base, TransferRunConfig)


def transfer(pre, cfg, *, target, strategy=None, **kw):
    return fit(Transfer, cfg, allen_cahn(target, cfg.problem.d), source=pre, strategy=strategy, **kw)


def run_steps(tr):
    for i in range(tr.n_steps):
        tr.step(i)


@pytest.fixture(scope="module")
def pretrained():
    return fit(PINN, tiny_cfg(optim={"iters": 30}), allen_cahn(0.0, 3)).payload


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
    tr = res.payload.trainer
    s = tr.par.theta[w1 + ".s"]
    assert float(s.detach().min()) >= 0.0
    assert not torch.equal(s, svd_factor(p0[w1]).s)  # it did move
    # U and V are frozen: U^T W1_new V is diagonal (= diag(s))
    f = svd_factor(p0[w1])
    core = f.U.T @ tr.par.params()[w1].detach() @ f.V
    off = core - torch.diag(torch.diagonal(core))
    assert off.abs().max() < 1e-4 * core.abs().max()
    assert torch.allclose(torch.diagonal(core), s.detach(), rtol=1e-4, atol=1e-4 * float(s.detach().max()))
    assert bool((s == 0).any())  # the projection was active
    # the other weights did move (they are trained by Adam)
    assert not torch.equal(tr.par.params()["0.weight"], p0["0.weight"])

    for strat, frozen in ((FrozenHidden(), {w1}), (LastLayer(), set(p0) - {"4.weight", "4.bias"}),
                          (SVDTransfer(train_rest=False), set(p0) - {w1})):
        tr2 = transfer(pretrained, tiny_cfg(optim={"iters": 5}), target=5.0, strategy=strat).payload.trainer
        built = tr2.par.params()
        for k in frozen:
            assert torch.equal(built[k], p0[k]), (strat.label, k)
        moved = set(p0) - frozen
        assert any(not torch.equal(built[k], p0[k]) for k in moved), strat.label


def test_family_step_equals_separate_transfers():
    torch.manual_seed(1)
    net = build_network(4, (16, 16)).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    cfg = tiny_cfg(dtype="float64", optim={"iters": 6})
    eps = [0.5, 2.0, 5.0]
    members = [allen_cahn(e, 3) for e in eps]
    par = stack_parametrisation(SVDTransfer().parametrise(net, params), len(eps))
    s_opt = s_optimizer_for(cfg.transfer)
    fam = family_trainer(members, net, par, cfg, s_optimizer=s_opt)
    run_steps(fam)
    for k, m in enumerate(members):
        single = Trainer(m, net, SVDTransfer().parametrise(net, params), cfg, s_optimizer=s_opt)
        run_steps(single)
        for name, v in single.par.theta.items():
            assert torch.allclose(v, fam.par.theta[name][k], atol=1e-11, rtol=1e-9), (eps[k], name)
        assert abs(single.history[-1][1] - fam.member_history[-1][1][k]) < 1e-9
    # members really differ (different data): their parameters are not all equal
    s = fam.par.theta["2.weight.s"]
    assert not torch.allclose(s[0], s[2])


def test_family_api(pretrained, tmp_path):
    cfg = tiny_cfg(optim={"iters": 5}, transfer={"targets": [1.0, 3.0]})
    members = [allen_cahn(v, 3) for v in (1.0, 3.0)]
    res = fit(Family, cfg, members, source=pretrained, out=tmp_path / "fam")
    assert res.ok and set(res.payload.member_errors) == {m.name for m in members}
    assert (tmp_path / "fam" / "results.h5").exists()
    back = Family.load(tmp_path / "fam")
    assert back.member_errors == res.payload.member_errors and back.members == [m.name for m in members]
    for k, v in res.payload.params.items():
        assert v.shape[0] == 2 and torch.equal(back.params[k], v)
    # member k's slice of the stacked parameters is its own network: it predicts what the trainer does
    tr = res.payload.trainer
    t, x = tr.test.t[:50], tr.test.x[:50]
    u = tr.objective.predict(tr.module, tr.par, t, x, t_shift=tr.t_shift)
    one = {n: v[1] for n, v in back.params.items()}
    from sciml.pinn.solver import predict
    # float32: a vmapped and a direct forward pass round differently (1e-7 on outputs of order 1)
    assert torch.allclose(predict(back.module, one, t, x, t_shift=back.t_shift), u[1], atol=1e-6)
    with pytest.raises(Exception, match="pinn family"):  # a family model is not a single PINN
        PINN.load(tmp_path / "fam")


def test_scratch_is_a_fresh_network():
    net = paper_net()
    params = {k: v.detach() for k, v in net.named_parameters()}
    fresh = Scratch(seed=3).parametrise(net, params).params()
    assert not torch.equal(fresh["2.weight"], params["2.weight"])
    assert torch.all(fresh["2.bias"] == 0)


def test_transfer_strategies_by_name(pretrained, tmp_path):
    """Every registered name is a config choice; a name given to fit is recorded as transfer.method."""
    import dataclasses
    import tomllib

    from sciml.transfer import TransferConfig

    choices = {f.name: f.metadata for f in dataclasses.fields(TransferConfig)}["method"]["choices"]
    assert choices == TRANSFER_STRATEGIES.names() == ("svd", "sigma_only", "full", "last_layer", "frozen_hidden",
                                                      "scratch")
    assert TRANSFER_STRATEGIES.resolve("svd", layers="all_hidden", rank=5, seed=3) == SVDTransfer("all_hidden", 5)
    assert TRANSFER_STRATEGIES.resolve("sigma_only") == SVDTransfer(train_rest=False)
    assert TRANSFER_STRATEGIES.resolve("scratch", layers="x", seed=4) == Scratch(4)
    with pytest.raises(ConfigError, match="transfer.method"):
        tiny_cfg(transfer={"method": "lora"})
    res = transfer(pretrained, tiny_cfg(optim={"iters": 2}), target=2.0, strategy="last_layer", out=tmp_path / "t")
    assert res.payload.n_trainable == 17 and res.payload.method == "last_layer"
    assert tomllib.loads((tmp_path / "t" / "config.toml").read_text())["transfer"]["method"] == "last_layer"
    # the transfer's model is a trained PINN too: it can be the source of another transfer
    again = PINN.load(tmp_path / "t")
    assert again.method == "last_layer" and again.history == [tuple(h) for h in res.payload.history]


def test_transfer_refuses_a_target_of_another_dimension(pretrained):
    with pytest.raises(ConfigError, match="problem.d"):
        fit(Transfer, tiny_cfg(), allen_cahn(1.0, 4), source=pretrained)
    with pytest.raises(ConfigError, match="loss.hard"):
        fit(Family, tiny_cfg(loss={"hard": "initial"}), [allen_cahn(1.0, 3)], source=pretrained)


def test_model_files_are_validated(pretrained, tmp_path):
    from sciml.io.data import DataError

    fit(PINN, tiny_cfg(optim={"iters": 1}), allen_cahn(0.0, 3), out=tmp_path / "ok")
    model = (tmp_path / "ok" / "model.pt").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.pt").write_bytes(model[: len(model) // 2])
    with pytest.raises(DataError, match=r"cut/model.pt is not a readable model file"):
        PINN.load(tmp_path / "cut")
    (tmp_path / "foreign").mkdir()
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign" / "model.pt")
    with pytest.raises(DataError, match="was not written by `sciml pinn train`"):
        PINN.load(tmp_path / "foreign")
    with pytest.raises(DataError, match="has no model.pt"):
        PINN.load(tmp_path)
    blob = torch.load(tmp_path / "ok" / "model.pt")
    blob["params"]["0.weight"] = torch.zeros(3, 3)
    (tmp_path / "edited").mkdir()
    torch.save(blob, tmp_path / "edited" / "model.pt")
    with pytest.raises(DataError, match="do not match the network"):
        PINN.load(tmp_path / "edited")


@pytest.fixture(scope="module")
def pretrained64():
    return fit(PINN, tiny_cfg(dtype="float64", optim={"iters": 10}), allen_cahn(0.0, 3)).payload


def _family_run(src, **over):
    cfg = tiny_cfg(optim={"iters": 4}, transfer={"s_lr": 1e-3}, **over)
    return fit(Family, cfg, [allen_cahn(v, 3) for v in (1.0, 4.0)], source=src).payload.trainer


def test_family_run_chunks_points(pretrained64):
    """laplacian.chunk_size reaches the vmapped family loss: chunked and whole batches take the same steps."""
    whole = _family_run(pretrained64)
    chunked = _family_run(pretrained64, laplacian={"chunk_size": 24})
    for k, v in whole.par.theta.items():
        assert torch.allclose(chunked.par.theta[k], v, rtol=1e-10, atol=1e-12), k
    assert not torch.equal(whole.par.theta["0.weight"][0], whole.par.theta["0.weight"][1])  # members differ


def test_family_run_compiles(pretrained64, can_compile):
    """laplacian.compile = "on" compiles the vmapped family loss (after its check against eager), and
    its steps land on the eager family's."""
    eager = _family_run(pretrained64, laplacian={"compile": "off"})
    comp = _family_run(pretrained64, laplacian={"compile": "on"})
    assert comp.compiled and not eager.compiled
    for k, v in eager.par.theta.items():
        assert torch.allclose(comp.par.theta[k], v, rtol=1e-9, atol=1e-11), k


def test_a_family_of_one_reports_like_a_family(pretrained):
    """One member's family (a rank's share of a sharded family) reports member errors and the largest
    error like any family, so that every rank takes part in the same reductions."""
    res = fit(Family, tiny_cfg(optim={"iters": 3}, log_every=1), [allen_cahn(2.0, 3)], source=pretrained)
    tr = res.payload.trainer
    assert res.metrics["rel_l2_max"] == res.metrics["rel_l2"] == tr.member_history[-1][1][0]
    assert len(tr.member_history) == len(tr.history) == 3
