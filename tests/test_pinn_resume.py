"""Kill and resume: a run stopped between two checkpoints and resumed ends bit-identical to an
uninterrupted one, in every piece of trained state (parameters, optimiser moments and step counts, lr
schedules, the noise generator and torch's RNG, error histories, resampled points), for a PINN,
a transfer and a family run, and through the command line; plus the five-line usage."""

import math

import pytest
import torch

import sciml
from problems.pdes import allen_cahn, family_member
from sciml.pinn import PINN, OptimConfig, PINNConfig, TrainedPINN
from sciml.pinn.sampling import Points
from sciml.run import load_config
from sciml.transfer import Family, TrainedFamily, Transfer, TransferRunConfig

# checkpoints every 5 steps; the interrupted run stops at 12, so the resumed one must redo 10 and 11
TINY = {"problem": {"family": "allen_cahn", "value": 1.0, "d": 3}, "model": {"widths": [12, 12]},
        "sampling": {"n_interior": 32, "n_boundary": 16, "n_initial": 16, "n_test": 100, "sampler": "radial",
                     "resample": False},
        "optim": {"iters": 20, "lr": 5e-3, "decay_rate": 0.5, "decay_steps": 7}, "log_every": 3,
        "checkpoint_every": 5}
IGNORED = {"train_seconds", "wall_seconds", "elapsed", "time"}  # wall-clock timers, not trained state


def cfg_of(**over):
    base = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY.items()}
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config(base, TransferRunConfig)


def assert_same(a, b, where="state"):
    """Bit-identical nested state: tensors with torch.equal, everything else with ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), (where, set(a) ^ set(b))
        for k in a:
            if k not in IGNORED:
                assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, Points):
        assert_same(vars(a), vars(b), where)
    else:
        assert a == b, (where, a, b)


def kill_and_resume(method, cfg, problem, tmp_path, **options):
    """Run A uninterrupted; run B stopped at 12 (after the checkpoint at 10), then resumed."""
    a = sciml.fit(method, cfg, problem, out=tmp_path / "a", **options)
    cut = sciml.fit(method, cfg, problem, out=tmp_path / "b", stop_at=12, **options)
    assert cut.status.value == "interrupted" and cut.step == 12
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").glob("*.pt")) == ["ckpt_10.pt", "ckpt_5.pt"]
    b = sciml.fit(method, cfg, problem, out=tmp_path / "b", resume=True, **options)
    assert a.ok and b.ok and b.step == a.step == cfg.optim.iters + cfg.optim.lbfgs_iters + cfg.optim.gn_iters
    sa, sb = a.payload.trainer.state(), b.payload.trainer.state()
    assert_same(sa, sb)
    # the comparison can fail: the runs moved the parameters from their start, and another seed differs
    other = sciml.fit(method, cfg_of(**{**_over(cfg), "seed": 1}), problem, **options).payload.trainer.state()
    assert any(not torch.equal(sa["theta"][k], other["theta"][k]) for k in sa["theta"])
    return a, b


def _over(cfg):
    from sciml.run import config_to_dict

    d = config_to_dict(cfg)
    d["problem"].pop("name")
    return d


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: one thread is fastest, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def source():
    return sciml.fit(PINN, cfg_of(optim={"iters": 15}), allen_cahn(0.0, 3)).payload


def test_pinn_train_resumes_bit_identically(tmp_path):
    # SDGD noise and fresh points every step: the generator and the points must be in the checkpoint
    cfg = cfg_of(sampling={"resample": True}, laplacian={"method": "sdgd", "probes": 2})
    a, b = kill_and_resume(PINN, cfg, allen_cahn(1.0, 3), tmp_path)
    assert len(a.payload.history) == 8  # steps 0, 3, ..., 18 and the last one
    assert a.metrics == {k: v for k, v in b.metrics.items()}
    back = PINN.load(tmp_path / "b")
    assert isinstance(back, TrainedPINN) and all(torch.equal(back.params[k], v) for k, v in a.payload.params.items())


def test_pinn_with_lbfgs_resumes_bit_identically(tmp_path):
    cfg = cfg_of(optim={"iters": 8, "lbfgs_iters": 12})  # the cut at 12 falls in the L-BFGS phase
    a, b = kill_and_resume(PINN, cfg, allen_cahn(1.0, 3), tmp_path)
    assert a.payload.trainer.state()["lbfgs"]["state"]


def test_transfer_with_levenberg_marquardt_resumes_bit_identically(tmp_path, source):
    # the cut at 12 falls in the Levenberg-Marquardt phase: its damping and fresh points must be restored
    cfg = cfg_of(optim={"iters": 8, "gn_iters": 12, "gn_points": 24}, sampling={"resample": True})
    a, _ = kill_and_resume(Transfer, cfg, allen_cahn(2.0, 3), tmp_path, source=source)
    lm = a.payload.trainer.state()["lm"]
    assert lm["accepted"] >= 1 and lm["damping"] != cfg.optim.gn_damping


def test_transfer_resumes_bit_identically(tmp_path, source):
    # two optimisers (Adam, and SGD with momentum for the singular values) and an lr schedule
    cfg = cfg_of(transfer={"s_lr": 1e-3, "s_momentum": 0.5}, laplacian={"method": "hutchinson", "probes": 2})
    a, _ = kill_and_resume(Transfer, cfg, allen_cahn(2.0, 3), tmp_path, source=source)
    assert len(a.payload.trainer.state()["opts"]) == 2 and a.payload.history[0][0] == 0  # the start's error


def test_family_resumes_bit_identically(tmp_path, source):
    cfg = cfg_of(transfer={"s_lr": 1e-3})
    members = [allen_cahn(v, 3) for v in (0.5, 2.0, 4.0)]
    a, b = kill_and_resume(Family, cfg, members, tmp_path, source=source)
    assert isinstance(b.payload, TrainedFamily) and len(a.payload.member_history) == len(a.payload.history)
    assert set(b.payload.member_errors) == {m.name for m in members}


def test_cli_stop_at_then_resume(tmp_path):
    """`sciml pinn train --stop-at` exits 3 (interrupted); `--resume` finishes on the uninterrupted run's state."""
    from sciml.cli import main

    conf = tmp_path / "tiny.toml"
    from sciml.run import dump_toml

    conf.write_text(dump_toml({**TINY, "sampling": {**TINY["sampling"], "resample": True}}))
    assert main(["pinn", "train", str(conf), "--out", str(tmp_path / "a")]) == 0
    assert main(["pinn", "train", str(conf), "--out", str(tmp_path / "b"), "--stop-at", "12"]) == 3
    assert main(["pinn", "train", str(conf), "--out", str(tmp_path / "b"), "--resume"]) == 0
    ka = torch.load(tmp_path / "a" / "checkpoints" / "ckpt_20.pt", weights_only=False)
    kb = torch.load(tmp_path / "b" / "checkpoints" / "ckpt_20.pt", weights_only=False)
    assert_same({k: v for k, v in ka.items() if k != "step"}, {k: v for k, v in kb.items() if k != "step"})
    assert PINN.load(tmp_path / "b").config.problem.name == "allen_cahn(eps=1, d=3)"


def test_five_line_usage(tmp_path):
    problem = family_member("allen_cahn", 0.0, 2)
    cfg = PINNConfig(optim=OptimConfig(iters=30))
    res = sciml.fit(PINN, cfg, problem, out=tmp_path)
    payload = PINN.load(tmp_path)
    value = res.metrics["rel_l2"]

    assert res.ok and isinstance(payload, TrainedPINN) and math.isfinite(value)
    assert 0 < value < 1.5 and value == res.payload.history[-1][1]
    assert payload.problem == problem.name and payload.config.problem.d == 2
    t, x = res.payload.trainer.test.t, res.payload.trainer.test.x
    from sciml.pinn import relative_l2

    assert math.isclose(relative_l2(payload.predict(t, x), problem.exact(t, x))[0], value, rel_tol=1e-5)


def test_pinn_with_spring_resumes_bit_identically(tmp_path):
    # natural-gradient steps with momentum: the last direction and the fresh points must be restored
    cfg = cfg_of(optim={"optimizer": "spring", "ng_lr": 0.05}, sampling={"resample": True})
    a, _ = kill_and_resume(PINN, cfg, allen_cahn(1.0, 3), tmp_path)
    st = a.payload.trainer.state()["spring"]
    assert st["steps"] == 20 and st["phi"].abs().max() > 0
