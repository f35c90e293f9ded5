"""Worker for test_distributed.py: a few SGD steps of a tiny PINN (Poisson, forward Laplacian) on a
global batch that every rank draws from one seed and shards; writes the final parameters (rank 0)."""

import sys

import torch

from sciml import autodiff as ad
from sciml.nn import MLP
from sciml.run.distributed import init_distributed


def main(path: str, steps: int = 5) -> None:
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    torch.manual_seed(0)
    net = MLP(3, 1, 16, 2, "tanh").double()
    params = list(net.parameters())
    ctx.broadcast_(params)
    opt = torch.optim.SGD(params, lr=2e-3, momentum=0.9)  # not Adam: Adam would hide a wrong gradient scale
    gen = torch.Generator().manual_seed(1)
    method = ad.Hutchinson(2)  # stochastic on purpose: the probes must be sharded consistently too
    for _ in range(steps):
        x = torch.rand(64, 3, generator=gen, dtype=torch.float64)  # the global batch
        probes = method.draw(64, 3, generator=gen, dtype=torch.float64)
        xb = torch.rand(32, 3, generator=gen, dtype=torch.float64)
        xs, ps, xbs = ctx.shard(x), ctx.shard(probes), ctx.shard(xb)
        out = method(net, None, xs, noise=ps)
        f = -3 * torch.pi**2 * torch.sin(torch.pi * xs).prod(1)  # lap of prod sin(pi x_i)
        loss = ((out.laplacian - f) ** 2).mean() + 10 * (net(xbs).squeeze(-1) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        ctx.average_gradients(params)
        opt.step()
    if ctx.is_main:
        torch.save({k: v.detach() for k, v in net.state_dict().items()}, path)
    ctx.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
