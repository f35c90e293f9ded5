"""How much could batching K family members save on a CPU? Time the GEMMs one member's step must do.

A 2 x H PINN step with the forward Laplacian in Jacobian mode pushes R = N (d + 2) rows (value, d
tangents, Laplacian) through the H x H hidden layer, and its backward pass does two more GEMMs of the
same size (input and weight gradients). In the family run every member has its own first layer, so none
of this work is shared: K members do K times these GEMMs, batched or not. This script times

* ``single``: the three GEMMs of one member, ``(R, H) @ (H, H)``, ``(R, H) @ (H, H)^T``, ``(H, R) @ (R, H)``;
* ``batched``: the same for K members as three ``bmm`` calls, divided by K;

and prints their ratio (what batching gains on the GEMMs themselves) and, given the measured time of one
sequential member step (``--step-ms``, from ``transfer_family_bench.py``: sequential CPU s / (K iters)),
the upper bound on the family speed-up: step / (batched GEMM time), reached only if batching removed
every non-GEMM cost.

    OMP_NUM_THREADS=1 python experiments/family_roofline.py --step-ms 135
"""

from __future__ import annotations

import argparse
import time

import torch


def _median_time(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--n-interior", type=int, default=1000)
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--step-ms", type=float, default=None, help="measured CPU ms of one sequential member step")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    R, H, K = a.n_interior * (a.d + 2), a.width, a.k
    g = torch.Generator().manual_seed(0)
    A, G = torch.randn(R, H, generator=g), torch.randn(R, H, generator=g)
    W = torch.randn(H, H, generator=g)
    Ab, Gb, Wb = A.expand(K, R, H).contiguous(), G.expand(K, R, H).contiguous(), W.expand(K, H, H).contiguous()

    def single() -> None:
        A @ W
        G @ W.T
        A.T @ G

    def batched() -> None:
        torch.bmm(Ab, Wb)
        torch.bmm(Gb, Wb.transpose(1, 2))
        torch.bmm(Ab.transpose(1, 2), Gb)

    ts = _median_time(single, a.repeats)
    tb = _median_time(batched, max(a.repeats // 3, 3)) / K
    gflop = 3 * 2 * R * H * H / 1e9
    print(f"R = {R} rows, H = {H}, K = {K}, {a.threads} thread(s)")
    print(f"single member, 3 GEMMs: {1e3 * ts:.1f} ms ({gflop / ts:.1f} GFLOP/s)")
    print(f"batched, per member:    {1e3 * tb:.1f} ms ({gflop / tb:.1f} GFLOP/s); batching gains {ts / tb:.2f}x on the GEMMs")
    if a.step_ms:
        print(f"sequential member step {a.step_ms:.0f} ms: GEMMs are {1e3 * ts / a.step_ms:.0%} of it; "
              f"the family speed-up is at most {a.step_ms / (1e3 * tb):.2f}x (all non-GEMM work free)")


if __name__ == "__main__":
    main()
