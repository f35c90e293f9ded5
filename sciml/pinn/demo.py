"""``sciml demo`` section: a PINN on a 3-d Allen-Cahn member, then an SVD-PINN transfer to another member
(about a minute on CPU). Prints what it checked, with numbers."""

from __future__ import annotations

import time
from pathlib import Path


def demo(args) -> bool:
    import torch
    from torch.func import functional_call

    from problems.pdes import allen_cahn
    from sciml import fit
    from sciml.pinn import PINN, PINNConfig
    from sciml.run import load_config
    from sciml.transfer import FullFineTune, Scratch, SVDTransfer, Transfer, TransferRunConfig

    seed = getattr(args, "seed", None) or 0
    out = Path(getattr(args, "out", "runs/demo")) / "pinn"
    opts = {"device": getattr(args, "device", "cpu"), "overwrite": True}
    base = {"problem": {"family": "allen_cahn", "value": 0.0, "d": 3}, "model": {"widths": [48, 48]},
            "sampling": {"sampler": "radial", "n_interior": 256, "n_boundary": 128, "n_initial": 128, "n_test": 4000},
            "loss": {"w_boundary": 10.0, "w_initial": 10.0},
            "optim": {"iters": 400, "lr": 3e-3, "decay_rate": 0.5, "decay_steps": 200}, "seed": seed, "log_every": 50}
    ok = True
    t0 = time.perf_counter()
    pre = fit(PINN, load_config(base, PINNConfig), allen_cahn(0.0, 3), out=out / "pretrain_eps0", **opts).payload
    rel0 = pre.history[-1][1]
    good = rel0 < 0.2
    ok &= good
    print(f"pre-train Allen-Cahn d=3 eps=0 (2x48 tanh, 400 Adam steps): rel L2 {rel0:.3f} "
          f"[{'ok' if good else 'FAIL'}: < 0.2] in {pre.train_seconds:.1f} s")

    par = SVDTransfer().parametrise(pre.module, pre.params)
    z = torch.randn(1000, 4, device=next(iter(pre.params.values())).device)
    with torch.no_grad():
        diff = float((functional_call(pre.module, par.params(), (z,)) - functional_call(pre.module, pre.params, (z,))).abs().max())
    good = diff < 1e-5
    ok &= good
    print(f"SVD conversion W1 = U diag(s) V^T reproduces the network: max |difference| {diff:.1e} "
          f"[{'ok' if good else 'FAIL'}: < 1e-5]")

    tcfg = load_config({**base, "optim": {"iters": 200, "lr": 3e-3}, "transfer": {"s_lr": 1e-3}}, TransferRunConfig)
    rows = {}
    for strat in (SVDTransfer(), FullFineTune(), Scratch(seed + 1)):
        t = fit(Transfer, tcfg, allen_cahn(2.0, 3), source=pre, strategy=strat,
                out=out / f"to_eps2_{strat.label}", **opts).payload
        rows[strat.label] = (t.history[0][1], t.history[-1][1], t.n_trainable, t.train_seconds, t)
        print(f"  transfer eps 0 -> 2, {strat.label:>7}: rel L2 {t.history[0][1]:.3f} -> {t.history[-1][1]:.3f} "
              f"({t.n_trainable} trainable, {t.train_seconds:.1f} s)")
    s = rows["svd"][4].trainer.par.theta["2.weight.s"].detach()
    good = float(s.min()) >= 0
    ok &= good
    print(f"singular values stay non-negative: min s = {float(s.min()):.3g} [{'ok' if good else 'FAIL'}]")
    good = rows["svd"][1] < 0.25 * rows["svd"][0] and rows["svd"][1] < 1.5 * rows["full"][1]
    ok &= good
    print(f"SVD transfer: error x{rows['svd'][0] / rows['svd'][1]:.1f} below its start and within 1.5x of full "
          f"fine-tuning ({rows['svd'][1]:.3f} vs {rows['full'][1]:.3f}) with {rows['svd'][2]} instead of "
          f"{rows['full'][2]} trainable parameters [{'ok' if good else 'FAIL'}]")
    print(f"(runs in {out}; {time.perf_counter() - t0:.0f} s)")
    return bool(ok)
