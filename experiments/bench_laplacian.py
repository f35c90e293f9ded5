"""Benchmark: one PINN training step (Laplacian residual loss, forward + backward to the parameters).

A 4x128 tanh MLP at d = 10, 100, 1000 (batches 2000, 1000, 100), for every Laplacian method of
``sciml.autodiff`` (built by their :data:`~sciml.autodiff.LAPLACIANS` names). Prints each method's
median step time as a ratio to the nested-autograd baseline (DeepXDE's way) measured in the same run,
plus the step's peak memory: on CPU the growth of the resident set during one warmed-up step in a
fresh process, on CUDA ``torch.cuda.max_memory_allocated``.

Methods are timed round-robin (one step of each, repeated) so that machine noise hits all alike.

    python experiments/bench_laplacian.py [--dims 10 100 1000] [--repeats 15] [--device cpu|cuda]
                                          [--json docs/bench_laplacian_cpu.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from sciml import autodiff as ad
from sciml.nn import MLP

BATCH = {10: 2000, 100: 1000, 1000: 100}


def methods(d: int) -> dict[str, tuple[ad.AbstractLaplacian, int | None]]:
    """Row label -> (method, chunk_size); the methods by their registry names."""
    lap = ad.LAPLACIANS
    return {
        "nested autograd (baseline)": (lap.resolve("nested"), None),
        # the full d x d Hessian per point is 4 MB at d = 1000: chunk the batch so it fits
        "hessian trace (torch.func)": (lap.resolve("hessian"), 10 if d >= 1000 else None),
        "forward Laplacian (default)": (lap.resolve("forward"), None),
        "Hutchinson k=16": (lap.resolve("hutchinson", probes=16, d=d), None),
        "SDGD m=16": (lap.resolve("sdgd", probes=16, d=d), None),  # m = min(16, d): all 10 dims at d = 10
    }


def step_fn(method_and_chunk, model, params, x, target, gen):
    method, chunk = method_and_chunk

    def step():
        noise = method.draw(x.shape[0], x.shape[1], generator=gen, device=x.device, dtype=x.dtype)
        out = method(model, params, x, noise=noise, chunk_size=chunk)
        loss = ((out.laplacian - target) ** 2).mean()
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return loss, grads

    return step


def compiled_step_fn(model, params, x, target):
    """The forward-Laplacian loss compiled whole (derivatives inside), cross-checked against eager."""
    method = ad.ForwardLaplacian()

    def loss_fn(p, xx, tt):
        return ((method(model, p, xx).laplacian - tt) ** 2).mean()

    compiled = ad.compile_loss(loss_fn, params, x, target)

    def step():
        loss = compiled(params, x, target)
        return loss, torch.autograd.grad(loss, list(params.values()), allow_unused=True)

    return step, compiled


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_step_memory(step) -> float:
    """Peak resident-memory growth (MiB) during one (already warmed-up) step, sampled every 0.5 ms."""
    import threading

    step()
    gc.collect()
    base = _rss_bytes()
    peak = base
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.0005)

    th = threading.Thread(target=sample)
    th.start()
    step()
    done.set()
    th.join()
    return (peak - base) / 2**20


def peak_rss_mib(d: int, name: str, threads: int) -> float:
    """Peak memory of one step in a fresh process (CPU has no allocator statistics; Linux only)."""
    import subprocess

    code = (
        "import torch, sys; sys.argv=['x'];"
        f"torch.set_num_threads({threads});"
        "import bench_laplacian as b;"
        f"setup = b.setup({d}, torch.device('cpu'));"
        f"print(b.measure_step_memory(b.step_fn(b.methods({d})[{name!r}], *setup)))"
    )
    # blocks >= 64 KiB go to mmap and back to the OS on free, so resident memory tracks live tensors
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parent, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def setup(d: int, device: torch.device):
    torch.manual_seed(0)
    n = BATCH[d]
    model = MLP(d, 1, width=128, depth=4, activation="tanh").to(device)
    params = dict(model.named_parameters())
    x = torch.rand(n, d, device=device) * 2 - 1
    target = torch.sin(x).sum(1)
    gen = torch.Generator(device=device).manual_seed(0)
    return model, params, x, target, gen


def run(d: int, repeats: int, device: torch.device, threads: int, memory: bool, compile_: bool,
        only: list[str] | None = None) -> list[dict]:
    n = BATCH[d]
    ms = {k: v for k, v in methods(d).items()
          if only is None or "baseline" in k or any(o.lower() in k.lower() for o in only)}
    args = setup(d, device)
    steps = {name: step_fn(m, *args) for name, m in ms.items()}
    compile_s = None
    if compile_:
        step, compiled = compiled_step_fn(*args[:4])
        if compiled.compiled:
            name = "forward Laplacian + torch.compile"
            steps[name] = step
            ms[name] = None
            compile_s = compiled.compile_seconds
    times = {name: [] for name in steps}
    mem = {}
    for name, step in steps.items():  # warm-up and memory
        step()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            step()
            sync(device)
            mem[name] = torch.cuda.max_memory_allocated() / 2**20
        elif memory and ms[name] is not None:
            mem[name] = peak_rss_mib(d, name, threads)
    for _ in range(repeats):
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["nested autograd (baseline)"])
    rows = []
    for name in ms:
        med = statistics.median(times[name])
        rows.append({
            "d": d, "batch": n, "method": name, "median_s": med, "speedup_vs_baseline": base / med,
            "peak_MiB": mem.get(name),
            "compile_s": compile_s if "compile" in name else None,
            "device": str(device), "threads": threads, "repeats": repeats,
        })
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[10, 100, 1000], choices=sorted(BATCH))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--methods", nargs="+", default=None,
                    help="only methods whose name contains one of these (the baseline always runs)")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-method memory probes")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--default-malloc", action="store_true",
                    help="keep glibc's malloc thresholds (default: sciml.run.tune_allocator, as in training)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.default_malloc:
        from sciml.run import tune_allocator

        print(f"allocator thresholds raised (sciml.run.tune_allocator, for every method alike): {tune_allocator()}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    all_rows = []
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"{'d':>5} {'N':>5}  {'method':<44} {'median s':>9} {'speedup':>8} {'peak MiB':>9}")
    for d in args.dims:
        rows = run(d, args.repeats, device, torch.get_num_threads(), not args.no_memory, not args.no_compile,
                   args.methods)
        all_rows += rows
        for r in rows:
            if r["compile_s"]:
                r["method"] += f" ({r['compile_s']:.0f} s to compile)"
            print(f"{r['d']:>5} {r['batch']:>5}  {r['method']:<44} {r['median_s']:>9.4f} "
                  f"{r['speedup_vs_baseline']:>7.2f}x {r['peak_MiB'] if r['peak_MiB'] is not None else float('nan'):>9.1f}",
                  flush=True)
    if args.json:
        from sciml.run.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(all_rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
