"""DeepXDE side by side: the same stationary PINN trained by sciml and by DeepXDE (``pip install -e '.[bench]'``).

The problem is a high-dimensional benchmark of ``problems/highd.py`` (default: the two-body sine-Gordon
equation Δu + sin u = g in the unit ball of R^d, u = 0 on the sphere). Both sides train

    u(x) = (1 - |x|^2) N(x),   N = tanh MLP d -> widths -> 1 (the same initial weights, copied),

on the residual loss mean((Δu + sin u - g)^2) at the same collocation points (the papers' radial sampler),
with Adam at a constant learning rate, in float32, one thread each. The only differences are how Δu is
computed and the framework around the step:

* sciml: one ``sciml.pinn.Trainer.step`` (what ``sciml.fit(PINN, ...)`` runs per step) with an exact
  Laplacian method of ``sciml.autodiff.LAPLACIANS`` (``forward``, ``nested``, ``hessian``);
* DeepXDE: one ``Model.train_step`` (what ``Model.train`` runs per iteration, PyTorch backend): the
  PDE function takes Δu as the trace of ``dde.grad.hessian`` (d reverse passes with ``create_graph``),
  the hard constraint is an output transform.

Speed: the sides are timed in interleaved blocks (A B A B ...) on fixed points; the median per-step CPU
time (``time.process_time``) of each and the ratio DeepXDE / sciml are printed. The first step's losses of
the two sides are compared: the same network, points and equation give the same loss, up to float32.
Accuracy (``--accuracy-seconds S``): each side trains for S CPU seconds on fresh points every step (the
same sequence on both sides), the test error (relative L2 on the radial test set) is recorded every
``--eval-every`` steps outside the timed part; printed: the error at equal steps and at equal seconds.

    DDE_BACKEND=pytorch python experiments/bench_deepxde.py --dims 10 100 --threads 1
    python experiments/bench_deepxde.py --dims 10 --accuracy-seconds 120 --json out.json

Exits with 0 and a message when DeepXDE is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

MISSING = ("DeepXDE is not installed: this benchmark needs it (pip install -e '.[bench]', i.e. deepxde>=1.15, "
           "with DDE_BACKEND=pytorch); nothing was run.")
N_POINTS = {10: 1000, 100: 1000}


def import_deepxde():
    """The ``deepxde`` module on its PyTorch backend, or ``None`` when it is not installed."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its backend notice
            import deepxde as dde
    except ImportError:
        return None
    if dde.backend.backend_name != "pytorch":
        raise SystemExit(f"DeepXDE runs on backend {dde.backend.backend_name!r}; set DDE_BACKEND=pytorch")
    return dde


# ----------------------------------------------------------------------------------------------------
# sciml's side
def sciml_trainer(bench, args, d: int, n: int, method: str, *, resample: bool, compile_: str = "off"):
    """A ``sciml.pinn.Trainer`` on ``bench`` with the ansatz u = (1 - |x|^2) N(x) and Laplacian ``method``."""
    from sciml.pinn import PINNConfig, Trainer, build_network, identity_parametrisation
    from sciml.run import load_config, seed_everything

    cfg = load_config({
        "model": {"widths": list(args.widths)},
        "sampling": {"sampler": "radial", "n_interior": n, "n_boundary": 0, "n_initial": 0,
                     "n_test": args.n_test, "resample": resample},
        "loss": {"hard": "boundary"}, "laplacian": {"method": method, "compile": compile_},
        "optim": {"iters": 10**7, "lr": args.lr, "decay_rate": 1.0}, "seed": args.seed, "log_every": 10**7}, PINNConfig)
    seed_everything(args.seed)
    net = build_network(d, cfg.model.widths)
    return Trainer(bench.pinn_problem(hard=True), net, identity_parametrisation(net), cfg)


def sciml_error(tr) -> float:
    return tr.evaluate()[0]


# ----------------------------------------------------------------------------------------------------
# DeepXDE's side
def dde_model(dde, bench, tr, x0):
    """A DeepXDE model of the same problem, network (weights copied from ``tr``) and optimiser."""
    d = bench.d

    def pde(x, y):
        lap = sum(dde.grad.hessian(y, x, i=j, j=j) for j in range(d))   # (N, 1): DeepXDE's exact Laplacian
        u, lap = y[:, 0], lap[:, 0]
        return (bench.operator(u, None, lap, x) - bench.rhs(x.detach()))[:, None]

    geom = dde.geometry.Hypersphere([0.0] * d, 1.0)
    data = dde.data.PDE(geom, pde, [], num_domain=0, num_boundary=0, anchors=x0.numpy())
    net = dde.nn.FNN([d, *tr.cfg.model.widths, 1], "tanh", "Glorot normal")
    params = tr.par.params()
    linears = [k[: -len(".weight")] for k in params if k.endswith(".weight")]
    with torch.no_grad():
        for lin, key in zip(net.linears, linears, strict=True):
            lin.weight.copy_(params[key + ".weight"])
            lin.bias.copy_(params[key + ".bias"])
    net.apply_output_transform(lambda x, y: (1 - (x * x).sum(1, keepdim=True)) * y)
    model = dde.Model(data, net)
    with contextlib.redirect_stdout(io.StringIO()):
        model.compile("adam", lr=tr.cfg.optim.lr)
    return model


def dde_stepper(model, tr, resample: bool, record: list | None = None):
    """One DeepXDE ``train_step`` on ``tr``'s fixed points, or on the fresh points ``tr`` will draw (its
    resampling stream replayed: the same sequence of points on both sides; ``record`` gets each set's sum)."""
    from sciml.pinn.solver import collocation
    from sciml.run import derived_generator

    if not resample:
        x = tr.points.x_in.clone()   # DeepXDE sets requires_grad on its input: not on the trainer's
        return lambda: model.train_step(x, None, None)
    gen = derived_generator(tr.cfg.seed, "pinn", "noise")

    def step():
        x = collocation(tr.problem, tr.cfg, "cpu", gen).x_in
        if record is not None:
            record.append(float(x.sum()))
        model.train_step(x, None, None)

    return step


def dde_loss(model, x) -> float:
    """The residual loss of the DeepXDE model at ``x`` (no step)."""
    _, losses = model.outputs_losses_train(x.clone(), None, None)
    return float(losses.detach().sum())


def dde_error(model, tr) -> float:
    with torch.no_grad():
        pred = model.net(tr.test.x)[:, 0]
    return float(((pred - tr.test_u[0]).norm() / tr.test_u[0].norm()))


# ----------------------------------------------------------------------------------------------------
# Speed: interleaved blocks on fixed points
def speed(dde, bench, args, d: int) -> dict:
    """Median CPU seconds per step of DeepXDE and of each sciml method, interleaved (A B A B ...)."""
    n = args.points or N_POINTS.get(d, 1000)
    sides = {}
    for m in args.methods:
        comp = "on" if m == "forward+compile" else "off"
        tr = sciml_trainer(bench, args, d, n, m.split("+")[0], resample=args.resample, compile_=comp)
        sides[f"sciml {m}"] = (tr, _sciml_stepper(tr))
    tr0 = next(iter(sides.values()))[0]
    x0 = tr0.points.x_in
    model = dde_model(dde, bench, tr0, x0)
    loss_dde = dde_loss(model, x0)
    loss_ours = float(tr0.loss()[0].detach()) if not args.resample else float("nan")
    sides["DeepXDE hessian trace"] = (model, dde_stepper(model, tr0, args.resample))
    times = {k: [] for k in sides}
    for name, (_, step) in sides.items():  # warm-up (and the one-off compile)
        t0 = time.process_time()
        for _ in range(args.warmup):
            step()
        print(f"  d={d} warm-up {name}: {time.process_time() - t0:.1f} CPU s", flush=True)
    for _ in range(args.blocks):
        for name, (_, step) in sides.items():
            t0 = time.process_time()
            for _ in range(args.block_steps):
                step()
            times[name].append((time.process_time() - t0) / args.block_steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["DeepXDE hessian trace"]
    return {"d": d, "points": n, "fresh_points": args.resample, "loss_step0": {"sciml": loss_ours, "deepxde": loss_dde},
            "median_s": med, "ratio": {k: base / v for k, v in med.items()}, "blocks_s": times}


def _sciml_stepper(tr):
    counter = iter(range(1, 10**9))
    return lambda: tr.step(next(counter))


# ----------------------------------------------------------------------------------------------------
# Accuracy: each side for the same CPU seconds on the same fresh points
def accuracy(dde, bench, args, d: int) -> dict:
    """Test error against steps and CPU seconds, both sides on the same sequence of fresh points."""
    n = args.points or N_POINTS.get(d, 1000)
    tr = sciml_trainer(bench, args, d, n, "forward", resample=True)
    model = dde_model(dde, bench, tr, tr.points.x_in)
    seen_s, seen_d = [], []
    dde_step = dde_stepper(model, tr, True, seen_d)
    sciml_step = _sciml_stepper(tr)

    def recorded_sciml_step():
        sciml_step()
        seen_s.append(float(tr.points.x_in.sum()))

    curves = {"sciml forward": _curve(recorded_sciml_step, lambda: sciml_error(tr), args),
              "DeepXDE hessian trace": _curve(dde_step, lambda: dde_error(model, tr), args)}
    m = min(len(seen_s), len(seen_d))
    same = seen_s[:m] == seen_d[:m]   # the replayed stream gave the trainer's points, step by step
    if not same:
        print("  WARNING: the two sides did not see the same points (the trainer's resampling changed)")
    return {"d": d, "points": n, "same_points": same, "curves": curves, **_compare(curves)}


def _curve(step, error, args) -> list[tuple[int, float, float]]:
    """``(steps, CPU seconds of training, test error)`` every ``eval_every`` steps until the budget."""
    out, spent, i = [(0, 0.0, error())], 0.0, 0
    while spent < args.accuracy_seconds:
        t0 = time.process_time()
        for _ in range(args.eval_every):
            step()
        spent += time.process_time() - t0
        i += args.eval_every
        out.append((i, spent, error()))
    return out


def _compare(curves) -> dict:
    """Errors at the largest step count both reached, and at the smaller of the two budgets spent."""
    a, b = curves.values()
    steps = min(a[-1][0], b[-1][0])
    secs = min(a[-1][1], b[-1][1])

    def at_step(c):
        return next(e for s, _, e in c if s >= steps)

    def at_secs(c):
        return [e for _, t, e in c if t <= secs][-1]

    names = list(curves)
    return {"equal_steps": {"steps": steps, **{k: at_step(c) for k, c in zip(names, (a, b))}},
            "equal_seconds": {"seconds": secs, **{k: at_secs(c) for k, c in zip(names, (a, b))}}}


# ----------------------------------------------------------------------------------------------------
def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    p.add_argument("--equation", default="sine_gordon", help="poisson | sine_gordon | allen_cahn")
    p.add_argument("--body", type=int, default=2)
    p.add_argument("--widths", type=int, nargs="+", default=[128, 128, 128, 128])
    p.add_argument("--points", type=int, default=None, help="collocation points (default 1000)")
    p.add_argument("--methods", nargs="+", default=["forward", "nested", "hessian"],
                   help="sciml exact Laplacians to time (forward+compile: the compiled loss)")
    p.add_argument("--resample", action="store_true", help="time on fresh points every step (both sides)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--block-steps", type=int, default=3)
    p.add_argument("--accuracy-seconds", type=float, default=0.0, help="CPU s per side (0: speed only)")
    p.add_argument("--accuracy-dims", type=int, nargs="+", default=[10])
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    dde = import_deepxde()
    if dde is None:
        print(MISSING)
        return 0
    from problems.highd import highd_problem

    torch.set_num_threads(args.threads)
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "deepxde": dde.__version__, "threads": args.threads, "date": time.strftime("%Y-%m-%d"),
           "args": vars(args), "speed": [], "accuracy": []}
    for d in args.dims:
        bench = highd_problem(args.equation, d, args.body, args.seed)
        r = speed(dde, bench, args, d)
        out["speed"].append(r)
        _print_speed(r)
    if args.accuracy_seconds > 0:
        for d in args.accuracy_dims:
            r = accuracy(dde, highd_problem(args.equation, d, args.body, args.seed), args, d)
            out["accuracy"].append(r)
            _print_accuracy(r)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def _print_speed(r) -> None:
    ls = r["loss_step0"]
    print(f"d = {r['d']}, {r['points']} points; loss at step 0: sciml {ls['sciml']:.6g}, DeepXDE {ls['deepxde']:.6g}")
    for k, v in r["median_s"].items():
        print(f"  {k:28s} {v:8.4f} CPU s/step   DeepXDE / this = {r['ratio'][k]:6.2f}x")


def _print_accuracy(r) -> None:
    es, eq = r["equal_steps"], r["equal_seconds"]
    print(f"d = {r['d']}, {r['points']} fresh points per step; relative L2 on the radial test set")
    for k in r["curves"]:
        last = r["curves"][k][-1]
        print(f"  {k:24s} at {es['steps']} steps: {es[k]:.3e}; at {eq['seconds']:.0f} CPU s: {eq[k]:.3e}"
              f"  (ran {last[0]} steps in {last[1]:.0f} s, final {last[2]:.3e})")


if __name__ == "__main__":
    sys.exit(main())
