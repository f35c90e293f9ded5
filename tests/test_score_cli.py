"""Score wing end to end: problems, data validation, config errors, sciml.fit / load, kill and resume,
registries, the CLI train/sample round trip, metrics."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

import sciml
from problems.mixtures import (PROBLEMS, digits, digits_reflected, latent_clusters, problem_samples, unbalanced_2d,
                               unbalanced_10d)
from sciml.cli import main
from sciml.io import DataError
from sciml.run import ConfigError, Status, UserError, load_config
from sciml.score import (OBJECTIVES, SAMPLERS, SDES, WEIGHTINGS, DSM, NDSM, EulerMaruyama, ModelConfig, ProbabilityFlow,
                         SampleConfig, ScoreConfig, ScoreRun, ScoreTraining, TrainConfig, UniformWeighting, VPSDE,
                         load_samples)
from sciml.score.metrics import mode_coverage, mode_weights, weight_error


def _mixture(n=500, seed=0):
    return unbalanced_2d().sample(n, generator=torch.Generator().manual_seed(seed))


# ---- problems and metrics --------------------------------------------------------------------------

@pytest.mark.parametrize("make", [unbalanced_2d, unbalanced_10d, latent_clusters])
def test_mixture_problems_sample_their_weights_and_density(make):
    prob = make()
    x, lab = prob.sample(40_000, generator=torch.Generator().manual_seed(0), return_labels=True)
    freq = torch.bincount(lab, minlength=prob.n_components).double() / len(lab)
    np.testing.assert_allclose(freq.numpy(), prob.weights, atol=0.01)
    w, off = mode_weights(x, prob.weights, prob.means, prob.covariances)
    assert weight_error(w, prob.weights) < 0.012 and off < 0.005
    assert mode_coverage(w, prob.weights) == prob.n_components
    lp = prob.log_prob(x[:2000])
    assert torch.isfinite(lp).all()


def test_mode_metrics_detect_a_missing_mode():
    prob = unbalanced_2d()
    x, lab = prob.sample(5000, generator=torch.Generator().manual_seed(1), return_labels=True)
    w, _ = mode_weights(x[lab != 2], prob.weights, prob.means, prob.covariances)
    assert mode_coverage(w, prob.weights) == 2
    assert weight_error(w, prob.weights) == pytest.approx(0.05, abs=0.01)


def test_digits_load_without_download_and_can_be_unbalanced():
    x, y = digits(return_labels=True)
    assert x.shape == (1797, 1, 8, 8) and float(x.min()) == -1.0 and float(x.max()) == 1.0
    xu, yu = digits(classes=[0, 1, 2], class_weights=[0.8, 0.15, 0.05], n=200, return_labels=True)
    assert torch.bincount(yu).tolist()[:3] == [160, 30, 10]
    xr, yr = digits_reflected(fraction=0.5)
    assert xr.shape[0] == 1797 + 898
    torch.testing.assert_close(xr[1797:].flip(-1).shape, xr[:898].shape)


def test_catalogue_names_every_problem_and_draws_its_samples():
    assert set(PROBLEMS) == {"mixture2d", "mixture10d", "latent10d", "digits", "digits_reflected"}
    s = problem_samples("mixture10d", 300, generator=torch.Generator().manual_seed(0))
    assert s.data.shape == (300, 10) and s.mixture.n_components == 3 and s.labels is None
    d = problem_samples("digits", 10)
    assert d.data.shape == (1797, 1, 8, 8) and d.labels.unique().numel() == 10
    with pytest.raises(KeyError, match="mixture2d"):
        problem_samples("nope", 10)


# ---- data validation -------------------------------------------------------------------------------

def test_load_samples_rejects_bad_files(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]] * 20))
    np.save(tmp_path / "few.npy", np.zeros((3, 2)))
    np.save(tmp_path / "rank1.npy", np.zeros(30))
    np.save(tmp_path / "odd.npy", np.random.rand(20, 1, 7, 7))
    np.save(tmp_path / "const.npy", np.ones((20, 2)))
    np.save(tmp_path / "complex.npy", np.ones((20, 2), dtype=np.complex64))
    for name, match in (("nan", "NaN"), ("few", "at least 10"), ("rank1", "rank"), ("odd", "even"),
                        ("const", "identical"), ("complex", "complex")):
        with pytest.raises(DataError, match=match):
            load_samples(tmp_path / f"{name}.npy")
    with pytest.raises(DataError, match="not found"):
        load_samples(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        fh["other"] = np.random.rand(20, 2)
        fh.create_group("grp")["samples"] = np.random.rand(20, 2)
        fh.create_dataset("huge", shape=(10**12, 2), dtype="f8")  # declared, never written
    with pytest.raises(DataError, match="missing dataset 'samples'"):
        load_samples(tmp_path / "x.h5")
    with pytest.raises(DataError, match="is a group"):
        load_samples(tmp_path / "x.h5", dataset="grp")
    with pytest.raises(DataError, match="declares shape"):
        load_samples(tmp_path / "x.h5", dataset="huge")
    np.save(tmp_path / "cut.npy", np.random.rand(100, 2))
    raw = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_samples(tmp_path / "cut.npy")


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="ndsm"):
        load_config({"sde": {"kind": "langevin_gmm"}, "train": {"objective": "dsm"}}, ScoreConfig)
    with pytest.raises(ConfigError, match="train.control_variates"):
        load_config({"train": {"control_variates": "maybe"}}, ScoreConfig)
    with pytest.raises(ConfigError, match="beta_max"):
        load_config({"sde": {"beta_min": 5.0, "beta_max": 1.0}}, ScoreConfig)
    with pytest.raises(ConfigError, match="train.steps"):  # a config built in Python is checked by build too
        sciml.fit(ScoreTraining, ScoreConfig(train=TrainConfig(steps=0)), _mixture())


def test_stiff_langevin_drift_is_refused_before_training_or_gets_enough_steps(tmp_path):
    x = _mixture()
    stiff = {"sde": {"kind": "langevin_gmm", "beta_max": 60.0}}
    cfg = load_config({**stiff, "train": {"objective": "ndsm", "n_time_steps": 100}}, ScoreConfig)
    with pytest.raises(ConfigError, match="train.n_time_steps"):
        sciml.fit(ScoreTraining, cfg, x, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before the run directory was made
    # left unset, the grid is refined until stiffness x step <= 0.8
    cfg = load_config({**stiff, "train": {"objective": "ndsm", "steps": 1, "batch_size": 8, "bank_paths": 8}},
                      ScoreConfig)
    srun = sciml.fit(ScoreTraining, cfg, x).payload
    assert srun.objective.n_steps > 200 and srun.sde.drift_lipschitz() * srun.objective.dt <= 0.8 + 1e-9


def test_a_run_too_large_for_memory_is_refused_with_the_number(tmp_path):
    cfg = ScoreConfig(model=ModelConfig(width=10**7))  # 3 layers of 1e14 weights: petabytes
    with pytest.raises(ConfigError, match=r"model\.width.*needs about [0-9.]+ PiB"):
        sciml.fit(ScoreTraining, cfg, _mixture(), out=tmp_path / "r")
    cfg = load_config({"sde": {"kind": "langevin_gmm"}, "train": {"objective": "ndsm", "n_time_steps": 10**9}},
                      ScoreConfig)
    with pytest.raises(ConfigError, match="train.n_time_steps"):
        sciml.fit(ScoreTraining, cfg, _mixture(), out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("arch,shape", [("mlp", (3,)), ("mlp", (1, 4, 4)), ("unet", (1, 4, 4))])
def test_memory_estimate_counts_the_real_network(arch, shape):
    """The closed-form (MLP) or meta-device (U-Net) count equals the parameters and per-sample leaf-module
    outputs of the network actually built."""
    from sciml.score.build import build_net, net_footprint

    cfg = ModelConfig(arch=arch, width=7, depth=4, embed_dim=6, base_channels=8)
    net = build_net(cfg, shape)
    acts = [0]
    for m in net.modules():
        if not list(m.children()):
            m.register_forward_hook(lambda mod, i, o: acts.__setitem__(0, acts[0] + o.numel()))
    net(torch.zeros(1, *shape), torch.zeros(1))
    assert net_footprint(cfg, shape) == (sum(p.numel() for p in net.parameters()), acts[0])


def test_build_refuses_bad_samples():
    for bad, match in ((torch.zeros(5), "rank"), (torch.ones(10, 2), "identical"),
                       (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), "NaN"), ([[1.0, 2.0]], "tensor")):
        with pytest.raises(DataError, match=match):
            sciml.fit(ScoreTraining, ScoreConfig(), bad)


# ---- registries ------------------------------------------------------------------------------------

def test_registries_name_the_config_choices_and_resolve_objects():
    assert SDES.names() == ("vp", "ve", "langevin_gmm") and OBJECTIVES.names() == ("dsm", "ndsm")
    assert SAMPLERS.names() == ("em", "heun", "ode", "ode_rk4")
    assert WEIGHTINGS.names() == ("noise_variance", "uniform")
    for key, reg in (("sde.kind", SDES), ("train.objective", OBJECTIVES), ("sample.sampler", SAMPLERS),
                     ("train.weighting", WEIGHTINGS)):
        with pytest.raises(ConfigError, match=str(list(reg.names())).replace("[", r"\[").replace("]", r"\]")):
            table, name = key.split(".")
            load_config({table: {name: "nope"}}, ScoreConfig)
    assert SAMPLERS.resolve("ode_rk4") == ProbabilityFlow("rk4")
    assert SAMPLERS.resolve(EulerMaruyama()) == EulerMaruyama()
    sde = VPSDE((2,))
    assert isinstance(DSM(sde, weighting="uniform").weighting, UniformWeighting)
    assert isinstance(OBJECTIVES.resolve("ndsm", sde=sde, n_steps=10, eps=0.1), NDSM)


def test_sampler_given_by_name_or_object_gives_the_same_samples():
    srun = sciml.fit(ScoreTraining, ScoreConfig(train=TrainConfig(steps=5, batch_size=32),
                                                 sample=SampleConfig(n_steps=10)), _mixture()).payload
    a = srun.generate(64, sampler="ode", generator=torch.Generator().manual_seed(1), show_progress=False)
    b = srun.generate(64, sampler=ProbabilityFlow(), generator=torch.Generator().manual_seed(1), show_progress=False)
    assert torch.equal(a, b)  # the probability flow is deterministic given the prior draw
    batches = list(srun.batches(64, sampler="ode", batch_size=10, generator=torch.Generator().manual_seed(1),
                                show_progress=False))
    assert [len(x) for x in batches] == [10] * 6 + [4]
    c = srun.generate(64, sampler="ode", batch_size=10, generator=torch.Generator().manual_seed(1), show_progress=False)
    assert torch.equal(torch.cat(batches), c)


# ---- the five lines, load, kill and resume ----------------------------------------------------------

def test_five_line_usage(tmp_path):
    """The five lines of docs/score.md, run as they are written there."""
    from docblocks import run_block

    ns = run_block("score.md", "five-lines", {"torch": torch, "sciml": sciml, "unbalanced_2d": unbalanced_2d,
                                              "ScoreConfig": ScoreConfig, "TrainConfig": TrainConfig,
                                              "SampleConfig": SampleConfig, "ScoreTraining": ScoreTraining,
                                              "tmp": tmp_path})
    problem, res, payload, value = ns["problem"], ns["res"], ns["payload"], ns["value"]
    assert res.status == Status.SUCCESS and res.step == 30 and np.isfinite(value)
    assert isinstance(payload, ScoreRun) and isinstance(res.payload, ScoreRun) and payload.step == 30
    for k, v in res.payload.model.net.state_dict().items():
        assert torch.equal(v, payload.model.net.state_dict()[k]), k
    torch.testing.assert_close(payload.shift, problem.mean(0))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(payload.generate(50, generator=g(), show_progress=False),
                       res.payload.generate(50, generator=g(), show_progress=False))


_KILL = {"seed": 4, "sde": {"kind": "langevin_gmm"}, "model": {"width": 16, "depth": 2, "embed_dim": 8},
         "train": {"objective": "ndsm", "steps": 16, "batch_size": 16, "n_time_steps": 60, "bank_paths": 32,
                   "refresh_every": 8, "control_variates": "learned"},
         "sample": {"n_steps": 60}, "checkpoint_every": 5, "log_every": 1}


def _trained_state(payload: ScoreRun, m_state: dict) -> dict[str, torch.Tensor]:
    out = {f"net.{k}": v for k, v in m_state["net"].items()}
    out.update({f"ema.{k}": v for k, v in m_state["ema"]["shadow"].items()})
    out.update({f"cv.{k}": v for k, v in (m_state["cv"] or {}).items()})
    out.update({f"gmm.{k}": v for k, v in (m_state["gmm"] or {}).items()})
    out["bank"] = m_state["bank"] if m_state["bank"] is not None else torch.zeros(0)
    out["payload.t"] = torch.tensor(payload.t_min)
    return out


@pytest.mark.parametrize("over", [{}, {"sde": {"kind": "vp"}, "train": {"objective": "dsm"}}],
                         ids=["ndsm_between_refreshes", "dsm"])
def test_kill_and_resume_is_bit_identical(tmp_path, over):
    """Checkpoints every 5 steps, bank refreshed every 8: a kill at 12 resumes from the checkpoint at 10,
    whose bank was simulated at step 8 and must be the one used for steps 10-15 (a bank rebuilt on resume
    would change the control-variate coefficients)."""
    d = {**_KILL, **{k: {**_KILL[k], **v} for k, v in over.items()}}
    cfg = load_config(d, ScoreConfig)
    x = _mixture(200, seed=1)
    captured = {}

    class Probe(ScoreTraining):  # the method's full state at the end of the run
        def finish(self, run, result):
            captured[run.path.name] = self.state()
            return super().finish(run, result)

    a = sciml.fit(Probe, cfg, x, out=tmp_path / "a")
    b = sciml.fit(Probe, cfg, x, out=tmp_path / "b", stop_at=12)
    assert b.status == Status.INTERRUPTED and b.step == 12
    b = sciml.fit(Probe, cfg, x, out=tmp_path / "b", resume=True)
    assert a.ok and b.ok and b.step == 16
    sa, sb = _trained_state(a.payload, captured["a"]), _trained_state(b.payload, captured["b"])
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert torch.equal(captured["a"]["rng"]["generator"], captured["b"]["rng"]["generator"])
    if over == {}:
        assert any(k.startswith("cv.") for k in sa) and sa["bank"].numel() > 0
        for k, v in ScoreTraining.load(tmp_path / "b").objective.cv.state_dict().items():
            assert torch.equal(v, captured["a"]["cv"][k]), k


def test_resume_with_other_data_or_config_is_refused(tmp_path):
    cfg = load_config({**_KILL, "train": {**_KILL["train"], "steps": 8}}, ScoreConfig)
    x = _mixture(200, seed=1)
    sciml.fit(ScoreTraining, cfg, x, out=tmp_path / "r", stop_at=6)
    with pytest.raises(UserError, match="samples differ"):
        sciml.fit(ScoreTraining, cfg, _mixture(200, seed=2), out=tmp_path / "r", resume=True)
    other = load_config({**_KILL, "train": {**_KILL["train"], "steps": 9}}, ScoreConfig)
    with pytest.raises(ConfigError, match="train.steps"):
        sciml.fit(ScoreTraining, other, x, out=tmp_path / "r", resume=True)


def test_dsm_vp_and_ve_train_and_sample_finite():
    x = _mixture()
    for kind in ("vp", "ve"):
        cfg = load_config({"sde": {"kind": kind}, "train": {"steps": 20, "batch_size": 64},
                           "sample": {"n_steps": 30}}, ScoreConfig)
        res = sciml.fit(ScoreTraining, cfg, x)
        s = res.payload.generate(100, show_progress=False, generator=torch.Generator().manual_seed(0))
        assert res.ok and s.shape == (100, 2) and torch.isfinite(s).all()


def test_unet_on_digits_trains_a_few_steps():
    x = digits(n=64)
    cfg = load_config({"model": {"arch": "unet", "base_channels": 8, "embed_dim": 8},
                       "train": {"steps": 3, "batch_size": 16}, "sample": {"n_steps": 5}}, ScoreConfig)
    res = sciml.fit(ScoreTraining, cfg, x)
    s = res.payload.generate(4, show_progress=False)
    assert res.ok and s.shape == (4, 1, 8, 8) and torch.isfinite(s).all()


def test_given_mixture_is_used_instead_of_a_fit():
    from sciml.score import GMM

    gmm = GMM.from_covariances([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], torch.eye(2).expand(2, 2, 2) * 0.3)
    cfg = load_config({"sde": {"kind": "langevin_gmm"}, "train": {"objective": "ndsm", "steps": 2, "batch_size": 8,
                                                                  "n_time_steps": 20, "bank_paths": 8}}, ScoreConfig)
    srun = sciml.fit(ScoreTraining, cfg, _mixture(), gmm=gmm).payload
    assert torch.equal(srun.gmm.means, gmm.means)


# ---- CLI -------------------------------------------------------------------------------------------

def test_cli_train_sample_roundtrip(tmp_path, capsys):
    x = _mixture(600).numpy()
    with h5py.File(tmp_path / "data.h5", "w") as fh:
        fh["samples"] = x
    run = tmp_path / "run"
    rc = main(["score", "train", "--data", str(tmp_path / "data.h5"), "--sde", "langevin_gmm", "--steps", "30",
               "--batch-size", "64", "--eval", "200", "--out", str(run), "--set", "train.n_time_steps=50",
               "train.bank_paths=128", "--set", "sample.n_steps=40"])
    out = capsys.readouterr().out
    assert rc == 0 and "score train: success" in out and "MMD^2" in out
    cfg = load_config(run / "config.toml", ScoreConfig)  # both --set syntaxes, and the objective for the SDE
    assert (cfg.train.n_time_steps, cfg.train.bank_paths, cfg.sample.n_steps, cfg.train.objective) == (50, 128, 40,
                                                                                                       "ndsm")
    with h5py.File(run / "results.h5") as fh:
        assert fh["samples"].shape == (200, 2)
    rc = main(["score", "sample", str(run), "-n", "50", "--out", str(tmp_path / "s.h5"), "--sampler", "heun",
               "--batch-size", "16"])
    assert rc == 0
    with h5py.File(tmp_path / "s.h5") as fh:
        s = fh["samples"][()]
    assert s.shape == (50, 2) and np.isfinite(s).all()
    # samples are in data units (the normaliser was undone): the bulk lies within the data's range
    assert np.median(np.abs(s)) < 2 * np.abs(x).max()


def test_cli_problem_run_reports_mode_weights_and_resumes(tmp_path, capsys):
    run = str(tmp_path / "r")
    argv = ["score", "train", "--problem", "mixture2d", "--n-data", "300", "--steps", "12", "--eval", "100",
            "--out", run, "--set", "checkpoint_every=5", "sample.n_steps=20"]
    assert main(argv + ["--stop-at", "7"]) == 3
    assert "interrupted" in capsys.readouterr().out
    assert main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out
    assert "mode weights" in out and "success" in out
    assert main(argv) == 2  # a fresh run into a folder that holds one


def test_cli_user_errors_exit_2(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.array([[1.0, np.nan]] * 20))
    assert main(["score", "train", "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "r")]) == 2
    assert "NaN" in capsys.readouterr().err
    assert main(["score", "train", "--problem", "mixture2d", "--set", "train.lr=-1", "--out", str(tmp_path / "r")]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["score", "sample", str(tmp_path / "nowhere"), "-n", "5", "--out", str(tmp_path / "s.h5")]) == 2
    assert "not a score run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "nowhere").exists()
