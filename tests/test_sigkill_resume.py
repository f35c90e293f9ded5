"""A real kill: `sciml pinn train` is SIGKILLed in a separate process after it has written a
checkpoint, then resumed with --resume; the trained network equals an uninterrupted run's bit for bit,
and no temporary file is left in the run directory."""

import os
import signal
import subprocess
import sys
import time

import torch

from sciml.run import dump_toml

CFG = {"seed": 0, "log_every": 50, "checkpoint_every": 25,
       "problem": {"family": "allen_cahn", "value": 0.0, "d": 2}, "model": {"widths": [16, 16]},
       "sampling": {"n_interior": 64, "n_boundary": 16, "n_initial": 16, "n_test": 64, "resample": True},
       "optim": {"iters": 600}}


def _sciml(*args, **kw):
    env = {**os.environ, "SCIML_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "sciml", *args, "--threads", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def _params(run):
    return torch.load(run / "model.pt", map_location="cpu", weights_only=False)["params"]


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(dump_toml(CFG))
    whole = _sciml("pinn", "train", str(cfg), "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    run = tmp_path / "killed"
    p = _sciml("pinn", "train", str(cfg), "--out", str(run))
    deadline = time.time() + 240
    while not any((run / "checkpoints").glob("ckpt_*.pt")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # let it run on past the checkpoint, possibly into the next write
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run / "model.pt").exists()
    r = _sciml("pinn", "train", str(cfg), "--out", str(run), "--resume")
    assert r.wait(timeout=300) == 0, r.stderr.read()
    a, b = _params(tmp_path / "whole"), _params(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.rglob("*.tmp"))
