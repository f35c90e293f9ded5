"""The malformed-input corpus of ``sciml score train`` and ``sciml score sample``.

Every case must exit 2 with one ``error:`` line naming the culprit, no traceback, and leave nothing
behind (tests/badinput.py): impossible counts (``--steps 0``, ``-n -3``), sizes beyond memory or disk
(estimated before anything is allocated), malformed sample files (refused from their header), bad
configs, and run directories whose model or checkpoint is truncated or foreign.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

import sciml
from badinput import Case, check_case
from problems.mixtures import unbalanced_2d
from sciml.run import load_config
from sciml.score import ScoreConfig, ScoreTraining

MIX = ("score", "train", "--problem", "mixture2d", "--n-data", "200", "--eval", "0", "--out", "{tmp}/r")
DATA = ("score", "train", "--eval", "0", "--out", "{tmp}/r", "--data")
SAMPLE = ("score", "sample", "{data}/run", "--out", "{tmp}/s.h5")


def _sample(run: str, *more: str) -> tuple[str, ...]:
    return ("score", "sample", f"{{data}}/{run}", "-n", "10", "--out", "{tmp}/s.h5", *more)


CASES = [
    # counts that cannot work
    Case("train-n-data-negative", (*MIX, "--n-data", "-5"), "--n-data", "count"),
    Case("train-steps-zero", (*MIX, "--steps", "0"), "--steps", "count"),
    Case("train-steps-negative", (*MIX, "--steps", "-1"), "--steps", "count"),
    Case("train-batch-size-zero", (*MIX, "--batch-size", "0"), "--batch-size", "count"),
    Case("train-eval-negative", (*MIX, "--eval", "-1"), "--eval", "count"),
    Case("sample-n-zero", (*SAMPLE, "-n", "0"), "-n", "count"),
    Case("sample-n-negative", (*SAMPLE, "-n", "-3"), "-n", "count"),
    Case("sample-n-steps-zero", (*SAMPLE, "-n", "5", "--n-steps", "0"), "--n-steps", "count"),
    Case("sample-n-steps-negative", (*SAMPLE, "-n", "5", "--n-steps", "-1"), "--n-steps", "count"),
    Case("sample-batch-size-zero", (*SAMPLE, "-n", "5", "--batch-size", "0"), "--batch-size", "count"),
    # sizes beyond memory or disk, estimated before anything is allocated or written
    Case("train-n-data-absurd", (*MIX, "--n-data", "1000000000000"), "--n-data", "size"),
    Case("train-width-exhausts-memory", (*MIX, "--set", "model.width=100000000"), "model.width", "size"),
    Case("train-depth-exhausts-memory", (*MIX, "--set", "model.depth=1000000000"), "model.depth", "size"),
    Case("train-batch-exhausts-memory", (*MIX, "--set", "train.batch_size=100000000000000"), "train.batch_size",
         "size"),
    Case("train-bank-exhausts-memory", (*MIX, "--sde", "langevin_gmm", "--set", "train.n_time_steps=1000000000"),
         "train.n_time_steps", "size"),
    Case("train-eval-absurd", (*MIX, "--eval", "1000000000"), "--eval", "size"),
    Case("sample-n-absurd", (*SAMPLE, "-n", "10000000000000"), "-n", "size"),
    # 10^9 samples of a 1024-d run: a 3.7 TiB file, beyond the disk (10^9 2-d samples, 7.5 GiB, stream)
    Case("sample-n-1e9-wide", _sample("run_wide")[:3] + ("-n", "1000000000", "--out", "{tmp}/s.h5"), "-n", "size"),
    Case("sample-batch-absurd", (*SAMPLE, "-n", "1000000000000", "--batch-size", "1000000000000"), "--batch-size",
         "size"),
    # malformed sample files, refused from what they declare
    Case("data-missing", (*DATA, "{data}/missing.h5"), "missing.h5", "file"),
    Case("data-group-not-dataset", (*DATA, "{data}/group.h5"), "is a group", "file"),
    Case("data-complex", (*DATA, "{data}/complex.npy"), "complex", "file"),
    Case("data-nan", (*DATA, "{data}/nan.npy"), "nan", "file"),
    Case("data-wrong-rank", (*DATA, "{data}/rank1.npy"), "rank", "file"),
    Case("data-text-as-h5", (*DATA, "{data}/text.h5"), "text.h5", "file"),
    Case("data-text-file", (*DATA, "{data}/samples.csv"), "unknown file type", "file"),
    Case("data-huge-declared", (*DATA, "{data}/huge.h5"), "declares shape", "file"),
    Case("data-truncated-npy", (*DATA, "{data}/cut.npy"), "truncated", "file"),
    Case("data-too-few-rows", (*DATA, "{data}/few.npy"), "at least 10", "file"),
    Case("data-odd-images", (*DATA, "{data}/odd.npy"), "even", "file"),
    Case("data-identical", (*DATA, "{data}/const.npy"), "identical", "file"),
    Case("data-wrong-dataset", (*DATA, "{data}/group.h5", "--dataset", "nope"), "missing dataset", "file"),
    # configs and flags
    Case("set-without-value", (*MIX, "--set", "model.width"), "--set", "config"),
    Case("set-unknown-key", (*MIX, "--set", "model.widht=3"), "model.widht", "config"),
    Case("set-unknown-sde", (*MIX, "--set", "sde.kind=foo"), "sde.kind", "config"),
    Case("dsm-on-langevin", (*MIX, "--sde", "langevin_gmm", "--objective", "dsm"), "train.objective", "config"),
    Case("too-many-components", (*MIX, "--sde", "langevin_gmm", "--set", "sde.n_components=150"),
         "sde.n_components", "config"),
    Case("unstable-grid", (*MIX, "--sde", "langevin_gmm", "--set", "sde.beta_max=60", "train.n_time_steps=10"),
         "train.n_time_steps", "config"),
    Case("config-missing", (*MIX, "--config", "{tmp}/none.toml"), "none.toml", "config"),
    Case("no-data-source", ("score", "train", "--out", "{tmp}/r"), "--data", "args"),
    Case("two-data-sources", (*MIX, "--data", "{data}/good.npy"), "--data", "args"),
    Case("out-is-a-file", (*MIX[:-1], "{data}/good.npy"), "--out", "args"),
    Case("resume-nothing", (*MIX, "--resume"), "--resume", "args"),
    Case("threads-zero", (*MIX, "--threads", "0"), "--threads", "args"),
    Case("sample-out-not-h5", ("score", "sample", "{data}/run", "-n", "5", "--out", "{tmp}/s.txt"), "--out", "args"),
    Case("sample-stiff-steps", _sample("run_langevin", "--n-steps", "1"), "--n-steps", "args"),
    # run directories that cannot be sampled from
    Case("sample-not-a-run", _sample("nowhere"), "not a score run", "model"),
    Case("sample-truncated-model", _sample("run_cut_model"), "model.pt", "model"),
    Case("sample-truncated-checkpoint", _sample("run_cut_ckpt"), "ckpt_3.pt", "model"),
    Case("sample-text-model", _sample("run_text_model"), "model.pt", "model"),
    Case("sample-foreign-model", _sample("run_foreign_model"), "not a sciml score model", "model"),
    Case("sample-no-model", _sample("run_empty"), "no model.pt", "model"),
    Case("sample-bad-config", _sample("run_bad_config"), "config.toml", "model"),
]


def _train_run(path, over, data=None):
    base = {"model": {"width": 8, "depth": 1, "embed_dim": 4}, "train": {"steps": 3, "batch_size": 8},
            "sample": {"n_steps": 60}}
    cfg = load_config({**base, **over, "train": {**base["train"], **over.get("train", {})}}, ScoreConfig)
    if data is None:
        data = unbalanced_2d().sample(100, generator=torch.Generator().manual_seed(0))
    assert sciml.fit(ScoreTraining, cfg, data, out=path).ok


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("score_bad_data")
    np.save(d / "good.npy", np.random.default_rng(0).normal(size=(50, 2)))
    np.save(d / "nan.npy", np.array([[0.0, np.nan]] * 20))
    np.save(d / "complex.npy", np.ones((20, 2), dtype=np.complex64))
    np.save(d / "rank1.npy", np.arange(30.0))
    np.save(d / "few.npy", np.random.default_rng(1).normal(size=(3, 2)))
    np.save(d / "odd.npy", np.random.default_rng(2).normal(size=(20, 1, 7, 7)))
    np.save(d / "const.npy", np.ones((20, 2)))
    np.save(d / "cut.npy", np.random.default_rng(3).normal(size=(100, 2)))
    raw = (d / "cut.npy").read_bytes()
    (d / "cut.npy").write_bytes(raw[: len(raw) // 2])
    (d / "text.h5").write_text("x,y\n1,2\n3,4\n")
    (d / "samples.csv").write_text("x,y\n1,2\n3,4\n")
    with h5py.File(d / "group.h5", "w") as fh:
        fh.create_group("samples")["x"] = np.zeros((20, 2))
    with h5py.File(d / "huge.h5", "w") as fh:
        fh.create_dataset("samples", shape=(10**12, 2), dtype="f8")  # declared, never written: a tiny file
    _train_run(d / "run", {})
    _train_run(d / "run_langevin", {"sde": {"kind": "langevin_gmm"}, "train": {"objective": "ndsm",
                                                                             "n_time_steps": 60, "bank_paths": 16}})
    _train_run(d / "run_wide", {}, torch.randn(20, 1024, generator=torch.Generator().manual_seed(1)))
    for name in ("run_cut_model", "run_cut_ckpt", "run_text_model", "run_foreign_model", "run_empty",
                 "run_bad_config"):
        shutil.copytree(d / "run", d / name)
    model = (d / "run" / "model.pt").read_bytes()
    (d / "run_cut_model" / "model.pt").write_bytes(model[: len(model) // 2])
    (d / "run_cut_ckpt" / "model.pt").unlink()
    ckpt = d / "run_cut_ckpt" / "checkpoints" / "ckpt_3.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    (d / "run_text_model" / "model.pt").write_text("not a model\n")
    torch.save({"weights": torch.zeros(3)}, d / "run_foreign_model" / "model.pt")
    (d / "run_empty" / "model.pt").unlink()
    shutil.rmtree(d / "run_empty" / "checkpoints")
    (d / "run_bad_config" / "config.toml").write_text("[sde\nkind = \n")
    return d


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, data, tmp_path):
    check_case(case, tmp_path, data)


def test_corpus_covers_every_class():
    classes = {}
    for c in CASES:
        classes.setdefault(c.cls, []).append(c.id)
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)
    assert set(classes) == {"count", "size", "file", "config", "args", "model"}
    assert all(len(ids) >= 2 for ids in classes.values()), classes


def test_a_good_run_samples_where_the_bad_ones_fail(data, tmp_path):
    """The fixture's run itself is fine: the failures above come from the altered copies and flags."""
    from badinput import run_cli

    code, out, err = run_cli(["score", "sample", str(data / "run"), "-n", "7", "--out", str(tmp_path / "s.h5")])
    assert code == 0, err
    with h5py.File(tmp_path / "s.h5") as fh:
        assert fh["samples"].shape == (7, 2)
