"""Demo section of the autodiff core: Laplacians against exact values, and the speed of each method."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch

from ..run.config import load_config, param
from . import ForwardLaplacian, HessianTrace, Hutchinson, NestedAutograd, SDGD


@dataclass(frozen=True)
class AutodiffDemoConfig:
    """The ``[autodiff]`` table of ``sciml demo --config FILE``."""

    dim: int = param(10, ge=1, le=1000, doc="input dimension d")
    width: int = param(128, ge=1, doc="hidden width of the MLP")
    depth: int = param(4, ge=1, doc="hidden layers")
    activation: str = param("tanh", choices=("tanh", "silu", "softplus", "sin", "sigmoid", "gelu"))
    n_points: int = param(1000, ge=2, doc="points per batch")
    probes: int = param(16, ge=1, doc="Hutchinson probes / SDGD dimensions")
    seed: int = param(0, ge=0)


def _time(fn, repeats=3):
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def demo(args) -> bool:
    cfg = load_config(getattr(args, "demo_config", {}).get("autodiff", {}), AutodiffDemoConfig,
                      prefix="autodiff.", source_name=getattr(args, "config", None))
    device = torch.device(args.device)
    seed = cfg.seed if args.seed is None else args.seed
    torch.manual_seed(seed)
    d = cfg.dim
    ok = True

    # 1. an analytic function: u(x) = exp(-|x|^2 / 2), Laplacian (|x|^2 - d) u
    def u(params, x):
        return torch.exp(-0.5 * (x * x).sum())

    x64 = torch.rand(cfg.n_points, d, dtype=torch.float64, device=device) * 2 - 1
    exact = ((x64 * x64).sum(1) - d) * torch.exp(-0.5 * (x64 * x64).sum(1))
    err = (HessianTrace()(u, {}, x64).laplacian - exact).abs().max().item()
    print(f"[1] Laplacian of exp(-|x|^2/2) in d={d}, float64 Hessian trace vs closed form: max error {err:.1e}")
    ok &= err < 1e-10

    # 2. an MLP: every exact method against the float64 oracle, and their speed on a training step
    from ..nn import MLP

    net = MLP(d, 1, cfg.width, cfg.depth, cfg.activation).double().to(device)
    xs = x64[: min(64, cfg.n_points)]
    ref = HessianTrace()(net, None, xs).laplacian
    for name, m in (("forward Laplacian", ForwardLaplacian()), ("nested autograd", NestedAutograd())):
        e = ((m(net, None, xs).laplacian - ref).abs().max() / ref.abs().max()).item()
        print(f"[2] {cfg.depth}x{cfg.width} {cfg.activation} MLP, d={d}: {name:<18} vs float64 Hessian trace: "
              f"max rel. error {e:.1e}")
        ok &= e < 1e-10
    net32 = copy.deepcopy(net).float()
    params = dict(net32.named_parameters())
    x32 = x64.float()
    gen = torch.Generator(device=device).manual_seed(seed)

    def step(method):
        def run():
            out = method(net32, params, x32, generator=gen)
            torch.autograd.grad((out.laplacian ** 2).mean(), list(params.values()), allow_unused=True)
        return run

    base = _time(step(NestedAutograd()))
    print(f"[3] one training step (Laplacian loss, backward to the parameters), {cfg.n_points} points, "
          f"float32, {torch.get_num_threads()} threads:")
    print(f"    nested autograd (DeepXDE's way)  {base * 1e3:8.1f} ms   1.00x")
    for name, m in (("forward Laplacian (default)", ForwardLaplacian()),
                    (f"Hutchinson k={cfg.probes}", Hutchinson(cfg.probes)),
                    (f"SDGD m={min(cfg.probes, d)}", SDGD(cfg.probes))):
        t = _time(step(m))
        print(f"    {name:<32} {t * 1e3:8.1f} ms  {base / t:5.2f}x")

    # 4. stochastic estimates: unbiased, error falling like 1/sqrt(k)
    xq = x32[:1].repeat(4000, 1)
    exact_q = HessianTrace()(net, None, x64[:1]).laplacian.item()
    for k in (1, 4, 16):
        est = Hutchinson(k)(net32, None, xq, generator=gen).laplacian.detach()
        se = est.std().item() / est.shape[0] ** 0.5
        print(f"[4] Hutchinson k={k:<2}: mean of 4000 estimates {est.mean().item():+.4f} +- {se:.4f} "
              f"(exact {exact_q:+.4f}), spread of one estimate {est.std().item():.3f}")
        ok &= abs(est.mean().item() - exact_q) < 5 * se + 1e-4
    return ok
