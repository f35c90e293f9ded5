"""The driver `sciml.fit` on the fifth method of docs/architecture.md (a least-squares fit by Adam):
the known optimum, resume, the wall-clock budget, refusals before writing, statuses, registries,
derived seeds, TOML reading errors."""

import json
import os
import stat

import pytest
import torch

import sciml
from sciml.registry import Registry, UnknownChoice
from sciml.run import (ConfigError, RunDir, Status, UsageError, derive_seed, read_toml, replace_config,
                       set_threads)
from docblocks import run_block

NS = run_block("architecture.md", "fifth-method")
Lstsq, LstsqConfig = NS["Lstsq"], NS["LstsqConfig"]


def _problem(seed=0, m=200, n=5):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=g, dtype=torch.float64)
    b = A @ torch.arange(1.0, n + 1, dtype=torch.float64) + 0.01 * torch.randn(m, generator=g, dtype=torch.float64)
    return A, b


def test_fit_reaches_the_least_squares_optimum_and_loads_it_back(tmp_path):
    A, b = _problem()
    res = sciml.fit(Lstsq, LstsqConfig(steps=3000), (A, b), out=tmp_path / "r")
    x_star = torch.linalg.lstsq(A, b[:, None]).solution[:, 0]
    assert res.status == Status.SUCCESS and res.exit_code == 0 and res.step == 3000
    torch.testing.assert_close(res.payload, x_star, atol=2e-2, rtol=0)
    assert torch.equal(Lstsq.load(tmp_path / "r"), res.payload)
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["status"] == "success" and meta["command"] == "lstsq" and meta["step"] == 3000
    assert "seconds" in RunDir(tmp_path / "r").metrics


def test_kill_and_resume_gives_the_uninterrupted_parameters(tmp_path):
    A, b = _problem()
    cfg = LstsqConfig(steps=300, checkpoint_every=50)
    whole = sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "a")
    part = sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "b", stop_at=130)  # a kill: last checkpoint at 100
    assert part.status == Status.INTERRUPTED and part.exit_code == 3 and part.status.resumable
    rest = sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "b", resume=True)
    assert rest.status == Status.SUCCESS
    assert torch.equal(rest.payload, whole.payload)
    steps = RunDir(tmp_path / "b").metrics["step"].tolist()
    assert steps == sorted(set(steps))  # rows of the lost steps 100-129 are not duplicated


def test_budget_stops_with_a_checkpoint_and_resume_keeps_the_remaining_budget(tmp_path):
    A, b = _problem()
    cfg = LstsqConfig(steps=10**7, checkpoint_every=10**6)
    first = sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "r", max_seconds=0.3)
    assert first.status == Status.BUDGET and first.exit_code == 0 and 0.3 <= first.seconds < 3
    ck = RunDir(tmp_path / "r").load_checkpoint()
    assert ck["step"] == first.step and ck["elapsed"] >= 0.3
    # the budget is over the whole run: a resume with the same budget stops after one step
    again = sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "r", resume=True, max_seconds=0.3)
    assert again.status == Status.BUDGET and again.step == first.step + 1
    more = sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "r", resume=True, max_seconds=0.8)
    assert more.status == Status.BUDGET and more.step > again.step and 0.8 <= more.seconds < 4


def test_resume_with_another_config_is_refused_before_writing(tmp_path):
    A, b = _problem()
    run = tmp_path / "r"
    sciml.fit(Lstsq, LstsqConfig(steps=100, checkpoint_every=50), (A, b), out=run, stop_at=60)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(ConfigError, match=r"'lr'.*run has 0.05, given 0.1"):
        sciml.fit(Lstsq, LstsqConfig(steps=100, checkpoint_every=50, lr=0.1), (A, b), out=run, resume=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_fresh_run_into_an_existing_run_is_refused_unless_overwrite(tmp_path):
    A, b = _problem()
    cfg = LstsqConfig(steps=20, checkpoint_every=10)
    sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "r")
    with pytest.raises(UsageError, match="already holds a run"):
        sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "r")
    res = sciml.fit(Lstsq, replace_config(cfg, steps=10), (A, b), out=tmp_path / "r", overwrite=True)
    assert res.ok and [p.name for p in RunDir(tmp_path / "r").checkpoints()] == ["ckpt_10.pt"]
    with pytest.raises(UsageError, match="nothing to resume|no run to resume"):
        sciml.fit(Lstsq, cfg, (A, b), out=tmp_path / "none", resume=True)
    assert not (tmp_path / "none").exists()


def test_a_folder_another_live_run_writes_is_refused_and_a_killed_holder_frees_it(tmp_path):
    import subprocess
    import sys

    A, b = _problem()
    cfg = LstsqConfig(steps=20, checkpoint_every=10)
    run = tmp_path / "r"
    sciml.fit(Lstsq, cfg, (A, b), out=run, stop_at=15)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    # another process writing the run: it holds the folder's lock until it dies
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sciml.run.rundir import RunLock; "
                               f"RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for kwargs in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(UsageError, match=rf"--out.*another run \(pid {holder.pid}\)"):
                sciml.fit(Lstsq, cfg, (A, b), out=run, **kwargs)
        # nothing was removed or written, the overwrite's clearing included
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before
    finally:
        holder.kill()
        holder.wait()
    res = sciml.fit(Lstsq, cfg, (A, b), out=run, resume=True)  # the kernel dropped the dead holder's lock
    assert res.status == Status.SUCCESS and res.step == 20
    again = sciml.fit(Lstsq, cfg, (A, b), out=run, overwrite=True)  # and fit released its own on return
    assert again.ok and not (run / ".lock").exists()


def test_a_lock_taken_on_a_file_its_holder_just_removed_is_taken_again_on_the_new_file(tmp_path, monkeypatch):
    from sciml.run import rundir

    first = rundir.RunLock(tmp_path).acquire()
    real_open, calls = os.open, []

    def racing_open(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        calls.append(fd)
        if len(calls) == 1:  # the holder releases (removes the file) between our open and our flock
            first.release()
        return fd

    monkeypatch.setattr(rundir.os, "open", racing_open)
    second = rundir.RunLock(tmp_path).acquire()
    monkeypatch.undo()
    assert len(calls) == 2  # the first descriptor pointed at the removed file: locked again on the new one
    assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    with pytest.raises(rundir.RunInUseError, match=rf"pid {os.getpid()}"):
        rundir.RunLock(tmp_path).acquire()
    second.release()
    assert not (tmp_path / ".lock").exists()


def test_out_inside_a_file_and_bad_threads_and_budget_are_user_errors(tmp_path):
    A, b = _problem()
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        sciml.fit(Lstsq, LstsqConfig(steps=5), (A, b), out=tmp_path / "f" / "run")
    for bad in (0, -1, 1.5):
        with pytest.raises(UsageError, match="--threads"):
            set_threads(bad)
    with pytest.raises(UsageError, match="--max-seconds"):
        sciml.fit(Lstsq, LstsqConfig(steps=5), (A, b), out=tmp_path / "r", max_seconds=0)
    assert not (tmp_path / "r").exists()


def test_divergence_is_recorded_in_meta_and_keeps_the_last_good_checkpoint(tmp_path):
    class Blows(Lstsq):  # the parameters turn to inf at step 25
        def step(self, i):
            if i == 25:
                with torch.no_grad():
                    self.x.mul_(float("inf"))
            return super().step(i)

    A, b = _problem()
    res = sciml.fit(Blows, LstsqConfig(steps=400, checkpoint_every=10), (A, b), out=tmp_path / "r")
    assert res.status == Status.DIVERGED and res.exit_code == 1 and res.payload is None and res.step == 25
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["status"] == "diverged" and "lower the learning rate" in meta["remedy"]
    good = RunDir(tmp_path / "r").load_checkpoint()
    assert good["step"] == 20 and torch.isfinite(good["x"]).all()


def test_leftover_temporaries_are_removed_and_results_are_world_readable(tmp_path):
    A, b = _problem()
    run = tmp_path / "r"
    sciml.fit(Lstsq, LstsqConfig(steps=60, checkpoint_every=20), (A, b), out=run, stop_at=30)
    (run / "checkpoints" / ".ckpt_40.pt.abc.tmp").write_bytes(b"half")
    (run / ".metrics.h5.xyz.tmp").write_bytes(b"half")
    sciml.fit(Lstsq, LstsqConfig(steps=60, checkpoint_every=20), (A, b), out=run, resume=True)
    assert not list(run.rglob("*.tmp"))
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.toml", "meta.json", "results.h5", "metrics.h5"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~umask, name


def test_status_table():
    assert [s.exit_code for s in Status] == [0, 0, 3, 1, 1]
    assert Status.SUCCESS.remedy == "" and all(s.remedy for s in Status if s != Status.SUCCESS)
    assert {s for s in Status if s.resumable} == {Status.BUDGET, Status.INTERRUPTED}


def test_registry_resolves_names_and_passes_objects_through():
    class Base:
        pass

    class A(Base):
        def __init__(self, k=1):
            self.k = k

    reg = Registry("thing", Base)
    reg.register("a")(A)
    assert reg.names() == ("a",) and "a" in reg
    assert reg.resolve("a", k=3, unused=9).k == 3  # options a factory does not take are ignored
    obj = A(5)
    assert reg.resolve(obj) is obj
    with pytest.raises(UnknownChoice, match=r"unknown thing 'b'; choose one of \['a'\]"):
        reg.resolve("b")
    with pytest.raises(TypeError):
        reg.resolve(3.0)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a", A)


def test_derive_seed_is_fixed_distinct_and_in_range():
    a = derive_seed(0, "points")
    assert a == derive_seed(0, "points") and 0 <= a < 2**63
    seeds = {derive_seed(s, k, j) for s in range(20) for k in ("x", "y") for j in range(20)}
    assert len(seeds) == 800  # no collisions, unlike seed + k arithmetic
    assert derive_seed(1, "candidate", 3) == derive_seed(1, "candidate", "3")


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    ("steps = 'caf\xe9'\n".encode("latin-1"), "not UTF-8"),
    (b"steps = 3\x00", "binary"),
    (b"[table\nsteps=1", "not valid TOML"),
])
def test_read_toml_turns_bad_files_into_config_errors(tmp_path, content, words):
    p = tmp_path / "c.toml"
    p.write_bytes(content)
    with pytest.raises(ConfigError, match=words):
        read_toml(p)
    with pytest.raises(ConfigError, match="not a file"):
        read_toml(tmp_path)


def test_truncated_or_foreign_checkpoint_on_resume_is_a_one_line_error_that_changes_nothing(tmp_path):
    from sciml.run import CheckpointError

    A, b = _problem()
    run = tmp_path / "r"
    cfg = LstsqConfig(steps=100, checkpoint_every=20)
    sciml.fit(Lstsq, cfg, (A, b), out=run, stop_at=50)  # checkpoints at 20 and 40
    last = run / "checkpoints" / "ckpt_40.pt"
    good = last.read_bytes()
    last.write_bytes(good[: len(good) // 2])
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match=r"ckpt_40.pt: checkpoint is truncated.*delete it"):
        sciml.fit(Lstsq, cfg, (A, b), out=run, resume=True)
    st = torch.load(tmp_path / "r" / "checkpoints" / "ckpt_20.pt", weights_only=False)
    st["x"] = torch.zeros(7, dtype=torch.float64)  # another model's parameters
    torch.save(st, last)
    with pytest.raises(CheckpointError, match=r"ckpt_40.pt: does not fit this run's model.*ckpt_20.pt"):
        sciml.fit(Lstsq, cfg, (A, b), out=run, resume=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    last.unlink()  # the remedy the message gives: resume from the previous checkpoint
    assert sciml.fit(Lstsq, cfg, (A, b), out=run, resume=True).ok
