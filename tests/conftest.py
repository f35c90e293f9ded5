import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: one thread each (and for the processes the tests start), so the
    # workers do not oversubscribe the cores
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, torch.get_num_threads()))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture(scope="session")
def can_compile():
    """Skip where torch.compile cannot run (no C compiler, unsupported platform)."""
    try:
        f = torch.compile(lambda x: torch.tanh(x) * 2, fullgraph=True)
        f(torch.ones(3))
    except Exception as e:
        pytest.skip(f"torch.compile does not work on this machine: {type(e).__name__}")


@pytest.fixture
def one_thread():
    """Small nets on a shared 2-core machine: more threads only add contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
