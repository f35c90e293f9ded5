"""Malformed input to ``sciml simulate`` and to trajectory files read by ``sciml discover``.

Every case must exit 2 with one ``error:`` line naming the culprit, no traceback, and leave nothing
behind (harness: ``tests/badinput.py``). The discover cases fail while the file is validated
(:func:`sciml.dynamics.load_trajectories`), before any training. Valid input is checked too: a valid
file still loads, and ``sciml simulate`` writes the exact solution of the oscillator from the initial
states its seed draws.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from badinput import Case, check_case, run_cli
from problems.systems import SYSTEMS, get_system, state_dim
from sciml.dynamics import INTEGRATORS, load_trajectories, save_trajectories, simulate
from sciml.io import DataError
from sciml.run import seed_everything

SIM = ("simulate",)
OUT = ("--out", "{tmp}/t.h5")
# a folder this process cannot write in: chmod works for ordinary users, root needs a kernel folder
RO = "/sys" if os.geteuid() == 0 else "{data}/readonly"


def _sim(cid: str, args: str, names: str, cls: str, out: tuple[str, ...] = OUT) -> Case:
    return Case(f"simulate-{cid}", SIM + tuple(args.split()) + out, names, cls)


def _disc(cid: str, file: str, names: str, cls: str) -> Case:
    return Case(f"discover-{cid}", ("discover", "{data}/" + file, "--out", "{tmp}/run"), names, cls)


SIMULATE_CASES = [
    _sim("absurd-n", "toda-open --n 1000000000", "--n ", "size"),
    _sim("absurd-n-traj", "ho1d --n-traj 100000000000", "--n-traj", "size"),
    _sim("absurd-n-times-calogero", "calogero --n 400 --n-times 1000000", "--n-times", "size"),
    _sim("amplitude-inf", "ho1d --amplitude inf", "--amplitude", "nonfinite"),
    _sim("amplitude-nan", "ho1d --amplitude nan", "--amplitude", "nonfinite"),
    _sim("amplitude-negative", "ho1d --amplitude -1", "--amplitude", "range"),
    _sim("amplitude-overflows-states", "fput-beta-fixed --amplitude 1e100 --n-traj 2 --n-times 5", "--amplitude",
         "nonfinite"),
    _sim("amplitude-overflows-energy", "ho1d --amplitude 1e200 --n-traj 2 --n-times 5", "--amplitude", "nonfinite"),
    _sim("amplitude-unused", "henon-heiles --amplitude 2", "--amplitude", "choice"),
    _sim("max-step-zero", "ho1d --max-step 0", "--max-step", "range"),
    _sim("max-step-negative", "ho1d --max-step -1", "--max-step", "range"),
    _sim("max-step-nan", "ho1d --max-step nan", "--max-step", "nonfinite"),
    _sim("max-step-tiny", "ho1d --max-step 1e-300", "--max-step", "size"),
    _sim("max-step-with-dop853", "ho2d-iso --integrator dop853 --max-step 0.1", "--max-step", "choice"),
    _sim("dt-inf", "ho1d --dt inf", "--dt", "nonfinite"),
    _sim("dt-zero", "ho1d --dt 0", "--dt", "range"),
    _sim("dt-negative", "ho1d --dt -0.1", "--dt", "range"),
    _sim("dt-nan", "ho1d --dt nan", "--dt", "nonfinite"),
    _sim("dt-last-time-overflows", "ho1d --dt 1e308", "--dt", "nonfinite"),
    _sim("n-traj-negative", "ho1d --n-traj -3", "--n-traj", "range"),
    _sim("n-times-negative", "ho1d --n-times -5", "--n-times", "range"),
    _sim("n-too-small", "toda-periodic --n 2", "--n", "range"),
    _sim("lyapunov-negative", "ho1d --lyapunov -1", "--lyapunov", "range"),
    _sim("lyapunov-inf", "ho1d --lyapunov inf", "--lyapunov", "nonfinite"),
    _sim("lyapunov-huge", "ho1d --lyapunov 1e12", "--lyapunov", "size"),
    _sim("unknown-system", "toda", "toda-open", "choice"),
    _sim("regime-not-fput", "ho1d --regime chaotic", "--regime", "choice"),
    _sim("threads-zero", "ho1d --threads 0", "--threads", "range"),
    _sim("seed-too-large", "ho1d --seed 1180591620717411303424", "--seed", "range"),
    _sim("out-inside-a-file", "ho1d", "--out", "path", out=("--out", "{data}/afile.txt/t.h5")),
    _sim("out-deeper-inside-a-file", "ho1d", "is a file", "path", out=("--out", "{data}/afile.txt/sub/t.h5")),
    _sim("out-unwritable-folder", "ho1d", "cannot write", "path", out=("--out", RO + "/new/t.h5")),
    _sim("out-on-a-directory", "ho1d", "is a directory", "path", out=("--out", "{tmp}")),
]

DISCOVER_CASES = [
    _disc("missing-file", "nope.h5", "file not found", "path"),
    _disc("a-directory", "adir", "is a directory", "path"),
    _disc("not-hdf5", "text.h5", "not a readable hdf5", "format"),
    _disc("truncated-hdf5", "truncated.h5", "not a readable hdf5", "format"),
    _disc("no-trajectories", "states.h5", "missing dataset 'trajectories'", "format"),
    _disc("trajectories-a-group", "group.h5", "is a group", "format"),
    _disc("trajectories-empty", "empty.h5", "is empty", "format"),
    _disc("complex", "complex.h5", "complex", "dtype"),
    _disc("integer", "integer.h5", "not floating point", "dtype"),
    _disc("strings", "strings.h5", "not floating point", "dtype"),
    _disc("rank-2", "rank2.h5", "expected rank 3", "shape"),
    _disc("one-trajectory", "one_traj.h5", "at least 2 are needed", "shape"),
    _disc("few-snapshots", "few_times.h5", "at least 5 are needed", "shape"),
    _disc("state-dim-1", "dim1.h5", "state dimension 1", "shape"),
    _disc("declared-too-large", "huge.h5", "memory available", "size"),
    _disc("nan-values", "nan.h5", "nan/inf", "nonfinite"),
    _disc("inf-values", "inf.h5", "nan/inf", "nonfinite"),
    _disc("dt-string", "dt_string.h5", "'dt' = 'fast' is not a number", "metadata"),
    _disc("dt-inf", "dt_inf.h5", "attribute 'dt' = inf", "nonfinite"),
    _disc("dt-zero", "dt_zero.h5", "attribute 'dt' = 0", "range"),
    _disc("dt-negative", "dt_neg.h5", "attribute 'dt' = -0.1", "range"),
    _disc("no-times", "no_times.h5", "no sample times", "format"),
    _disc("t-not-increasing", "t_repeat.h5", "not strictly increasing", "values"),
    _disc("t-wrong-length", "t_short.h5", "one time per sample", "shape"),
    _disc("t-complex", "t_complex.h5", "dataset 't' has dtype complex", "dtype"),
    _disc("t-nan", "t_nan.h5", "non-finite times", "nonfinite"),
    _disc("layout-not-utf8", "layout_bytes.h5", "'layout' is not utf-8", "metadata"),
    _disc("layout-unknown", "layout_pq.h5", "attribute 'layout' = 'pq'", "metadata"),
    _disc("layout-qp-odd", "layout_odd.h5", "even state dimension", "metadata"),
    _disc("params-not-json", "params.h5", "'params' is not valid json", "metadata"),
    _disc("schema-newer", "schema.h5", "newer sciml", "metadata"),
    _disc("system-not-text", "system_int.h5", "'system' = 3 is not text", "metadata"),
]

CASES = SIMULATE_CASES + DISCOVER_CASES


def _file(path: Path, X=None, **kw) -> None:
    with h5py.File(path, "w") as fh:
        if X is not None:
            fh.create_dataset("trajectories", data=X)
        for k, v in kw.items():
            if k.startswith("attr_"):
                fh.attrs[k[5:]] = v
            else:
                fh.create_dataset(k, data=v)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dynamics_bad")
    ok = np.random.default_rng(0).normal(size=(3, 10, 4))
    (d / "afile.txt").write_text("a file, not a folder\n")
    (d / "adir").mkdir()
    if RO.startswith("{data}"):
        (d / "readonly").mkdir(mode=0o555)
    (d / "text.h5").write_text("trajectories,t\n1,2\n")
    _file(d / "good.h5", ok, attr_dt=0.1)
    (d / "truncated.h5").write_bytes((d / "good.h5").read_bytes()[:1000])
    _file(d / "states.h5", states=ok, attr_dt=0.1)
    with h5py.File(d / "group.h5", "w") as fh:
        fh.create_group("trajectories").create_dataset("X", data=ok)
    _file(d / "empty.h5", h5py.Empty("f8"), attr_dt=0.1)
    _file(d / "complex.h5", ok + 1j * ok, attr_dt=0.1)
    _file(d / "integer.h5", np.arange(120).reshape(3, 10, 4), attr_dt=0.1)
    _file(d / "strings.h5", np.full((3, 10, 4), b"x"), attr_dt=0.1)
    _file(d / "rank2.h5", ok[0], attr_dt=0.1)
    _file(d / "one_traj.h5", ok[:1], attr_dt=0.1)
    _file(d / "few_times.h5", ok[:, :4], attr_dt=0.1)
    _file(d / "dim1.h5", ok[..., :1], attr_dt=0.1)
    with h5py.File(d / "huge.h5", "w") as fh:  # 8e15 bytes declared, nothing stored (chunks never written)
        fh.create_dataset("trajectories", shape=(10**7, 10**7, 10), dtype="f8", chunks=(1, 10, 10))
        fh.attrs["dt"] = 0.1
    nan, inf = ok.copy(), ok.copy()
    nan[1, 3, 2], inf[2, 0, 0] = np.nan, -np.inf
    _file(d / "nan.h5", nan, attr_dt=0.1)
    _file(d / "inf.h5", inf, attr_dt=0.1)
    _file(d / "dt_string.h5", ok, attr_dt="fast")
    _file(d / "dt_inf.h5", ok, attr_dt=np.inf)
    _file(d / "dt_zero.h5", ok, attr_dt=0.0)
    _file(d / "dt_neg.h5", ok, attr_dt=-0.1)
    _file(d / "no_times.h5", ok)
    _file(d / "t_repeat.h5", ok, t=np.r_[np.arange(5.0), np.arange(4.0, 9.0)])
    _file(d / "t_short.h5", ok, t=np.arange(9.0))
    _file(d / "t_complex.h5", ok, t=np.arange(10.0) + 0j)
    _file(d / "t_nan.h5", ok, t=np.r_[np.arange(9.0), np.nan])
    _file(d / "layout_bytes.h5", ok, attr_dt=0.1, attr_layout=np.bytes_(b"\xff\xfe"))
    _file(d / "layout_pq.h5", ok, attr_dt=0.1, attr_layout="pq")
    _file(d / "layout_odd.h5", ok[..., :3], attr_dt=0.1, attr_layout="qp")
    _file(d / "params.h5", ok, attr_dt=0.1, attr_params="{n: 3")
    _file(d / "schema.h5", ok, attr_dt=0.1, attr_schema_version=2)
    _file(d / "system_int.h5", ok, attr_dt=0.1, attr_system=3)
    return d


def test_corpus_size_and_classes():
    assert len(CASES) >= 25 and len({c.id for c in CASES}) == len(CASES)
    assert {c.cls for c in CASES} >= {"size", "nonfinite", "range", "choice", "path", "format", "dtype", "shape",
                                      "metadata", "values"}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, data):
    check_case(case, tmp_path, data)


@pytest.mark.parametrize("case", [c for c in DISCOVER_CASES if c.id != "discover-missing-file"],
                         ids=[c.id for c in DISCOVER_CASES if c.id != "discover-missing-file"])
def test_file_errors_name_the_file_and_the_fix(case, data):
    path = Path(case.argv[1].replace("{data}", str(data)))
    with pytest.raises(DataError) as e:
        load_trajectories(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    if case.id != "discover-a-directory":  # each message goes on to say what to do, after a semicolon
        assert ";" in msg, msg


def test_size_is_checked_before_reading(data, monkeypatch):
    """A 1 KiB budget refuses a 3 x 10 x 4 float64 file unread: 120 values x (8 bytes + 1 of the
    finiteness mask) = 1080 bytes."""
    import sciml.dynamics.trajectories as tr

    monkeypatch.setattr(tr, "available_memory", lambda: 1024)
    monkeypatch.setattr(tr, "_read_states", lambda *a: pytest.fail("read before the size check"))
    with pytest.raises(DataError, match=r"\(3, 10, 4\) of float64: reading it needs about 1.1 KiB, more than the 1.0 KiB"):
        load_trajectories(data / "good.h5")


def test_valid_file_still_loads(tmp_path):
    """float32 states, a dt attribute, layout 'none', and attributes sciml does not know, passed through."""
    X = np.random.default_rng(1).normal(size=(4, 7, 3)).astype(np.float32)
    _file(tmp_path / "v.h5", X, attr_dt=0.25, attr_layout=np.bytes_(b"none"), attr_note="lab run 3",
          attr_raw=np.bytes_(b"\xff"), attr_count=np.int64(7), attr_schema_version=1,
          attr_params='{"n": 3}')
    tr = load_trajectories(tmp_path / "v.h5")
    assert tr.X.dtype == np.float64 and np.array_equal(tr.X, X.astype(np.float64))
    assert np.array_equal(tr.t, 0.25 * np.arange(7)) and tr.layout == "none" and tr.n_dof is None
    assert tr.attrs["note"] == "lab run 3" and tr.attrs["raw"] == b"\xff" and tr.attrs["count"] == 7
    assert tr.attrs["schema_version"] == 1 and tr.attrs["params"] == '{"n": 3}' and tr.attrs["dt"] == 0.25
    # integer sample times are real times
    _file(tmp_path / "w.h5", X, t=np.arange(0, 14, 2))
    assert np.array_equal(load_trajectories(tmp_path / "w.h5").t, np.arange(0.0, 14.0, 2.0))


@pytest.mark.parametrize("integrator, tol", [("auto", 5e-8), ("leapfrog", 1e-5), ("dop853", 1e-8)])
def test_simulate_writes_the_exact_oscillator(tmp_path, integrator, tol):
    """``sciml simulate ho1d``: initial states U(-a, a) drawn from the seed's generator, then the
    rotation q(t) = q0 cos t + p0 sin t, p(t) = p0 cos t - q0 sin t at t = k dt."""
    out = tmp_path / "sub" / "ho.h5"
    code, stdout, err = run_cli(["simulate", "ho1d", "--n-traj", "5", "--n-times", "41", "--dt", "0.25",
                                 "--amplitude", "1.5", "--seed", "7", "--integrator", integrator, "--out", str(out)])
    assert code == 0 and err == "" and f"wrote {out}" in stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["ho.h5"]  # atomic: no temporary left
    tr = load_trajectories(out)
    u = torch.rand((5, 2), generator=torch.Generator().manual_seed(7), dtype=torch.float64).numpy()
    x0 = 1.5 * (2 * u - 1)
    t = 0.25 * np.arange(41)
    c, s = np.cos(t)[None], np.sin(t)[None]
    exact = np.stack([x0[:, :1] * c + x0[:, 1:] * s, x0[:, 1:] * c - x0[:, :1] * s], -1)
    assert tr.X.shape == (5, 41, 2) and np.array_equal(tr.t, t)
    assert np.abs(tr.X - exact).max() < tol
    assert tr.attrs["system"] == "ho1d" and tr.attrs["energy_drift"] < tol and "U(-1.5, 1.5)" in tr.attrs["region"]


def test_max_step_reaches_the_default_integrator(tmp_path):
    """Yoshida-4's error falls as h^4: --max-step 0.25 (one step per sample) is ~256x worse than 0.0625."""
    errs = []
    for h in ("0.25", "0.0625"):
        out = tmp_path / f"{h}.h5"
        assert run_cli(["simulate", "ho1d", "--n-traj", "2", "--n-times", "41", "--dt", "0.25", "--max-step", h,
                        "--out", str(out)])[0] == 0
        tr = load_trajectories(out)
        x0 = tr.X[:, 0]
        c, s = np.cos(tr.t)[None], np.sin(tr.t)[None]
        exact = np.stack([x0[:, :1] * c + x0[:, 1:] * s, x0[:, 1:] * c - x0[:, :1] * s], -1)
        errs.append(np.abs(tr.X - exact).max())
    assert abs(math.log2(errs[0] / errs[1]) / 2 - 4) < 0.3


def test_state_dim_without_building():
    for name in SYSTEMS:
        for n in (2, 3, 5):
            if name == "toda-periodic" and n < 3:
                continue
            assert state_dim(name, n) == get_system(name, n).dim, name
    with pytest.raises(KeyError, match="ho1d"):
        state_dim("nope")


def test_integrators_registry():
    assert INTEGRATORS.names() == ("yoshida4", "leapfrog", "dop853")
    assert INTEGRATORS.resolve("leapfrog", max_step=0.5).max_step == 0.5
    assert not hasattr(INTEGRATORS.resolve("dop853", max_step=0.5), "max_step")
    with pytest.raises(ValueError, match="max_step"):
        INTEGRATORS.resolve("yoshida4", max_step=0.0)


def test_five_line_usage(tmp_path):
    """The wing's five lines: a catalogue system, a run, the file, loaded back, a number. (This wing
    trains nothing, so the run is ``simulate`` rather than ``sciml.fit``.)"""
    problem = get_system("toda-open", 3)
    traj = simulate(problem, 8, 200, 0.05, generator=seed_everything(0))
    save_trajectories(traj, tmp_path / "toda.h5")
    payload = load_trajectories(tmp_path / "toda.h5")
    value = payload.attrs["energy_drift"]
    assert np.array_equal(payload.X, traj.X) and value < 1e-6  # Yoshida-4 keeps H to 1e-6 over T = 10
    inv = problem.invariant_values(torch.from_numpy(payload.X))  # and the Lax traces, all 3
    assert ((inv - inv[:, :1]).abs() / inv[:, :1].abs().clamp_min(1.0)).max() < 1e-6
