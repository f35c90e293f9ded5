"""Score wing end to end: problems, data validation, config errors, CLI train/sample, resume, metrics."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from problems.mixtures import digits, digits_reflected, latent_clusters, load_samples, unbalanced_2d, unbalanced_10d
from sciml.cli import main
from sciml.io import DataError
from sciml.run import ConfigError, RunDir, load_config
from sciml.score.metrics import mode_coverage, mode_weights, weight_error
from sciml.score.train import ScoreConfig, load_run, train


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


# ---- data validation -------------------------------------------------------------------------------

def test_load_samples_rejects_bad_files(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]] * 20))
    np.save(tmp_path / "few.npy", np.zeros((3, 2)))
    np.save(tmp_path / "rank1.npy", np.zeros(30))
    np.save(tmp_path / "odd.npy", np.random.rand(20, 1, 7, 7))
    np.save(tmp_path / "const.npy", np.ones((20, 2)))
    with pytest.raises(DataError, match="NaN"):
        load_samples(tmp_path / "nan.npy")
    with pytest.raises(DataError, match="at least 10"):
        load_samples(tmp_path / "few.npy")
    with pytest.raises(DataError, match="rank"):
        load_samples(tmp_path / "rank1.npy")
    with pytest.raises(DataError, match="even"):
        load_samples(tmp_path / "odd.npy")
    with pytest.raises(DataError, match="identical"):
        load_samples(tmp_path / "const.npy")
    with pytest.raises(DataError, match="not found"):
        load_samples(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        fh["other"] = np.random.rand(20, 2)
    with pytest.raises(DataError, match="missing dataset 'samples'"):
        load_samples(tmp_path / "x.h5")


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="ndsm"):
        load_config({"sde": {"kind": "langevin_gmm"}, "train": {"objective": "dsm"}}, ScoreConfig)
    with pytest.raises(ConfigError, match="train.control_variates"):
        load_config({"train": {"control_variates": "maybe"}}, ScoreConfig)
    with pytest.raises(ConfigError, match="beta_max"):
        load_config({"sde": {"beta_min": 5.0, "beta_max": 1.0}}, ScoreConfig)


def test_stiff_langevin_drift_is_refused_before_training_or_gets_enough_steps():
    x = unbalanced_2d().sample(500, generator=torch.Generator().manual_seed(0))
    stiff = {"sde": {"kind": "langevin_gmm", "beta_max": 60.0}}
    cfg = load_config({**stiff, "train": {"objective": "ndsm", "n_time_steps": 100}}, ScoreConfig)
    with pytest.raises(ConfigError, match="train.n_time_steps"):
        train(cfg, x, show_progress=False)
    # left unset, the grid is refined until stiffness x step <= 0.8
    cfg = load_config({**stiff, "train": {"objective": "ndsm", "steps": 1, "batch_size": 8, "bank_paths": 8}},
                      ScoreConfig)
    res = train(cfg, x, show_progress=False)
    srun = res.extra["run"]
    ndsm = srun.extra["objective"]
    assert ndsm.n_steps > 200 and srun.sde.drift_lipschitz() * ndsm.dt <= 0.8 + 1e-9


# ---- CLI and runs ----------------------------------------------------------------------------------

def test_cli_train_sample_roundtrip(tmp_path, capsys):
    prob = unbalanced_2d()
    x = prob.sample(600, generator=torch.Generator().manual_seed(0)).numpy()
    with h5py.File(tmp_path / "data.h5", "w") as fh:
        fh["samples"] = x
    run = tmp_path / "run"
    rc = main(["score", "train", "--data", str(tmp_path / "data.h5"), "--sde", "nonlinear", "--steps", "30",
               "--batch-size", "64", "--eval", "0", "--out", str(run), "--set", "train.n_time_steps=50",
               "train.bank_paths=128", "sample.n_steps=40"])
    assert rc == 0
    assert "success" in capsys.readouterr().out
    rc = main(["score", "sample", str(run), "-n", "50", "--out", str(tmp_path / "s.h5"), "--sampler", "heun"])
    assert rc == 0
    with h5py.File(tmp_path / "s.h5") as fh:
        s = fh["samples"][()]
    assert s.shape == (50, 2) and np.isfinite(s).all()
    # samples are in data units (the normaliser was undone): the bulk lies within the data's range
    assert np.median(np.abs(s)) < 2 * np.abs(x).max()


def test_cli_user_errors_exit_2(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.array([[1.0, np.nan]] * 20))
    assert main(["score", "train", "--data", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "r")]) == 2
    assert "NaN" in capsys.readouterr().err
    assert main(["score", "train", "--problem", "mixture2d", "--set", "train.lr=-1", "--out", str(tmp_path / "r")]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["score", "sample", str(tmp_path / "nowhere"), "-n", "5", "--out", str(tmp_path / "s.h5")]) == 2
    assert "not a score run" in capsys.readouterr().err


def test_resume_continues_and_load_run_reuses_the_fitted_gmm(tmp_path):
    x = unbalanced_2d().sample(800, generator=torch.Generator().manual_seed(0))
    base = {"sde": {"kind": "langevin_gmm"}, "train": {"objective": "ndsm", "steps": 40, "batch_size": 64,
                                                       "n_time_steps": 50, "bank_paths": 128},
            "checkpoint_every": 20}
    cfg = load_config(base, ScoreConfig)
    rd = RunDir(tmp_path / "r")
    res = train(cfg, x, run=rd, show_progress=False)
    assert res.ok
    gmm = res.extra["run"].extra["gmm"]
    srun = load_run(tmp_path / "r")
    torch.testing.assert_close(srun.extra["gmm"].means, gmm.means)
    cfg2 = load_config({**base, "train": {**base["train"], "steps": 60}}, ScoreConfig)
    res2 = train(cfg2, x, run=RunDir(tmp_path / "r"), resume=True, show_progress=False)
    assert res2.ok and res2.extra["step"] == 60
    torch.testing.assert_close(res2.extra["run"].extra["gmm"].weights, gmm.weights)


def test_dsm_vp_and_ve_train_and_sample_finite():
    x = unbalanced_2d().sample(500, generator=torch.Generator().manual_seed(0))
    for kind in ("vp", "ve"):
        cfg = load_config({"sde": {"kind": kind}, "train": {"steps": 20, "batch_size": 64},
                           "sample": {"n_steps": 30}}, ScoreConfig)
        res = train(cfg, x, show_progress=False)
        s = res.extra["run"].generate(100, show_progress=False, generator=torch.Generator().manual_seed(0))
        assert res.ok and s.shape == (100, 2) and torch.isfinite(s).all()


def test_unet_on_digits_trains_a_few_steps():
    x = digits(n=64)
    cfg = load_config({"model": {"arch": "unet", "base_channels": 8, "embed_dim": 8},
                       "train": {"steps": 3, "batch_size": 16}, "sample": {"n_steps": 5}}, ScoreConfig)
    res = train(cfg, x, show_progress=False)
    s = res.extra["run"].generate(4, show_progress=False)
    assert res.ok and s.shape == (4, 1, 8, 8) and torch.isfinite(s).all()
