"""Run infrastructure: configs, atomic files, run directory, training loop (resume, divergence), CLI."""

import os
import subprocess
import sys
from dataclasses import dataclass, field

import h5py
import numpy as np
import pytest
import torch

from sciml.run import (ConfigError, RunDir, Status, atomic_path, atomic_write_text, config_to_dict, dump_toml,
                       load_config, param, rng_state, seed_everything, set_rng_state, train_loop)


@dataclass(frozen=True)
class Model:
    width: int = param(64, ge=1)
    activation: str = param("tanh", choices=("tanh", "silu"))


@dataclass(frozen=True)
class Cfg:
    steps: int = param(100, ge=1)
    lr: float = param(1e-3, gt=0, le=1)
    name: str = "run"
    eps: tuple[float, ...] = (0.0,)
    flag: bool = False
    model: Model = field(default_factory=Model)


def test_config_loads_defaults_and_nested_tables(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('steps = 5\neps = [0.5, 2]\n[model]\nwidth = 8\n')
    cfg = load_config(p, Cfg)
    assert cfg == Cfg(steps=5, eps=(0.5, 2.0), model=Model(width=8))
    with pytest.raises(Exception):
        cfg.steps = 3  # frozen


@pytest.mark.parametrize("text, key, words", [
    ("stesp = 5", "stesp", "did you mean 'steps'"),
    ("steps = 'five'", "steps", "expected an integer"),
    ("steps = 0", "steps", ">= 1"),
    ("lr = 2.0", "lr", "<= 1"),
    ("flag = 1", "flag", "true or false"),
    ("[model]\nactivation = 'relu'", "model.activation", "one of"),
    ("[model]\nwdth = 3", "model.wdth", "unknown key"),
    ("eps = [1, 'a']", "eps[1]", "expected a number"),
    ("steps = = 3", "<file>", "not valid TOML"),
])
def test_config_errors_name_the_key(tmp_path, text, key, words):
    p = tmp_path / "c.toml"
    p.write_text(text + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, Cfg)
    msg = str(e.value)
    assert "\n" not in msg and f"'{key}'" in msg and words in msg and str(p) in msg


def test_config_overrides_and_toml_round_trip(tmp_path):
    cfg = load_config({"steps": 7}, Cfg, overrides={"model.width": 3, "lr": 0.5})
    assert cfg.model.width == 3 and cfg.lr == 0.5 and cfg.steps == 7
    p = tmp_path / "r.toml"
    p.write_text(dump_toml(config_to_dict(cfg)))
    assert load_config(p, Cfg) == cfg
    with pytest.raises(ConfigError, match="missing"):
        @dataclass(frozen=True)
        class Req:
            n: int
        load_config({}, Req)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash mid-write")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["f.txt"]  # no temporary left behind


def test_rundir_metrics_results_checkpoints(tmp_path):
    run = RunDir(tmp_path / "run", keep=2)
    run.save_config(Cfg())
    assert load_config(run.path / "config.toml", Cfg) == Cfg()
    for s in range(5):
        run.log_metrics(s, loss=1.0 / (s + 1))
        run.save_checkpoint({"x": torch.tensor([float(s)])}, s)
    assert [c.name for c in run.checkpoints()] == ["ckpt_3.pt", "ckpt_4.pt"]
    assert run.load_checkpoint()["x"].item() == 4.0
    with h5py.File(run.path / "metrics.h5") as fh:
        np.testing.assert_allclose(fh["loss"][()], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    run.write_results({"u": torch.arange(3.0), "group": {"v": np.ones(2)}}, {"status": "success"})
    with h5py.File(run.path / "results.h5") as fh:
        assert fh["u"][()].tolist() == [0, 1, 2] and fh["group/v"].shape == (2,) and fh.attrs["status"] == "success"
    again = RunDir(run.path)  # metrics survive a restart
    assert again.metrics["loss"].shape == (5,)


def _quadratic_problem(seed=0):
    """min_x |A x - b|^2 with noisy gradients: the optimum is known in closed form."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(6, 3, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.05)
    noise_gen = torch.Generator().manual_seed(seed + 1)

    def step(i):
        opt.zero_grad()
        noise = 1e-3 * torch.randn(3, generator=noise_gen, dtype=torch.float64)
        loss = ((A @ x - b) ** 2).sum()
        loss.backward()
        x.grad += noise
        opt.step()
        return {"loss": loss.item()}

    def state():
        return {"x": x.detach().clone(), "opt": opt.state_dict(), "rng": rng_state(noise_gen)}

    def load(st):
        with torch.no_grad():
            x.copy_(st["x"])
        opt.load_state_dict(st["opt"])
        set_rng_state(st["rng"], noise_gen)

    x_star = torch.linalg.lstsq(A, b).solution
    return x, step, state, load, x_star


def test_train_loop_reaches_known_optimum(tmp_path):
    x, step, state, load, x_star = _quadratic_problem()
    res = train_loop(step, 1500, run=RunDir(tmp_path / "r"), state=state, load=load, log_every=100,
                     checkpoint_every=500)
    assert res.status == Status.SUCCESS
    torch.testing.assert_close(x.detach(), x_star, atol=5e-3, rtol=0)


def test_resume_after_interruption_gives_identical_parameters(tmp_path):
    x1, step, state, load, _ = _quadratic_problem()
    train_loop(step, 300, run=RunDir(tmp_path / "a"), state=state, load=load, checkpoint_every=50)
    x2, step2, state2, load2, _ = _quadratic_problem()
    run = RunDir(tmp_path / "b")
    r = train_loop(step2, 300, run=run, state=state2, load=load2, checkpoint_every=50, stop_at=130)
    assert r.status == Status.INTERRUPTED
    # a fresh process: new objects, resumed from the latest checkpoint (step 100)
    x3, step3, state3, load3, _ = _quadratic_problem()
    r = train_loop(step3, 300, run=run, state=state3, load=load3, checkpoint_every=50, resume=True)
    assert r.status == Status.SUCCESS
    assert torch.equal(x3.detach(), x1.detach())
    assert run.metrics["step"].tolist() == sorted(set(run.metrics["step"].tolist()))  # no duplicated rows


def test_diverging_run_stops_and_keeps_last_good_checkpoint(tmp_path):
    w = torch.ones(1)

    def step(i):
        w.mul_(10.0 if i >= 25 else 1.0)
        return {"loss": (w**40).item()}  # float32: overflows to inf a few steps after 25

    run = RunDir(tmp_path / "d")
    res = train_loop(step, 100, run=run, state=lambda: {"w": w.clone()}, checkpoint_every=10)
    assert res.status == Status.DIVERGED and "diverged" in res.message and "ckpt_" in res.message
    good = run.load_checkpoint()
    assert good["step"] == 20 and torch.isfinite(good["w"] ** 40).all()


def test_seed_everything_reproducible():
    g1 = seed_everything(3)
    a = torch.rand(3, generator=g1), torch.rand(2)
    g2 = seed_everything(3)
    b = torch.rand(3, generator=g2), torch.rand(2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sciml", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "SCIML_PROGRESS": "0"})


def test_cli_info_and_help():
    r = _cli("info")
    assert r.returncode == 0 and f"torch {torch.__version__}" in r.stdout and "threads:" in r.stdout
    r = _cli("--help")
    assert r.returncode == 0 and "demo" in r.stdout


@pytest.mark.parametrize("toml, words", [
    ("[autodiff]\nwidht = 3\n", "autodiff.widht"),
    ("[autodiff]\ndim = 0\n", ">= 1"),
    ("[autodif]\n", "unknown demo section"),
])
def test_cli_bad_config_exits_2_with_one_line(tmp_path, toml, words):
    p = tmp_path / "demo.toml"
    p.write_text(toml)
    r = _cli("demo", "--only", "autodiff", "--config", str(p))
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_missing_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    r = _cli("demo", "--device", "cuda")
    assert r.returncode == 2 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr


def test_parse_overrides_reads_toml_values_and_rejects_missing_equals():
    from sciml.run import parse_overrides

    got = parse_overrides(["train.lr=1e-3", "steps = 5", "name=run_a", "eps=[0.5, 2]", "flag=true"])
    assert got == {"train.lr": 1e-3, "steps": 5, "name": "run_a", "eps": [0.5, 2], "flag": True}
    assert parse_overrides(None) == {}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])
    cfg = load_config({}, Cfg, overrides=parse_overrides(["model.width=8", "lr=0.5"]))
    assert cfg.model.width == 8 and cfg.lr == 0.5


def test_log_handler_follows_a_replaced_stderr(monkeypatch):
    """setup_logging's handler writes to sys.stderr as it is when a record is emitted: after the stream it
    was set up with is closed and replaced (a test harness, a notebook), records reach the new stream and
    no "Logging error" is printed."""
    import io
    import logging
    import sys

    from sciml.run.runtime import setup_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging("INFO")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("sciml.test").info("after the swap")
    assert "after the swap" in second.getvalue() and "Logging error" not in second.getvalue()
