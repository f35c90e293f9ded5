"""Benchmark: K family members transferred at once (stacked parameters, vmapped loss) vs K sequential
transfers, same iterations, same points, measured in one process.

Both paths run the same SVD-PINN updates (the family step is K independent steps; the errors agree to
round-off, printed). Reported: wall time of the K sequential runs, of the family run, their ratio, and
the largest difference between the members' final errors. One untimed warm-up of each path first.
Wall and CPU (process) time are both reported; on a shared machine only the CPU time is meaningful.

    OMP_NUM_THREADS=1 python experiments/transfer_family_bench.py --k 8 --iters 50 --width 300 --n-interior 1000
    OMP_NUM_THREADS=1 python experiments/transfer_family_bench.py --k 8 --iters 200 --width 64 --n-interior 256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from problems.pdes import allen_cahn
from sciml.pinn import PINN, Trainer, build_network
from sciml.pinn.solver import collocation
from sciml.run import config_to_dict, load_config
from sciml.transfer import (TRANSFER_STRATEGIES, TransferRunConfig, family_trainer, s_optimizer_for,
                            stack_parametrisation)

EPS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--width", type=int, default=300)
    p.add_argument("--n-interior", type=int, default=1000)
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--method", default="svd")
    p.add_argument("--s-lr", type=float, default=1e-4, help="SGD learning rate of the singular values")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--pretrained", default=None, help="model.pt folder (default: a random network; the timing "
                                                       "does not depend on the weights)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    nb = a.n_interior // 2
    cfg = load_config({"problem": {"family": "allen_cahn", "d": a.d}, "model": {"widths": [a.width, a.width], "input_scale": "none"},
                       "sampling": {"sampler": "radial", "n_interior": a.n_interior, "n_boundary": nb, "n_initial": nb,
                                    "n_test": 2000},
                       "optim": {"iters": a.iters}, "transfer": {"s_lr": a.s_lr}, "log_every": max(a.iters // 4, 1),
                       "checkpoint_every": 0}, TransferRunConfig)
    if a.pretrained:
        pre = PINN.load(a.pretrained, device=dev)
        net, params = pre.module, dict(pre.params)
    else:
        torch.manual_seed(0)
        net = build_network(a.d + 1, (a.width, a.width)).to(dev)
        params = {k: v.detach() for k, v in net.named_parameters()}
    eps = list(EPS[: a.k]) if a.k <= len(EPS) else [0.5 * (i + 1) for i in range(a.k)]
    members = [allen_cahn(e, a.d) for e in eps]
    strat = TRANSFER_STRATEGIES.resolve(a.method)
    points = collocation(members[0], cfg, dev)
    s_opt = s_optimizer_for(cfg.transfer)

    def run(tr):
        for i in range(tr.n_steps):
            tr.step(i)

    def sequential(iters_cfg):
        errs = []
        c0, t0 = time.process_time(), time.perf_counter()
        for m in members:
            tr = Trainer(m, net, strat.parametrise(net, params), iters_cfg, device=dev, points=points, s_optimizer=s_opt)
            run(tr)
            errs.append(tr.history[-1][1])
        return time.perf_counter() - t0, time.process_time() - c0, errs

    def family(iters_cfg):
        c0, t0 = time.process_time(), time.perf_counter()
        par = stack_parametrisation(strat.parametrise(net, params), len(members))
        tr = family_trainer(members, net, par, iters_cfg, device=dev, points=points, s_optimizer=s_opt)
        run(tr)
        return time.perf_counter() - t0, time.process_time() - c0, tr.member_errors()[0]

    warm = load_config({**config_to_dict(cfg), "optim": {"iters": 2}}, TransferRunConfig)
    sequential(warm), family(warm)  # untimed warm-up (imports, allocator)
    t_seq, c_seq, e_seq = sequential(cfg)
    t_fam, c_fam, e_fam = family(cfg)
    diff = max(abs(x - y) for x, y in zip(e_seq, e_fam))
    out = {"k": a.k, "iters": a.iters, "width": a.width, "n_interior": a.n_interior, "d": a.d, "method": a.method,
           "threads": a.threads, "device": a.device, "sequential_s": t_seq, "family_s": t_fam, "speedup": t_seq / t_fam,
           "sequential_cpu_s": c_seq, "family_cpu_s": c_fam, "speedup_cpu": c_seq / c_fam,
           "max_error_difference": diff, "errors_sequential": e_seq, "errors_family": e_fam}
    print(f"K={a.k} members, {a.iters} iterations, width {a.width}, {a.n_interior} interior points, d={a.d}, "
          f"{a.threads} thread(s), {a.device}")
    print(f"  wall: sequential {t_seq:8.1f} s   family (vmap) {t_fam:8.1f} s   ratio x{t_seq / t_fam:.2f}")
    print(f"  CPU:  sequential {c_seq:8.1f} s   family (vmap) {c_fam:8.1f} s   ratio x{c_seq / c_fam:.2f}"
          "   (process time: robust to other jobs on a shared machine)")
    print(f"  largest difference of final rel. L2 between the two: {diff:.2e}")
    if a.json:
        path = Path(a.json)
        rows = json.loads(path.read_text()) if path.exists() else []
        rows.append(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
