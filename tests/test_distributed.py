"""Two gloo processes reproduce one process on the same global batch (up to reduction order)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("_dist_tiny_pinn.py")


# A rank of a 2-process gloo run sometimes dies with SIGABRT, "terminate called without an active
# exception" (a C++ thread torn down unjoined, inside torch), seen in 2 of 4 full-suite runs on a fresh
# clone on 23 Nov 2026 and in none of 24 lone launches. It is not a wrong result, so such a run is
# repeated once from scratch; any other failure, or the abort twice, fails the test.
_TEARDOWN_ABORT = "terminate called without an active exception"


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent.parent)}
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    if r.returncode != 0 and _TEARDOWN_ABORT in r.stderr:
        if "--out" in args and "--resume" not in args:  # start the repeat from an empty run directory
            shutil.rmtree(tmp_path / args[args.index("--out") + 1], ignore_errors=True)
        r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]


def test_two_gloo_processes_equal_one_process(tmp_path):
    single, double = tmp_path / "single.pt", tmp_path / "double.pt"
    _run([sys.executable, str(WORKER), str(single)], tmp_path)
    # --standalone: torchrun picks a free local rendezvous port itself (no pick-then-bind race)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(WORKER), str(double)], tmp_path)
    a, b = torch.load(single), torch.load(double)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-10, atol=1e-12)
    # and the run did move the parameters (the comparison is not vacuous)
    torch.manual_seed(0)
    from sciml.nn import MLP

    fresh = MLP(3, 1, 16, 2, "tanh").double().state_dict()
    assert max((fresh[k] - a[k]).abs().max().item() for k in a) > 1e-3


def test_shard_requires_equal_shards():
    from sciml.run.distributed import DistContext

    ctx = DistContext(rank=1, world_size=2)
    assert ctx.shard(torch.arange(6)).tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="multiple of 2"):
        ctx.shard(torch.arange(5), "interior points")


# --- the PINN commands under torchrun ---------------------------------------------------------------
TINY = """
seed = 3
dtype = "float64"
log_every = 2
checkpoint_every = 3
[problem]
family = "allen_cahn"
value = 0.0
d = 3
[model]
widths = [16, 16]
[sampling]
n_interior = 64
n_boundary = 16
n_initial = 16
n_test = 200
resample = {resample}
[laplacian]
method = "hutchinson"   # stochastic: the probes must be drawn globally and sharded like the points
probes = 2
[optim]
iters = 6
lr = 1e-2
[transfer]
method = "svd"          # the singular values are trained by SGD, which sees a wrong gradient scale
targets = [1.0, 2.0, 5.0]
s_lr = 1e-2
"""


def _sciml(tmp_path, nproc, *args):
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    f"--nproc_per_node={nproc}"]
    _run([*launcher, "-m", "sciml", *args], tmp_path)


def _latest(run):
    return torch.load(sorted((run / "checkpoints").glob("ckpt_*.pt"))[-1], weights_only=False)


def _assert_same_theta(a, b):
    assert a["step"] == b["step"]
    for k in a["theta"]:
        torch.testing.assert_close(b["theta"][k], a["theta"][k], rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def pinn_runs(tmp_path_factory):
    """One process vs two, and a run resumed on a different number of processes; then the SVD transfer
    and the family run from the one-process model."""
    d = tmp_path_factory.mktemp("dist")
    (d / "dp.toml").write_text(TINY.format(resample="true"))
    (d / "fam.toml").write_text(TINY.format(resample="false"))
    # Independent runs go side by side (each is a few seconds of process start-up; one after another they
    # were 77 s of the suite); the commands of one chain run in order.
    _chains(d, [(1, "pinn", "train", "dp.toml", "--out", "one")],
            [(2, "pinn", "train", "dp.toml", "--out", "two")],
            # stopped by a (tiny) wall-clock budget after step 1, with a checkpoint there (status budget, exit 0:
            # an interruption's exit 3 would read as a failed worker to torchrun), then resumed on another
            # number of processes
            [(2, "pinn", "train", "dp.toml", "--out", "resumed", "--max-seconds", "1e-6"),
             (1, "pinn", "train", "dp.toml", "--out", "resumed", "--resume")])
    _chains(d, *([(n, "pinn", "transfer", "--from", "one", "--config", "dp.toml", "--out", f"transfer{n}"),
                  (n, "pinn", "family", "--from", "one", "--config", "fam.toml", "--out", f"family{n}")] for n in (1, 2)),
            [(1, "pinn", "family", "--from", "one", "--config", "fam.toml", "--out", "family_resumed",
              "--max-seconds", "1e-6"),
             (2, "pinn", "family", "--from", "one", "--config", "fam.toml", "--out", "family_resumed", "--resume")])
    return d


def _chains(tmp_path, *chains):
    """Run each chain of ``(nproc, *args)`` commands in order, the chains side by side."""
    from concurrent.futures import ThreadPoolExecutor

    def run_chain(chain):
        for nproc, *args in chain:
            _sciml(tmp_path, nproc, *args)

    with ThreadPoolExecutor(len(chains)) as pool:
        for f in [pool.submit(run_chain, c) for c in chains]:
            f.result()  # re-raises a chain's failure


def test_pinn_train_on_two_processes_equals_one(pinn_runs):
    import json

    one, two = _latest(pinn_runs / "one"), _latest(pinn_runs / "two")
    assert one["step"] == 6
    _assert_same_theta(one, two)
    assert json.loads((pinn_runs / "two" / "meta.json").read_text())["world_size"] == 2


def test_checkpoint_of_two_processes_resumes_on_one(pinn_runs):
    _assert_same_theta(_latest(pinn_runs / "one"), _latest(pinn_runs / "resumed"))
    ck1 = torch.load(pinn_runs / "resumed" / "checkpoints" / "ckpt_1.pt", weights_only=False)  # the 2 processes'
    assert ck1["written_by"] == "sciml pinn train"
    six = _latest(pinn_runs / "one")
    assert max((six["theta"][k] - ck1["theta"][k]).abs().max().item() for k in six["theta"]) > 1e-4


def test_svd_transfer_on_two_processes_equals_one(pinn_runs):
    _assert_same_theta(_latest(pinn_runs / "transfer1"), _latest(pinn_runs / "transfer2"))


def test_family_sharded_over_two_processes_equals_one(pinn_runs):
    import json

    import h5py

    a, b = _latest(pinn_runs / "family1"), _latest(pinn_runs / "family2")
    _assert_same_theta(a, b)  # K = 3 members split 2 + 1, gathered back in order
    assert next(iter(b["theta"].values())).shape[0] == 3
    for k, st in a["opts"][0]["state"].items():  # Adam moments gathered as well
        torch.testing.assert_close(b["opts"][0]["state"][k]["exp_avg_sq"], st["exp_avg_sq"], rtol=1e-10, atol=1e-14)
    with h5py.File(pinn_runs / "family2" / "results.h5") as f1, h5py.File(pinn_runs / "family1" / "results.h5") as f0:
        assert json.loads(f1.attrs["targets"]) == [1.0, 2.0, 5.0]
        assert f1["member_history/rel_l2"].shape == f0["member_history/rel_l2"].shape
        torch.testing.assert_close(torch.as_tensor(f1["member_history/rel_l2"][()]),
                                   torch.as_tensor(f0["member_history/rel_l2"][()]), rtol=1e-9, atol=1e-12)
    _assert_same_theta(a, _latest(pinn_runs / "family_resumed"))  # 1 process -> resumed on 2


def test_points_that_do_not_divide_name_the_key():
    from sciml.pinn.sampling import Points
    from sciml.pinn.solver import shard_points
    from sciml.run import ConfigError
    from sciml.run.distributed import DistContext

    z = torch.zeros
    pts = Points(z(12), z(12, 2), z(7), z(7, 2), z(6, 2))
    with pytest.raises(ConfigError, match="sampling.n_boundary"):
        shard_points(pts, DistContext(rank=1, world_size=3))
    assert DistContext(rank=1, world_size=3).split_slice(7) == slice(3, 5)  # 3 + 2 + 2 members
    with pytest.raises(ValueError, match="at most 2 processes"):
        DistContext(rank=0, world_size=3).split_slice(2, "family members")


def test_commands_without_data_parallelism_refuse_under_torchrun(monkeypatch, capsys):
    from sciml.cli import main

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["demo", "--only", "nothing"]) == 2  # refused before it runs anything
    err = capsys.readouterr().err
    assert "`sciml demo` has no data-parallel mode" in err and "one process" in err
