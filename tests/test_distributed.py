"""Two gloo processes reproduce one process on the same global batch (up to reduction order)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("_dist_tiny_pinn.py")


def _run(args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent.parent)}
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
