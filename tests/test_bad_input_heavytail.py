"""Malformed input to ``sciml heavytail train`` and ``sciml heavytail sample``.

Every case must exit 2 with one ``error:`` line naming the culprit, no traceback, and leave nothing
behind (harness: ``tests/badinput.py``). Sizes that cannot fit (``--dim 10^9``, ``--n-data 10^12``,
``-n 10^9``) are refused from the estimate, before anything is allocated. The runs the sample and
resume cases need are trained once, tiny, by the module fixture; the valid commands are checked too.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from badinput import Case, check_case, run_cli
from problems.heavy_tails import student_t

TRAIN = ("heavytail", "train")
OUT = ("--out", "{tmp}/run")
# the flags of the fixture's GAN run; the resume cases change one thing
RUN_FLAGS = ("--model", "gan", "--steps", "3", "--set", "batch=32", "n_samples=300", "critic.width=8",
             "critic.depth=1", "gan.width=8", "gan.depth=1", "checkpoint_every=1")


def _train(cid: str, args: str, names: str, cls: str, out: tuple[str, ...] = OUT) -> Case:
    return Case(f"train-{cid}", TRAIN + tuple(args.split()) + out, names, cls)


def _sample(cid: str, run: str, args: str, names: str, cls: str) -> Case:
    return Case(f"sample-{cid}", ("heavytail", "sample", "{data}/" + run) + tuple(args.split()), names, cls)


S_OUT = "--out {tmp}/s.h5"

CASES = [
    # sizes: refused from the estimate, in well under a second
    _train("dim-1e9", "--problem student_t --dim 1000000000", "--dim", "size"),
    _train("n-data-1e12", "--problem student_t --n-data 1000000000000", "--n-data", "size"),
    _train("cauchy-embed-1e9", "--problem cauchy_power --dim 10 --embed-dim 1000000000", "--embed-dim", "size"),
    _train("n-data-negative", "--problem student_t --n-data -5", "--n-data", "range"),
    _train("n-data-too-few", "--problem pareto --n-data 10", "--n-data", "range"),
    _train("dim-zero", "--problem mixed --dim 0", "--dim", "range"),
    _train("nu-negative", "--problem student_t --nu -1", "--nu", "range"),
    _train("nu-nan", "--problem student_t --nu nan", "--nu", "nonfinite"),
    _train("nu-inf", "--problem pareto --nu inf", "--nu", "nonfinite"),
    _train("embed-below-dim", "--problem cauchy_power --dim 10 --embed-dim 5", "--embed-dim", "range"),
    _train("embed-not-cauchy", "--problem student_t --embed-dim 5", "--embed-dim", "choice"),
    # data files
    _train("data-missing", "--data {data}/missing.npy", "missing.npy", "path"),
    _train("data-a-folder", "--data {data}/adir.npy", "adir.npy", "path"),
    _train("data-text", "--data {data}/text.npy", "text.npy", "format"),
    _train("data-unknown-suffix", "--data {data}/samples.csv", "samples.csv", "format"),
    _train("data-group", "--data {data}/group.h5", "group", "format"),
    _train("data-complex", "--data {data}/complex.npy", "complex", "dtype"),
    _train("data-strings", "--data {data}/strings.npy", "strings.npy", "dtype"),
    _train("data-nan", "--data {data}/nan.npy", "nan", "nonfinite"),
    _train("data-rank-3", "--data {data}/rank3.npy", "rank 3", "shape"),
    _train("data-too-few-rows", "--data {data}/few.npy", "few.npy", "shape"),
    _train("data-truncated", "--data {data}/truncated.npy", "truncated", "format"),
    _train("npz-missing-key", "--data {data}/nokey.npz", "samples", "format"),
    _train("h5-missing-dataset", "--data {data}/good.h5 --dataset nope", "nope", "format"),
    # config
    _train("set-out-of-range", "--problem student_t --set critic.depth=0", "critic.depth", "config"),
    _train("set-unknown-key", "--problem student_t --set critic.deep=3", "critic.deep", "config"),
    _train("set-unknown-model", "--problem student_t --set model=vae", "model", "config"),
    _train("set-wrong-type", "--problem student_t --set steps=ten", "steps", "config"),
    _train("set-no-equals", "--problem student_t --set steps", "steps", "config"),
    _train("config-bad-toml", "--problem student_t --config {data}/bad.toml", "bad.toml", "config"),
    _train("config-unknown-key", "--problem student_t --config {data}/unknown.toml", "bogus", "config"),
    _train("config-missing", "--problem student_t --config {data}/nothere.toml", "nothere.toml", "config"),
    _train("alpha-below-one", "--problem student_t --model gan --alpha 0.5", "alpha", "config"),
    _train("alpha-nan", "--problem student_t --alpha nan", "alpha", "config"),
    _train("wasserstein-unbounded", "--problem student_t --divergence wasserstein --constraint none",
           "constraint", "config"),
    # options that would do nothing for the run are refused, not ignored (set = differs from the default)
    _train("flow-alpha", "--problem student_t --model flow --alpha 3", "alpha", "config"),
    _train("flow-lipschitz", "--problem student_t --model flow --lipschitz 5", "lipschitz", "config"),
    _train("flow-constraint", "--problem student_t --model flow --constraint spectral", "constraint", "config"),
    _train("flow-divergence", "--problem student_t --model flow --divergence kl", "divergence", "config"),
    _train("flow-critic-table", "--problem student_t --model flow --set critic.steps=2", "critic.steps", "config"),
    _train("particles-gan-table", "--problem student_t --model particles --set gan.ema=0.9", "gan.ema", "config"),
    _train("gan-particles-table", "--problem student_t --model gan --set particles.dt=1", "particles.dt", "config"),
    _train("gan-flow-table", "--problem student_t --set flow.kinetic=0", "flow.kinetic", "config"),
    _train("kl-alpha", "--problem student_t --divergence kl --alpha 3", "alpha", "config"),
    _train("unbounded-lipschitz", "--problem student_t --constraint none --lipschitz 5", "lipschitz", "config"),
    _train("spectral-gp-weight", "--problem student_t --constraint spectral --set gp_weight=1", "gp_weight", "config"),
    _train("laplace-latent-nu", "--problem student_t --set gan.latent_nu=2", "gan.latent_nu", "config"),
    # the run directory and the runtime
    _train("out-is-a-file", "--problem student_t", "--out", "path", out=("--out", "{data}/afile")),
    _train("out-under-a-file", "--problem student_t", "--out", "path", out=("--out", "{data}/afile/run")),
    _train("out-holds-a-run", "--data {data}/good.npy " + " ".join(RUN_FLAGS), "--out", "path",
           out=("--out", "{data}/run_gan")),
    _train("resume-nothing", "--problem student_t --resume", "--resume", "path"),
    _train("resume-other-config", "--data {data}/good.npy " + " ".join(RUN_FLAGS).replace("--steps 3", "--steps 4")
           + " --resume", "steps", "config", out=("--out", "{data}/run_gan")),
    _train("resume-other-data", "--data {data}/good2.npy " + " ".join(RUN_FLAGS) + " --resume", "differ", "data",
           out=("--out", "{data}/run_gan")),
    _train("max-seconds-zero", "--problem student_t --max-seconds 0", "--max-seconds", "range"),
    _train("threads-zero", "--problem student_t --threads 0", "--threads", "range"),
    _train("device-unknown", "--problem student_t --device tpu", "tpu", "device"),
    # sample
    _sample("n-zero", "run_gan", "-n 0 " + S_OUT, "-n", "range"),
    _sample("n-negative", "run_gan", "-n -3 " + S_OUT, "-n", "range"),
    _sample("n-1e9", "run_gan", "-n 1000000000 " + S_OUT, "-n", "size"),
    _sample("n-above-particles", "run_particles", "-n 5000 " + S_OUT, "-n", "range"),
    _sample("model-truncated", "run_truncated", S_OUT, "model.pt", "format"),
    _sample("model-garbage", "run_garbage", S_OUT, "model.pt", "format"),
    _sample("model-missing", "run_nomodel", S_OUT, "model.pt", "path"),
    _sample("model-of-another-config", "run_otherconfig", S_OUT, "model.pt", "format"),
    _sample("config-damaged", "run_badconfig", S_OUT, "config.toml", "config"),
    _sample("not-a-run", "adir.npy", S_OUT, "config.toml", "path"),
    _sample("no-such-run", "nope", S_OUT, "nope", "path"),
    _sample("out-is-a-folder", "run_gan", "--out {tmp}", "--out", "path"),
    _sample("out-under-a-file", "run_gan", "--out {data}/afile/s.h5", "--out", "path"),
    _sample("threads-zero", "run_gan", "--threads 0 " + S_OUT, "--threads", "range"),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("heavytail_bad")
    x = student_t(1.5, 2).sample(200, 0)
    np.save(d / "good.npy", x)
    np.save(d / "good2.npy", x[::-1].copy())
    with h5py.File(d / "good.h5", "w") as fh:
        fh["samples"] = x
    (d / "text.npy").write_text("1.0, 2.0\n3.0, 4.0\n")
    (d / "samples.csv").write_text("1.0,2.0\n")
    (d / "adir.npy").mkdir()
    with h5py.File(d / "group.h5", "w") as fh:
        fh.create_group("samples")["x"] = x
    np.save(d / "complex.npy", x.astype(np.complex128))
    np.save(d / "strings.npy", np.array(["a", "b"] * 50))
    bad = x.copy()
    bad[3, 1] = np.nan
    np.save(d / "nan.npy", bad)
    np.save(d / "rank3.npy", np.ones((60, 2, 2)))
    np.save(d / "few.npy", x[:10])
    (d / "truncated.npy").write_bytes((d / "good.npy").read_bytes()[:500])
    np.savez(d / "nokey.npz", x=x)
    (d / "bad.toml").write_text("steps = [1,\n")
    (d / "unknown.toml").write_text("bogus = 1\n")
    (d / "afile").write_text("a file, not a folder\n")
    for model, run in (("gan", "run_gan"), ("particles", "run_particles")):
        flags = [f for f in RUN_FLAGS if model == "gan" or not f.startswith("gan.")]  # [gan] is the GAN's only
        flags[1] = model
        code, out, err = run_cli([*TRAIN, "--data", str(d / "good.npy"), *flags, "--out", str(d / run)])
        assert code == 0, err
    for run in ("run_truncated", "run_garbage", "run_nomodel", "run_otherconfig", "run_badconfig"):
        shutil.copytree(d / "run_gan", d / run)
    m = (d / "run_truncated" / "model.pt")
    m.write_bytes(m.read_bytes()[:300])
    (d / "run_garbage" / "model.pt").write_text("not a torch file\n")
    (d / "run_nomodel" / "model.pt").unlink()
    cfg = d / "run_otherconfig" / "config.toml"
    cfg.write_text(cfg.read_text().replace("width = 8", "width = 9"))
    (d / "run_badconfig" / "config.toml").write_text("model = \n")
    return d


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, data):
    t0 = time.perf_counter()
    check_case(case, tmp_path, data)
    assert time.perf_counter() - t0 < 15, f"{case.id}: too slow to be refused before work"


def test_corpus_covers_every_class():
    classes = {c.cls for c in CASES}
    assert {"size", "range", "nonfinite", "path", "format", "dtype", "shape", "config", "data", "device",
            "choice"} <= classes
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


def test_valid_commands_still_work(tmp_path, data):
    """The same files and runs, used correctly: a sample file of the right shape, and a fresh run."""
    code, out, err = run_cli(["heavytail", "sample", str(data / "run_gan"), "-n", "50", "--out", str(tmp_path / "s.h5")])
    assert code == 0, err
    with h5py.File(tmp_path / "s.h5") as fh:
        assert fh["samples"].shape == (50, 2) and np.isfinite(fh["samples"][()]).all()
    code, out, err = run_cli(["heavytail", "sample", str(data / "run_particles"), "-n", "200",
                              "--out", str(tmp_path / "p.h5")])
    assert code == 0, err  # exactly as many as there are particles
    code, out, err = run_cli([*TRAIN, "--data", str(data / "good.h5"), *RUN_FLAGS, "--out", str(tmp_path / "run")])
    assert code == 0, err
    assert "success" in out and (tmp_path / "run" / "model.pt").is_file()
