"""Reproduction table: discover the conserved quantities of every catalogue system, one rule for all.

For each system: simulate trajectories (the same data settings for every system), run
:class:`sciml.conservation.Deflation` (``sciml.fit``) with the default config, check the learned quantities against the
known invariants (span and held-out constancy), and write ``OUT/<system>-N<n>.json`` with the per-candidate
held-out loss under every statistic (so the count rule can be calibrated afterwards without retraining)
and the wall time. ``--summarise`` prints the Markdown table from the JSON files.

    OMP_NUM_THREADS=1 python experiments/deflation_table.py --systems ho1d ho2d-iso --n 3 --out runs/deflation
    python experiments/deflation_table.py --summarise --out runs/deflation

Full budget (the issue's table): ``--systems all --n 3 4 5 6``; the wall-time bar is 5 minutes per
discovery at N = 3 on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import sciml
from problems.systems import HAS_N, SYSTEMS, get_system
from sciml.conservation import Deflation, DiscoveryConfig, FloorRule, JumpRule, constancy, span_check
from sciml.conservation.count import EXACT_START
from sciml.dynamics import simulate
from sciml.run import load_config, setup_logging
from sciml.run.io import atomic_write_text


def _constancy(r: dict) -> list[float]:
    """Held-out constancy per candidate (older files hold it only for the counted ones; pad with 1)."""
    if all("constancy" in s for s in r["stats"]):
        return [s["constancy"] for s in r["stats"]]
    c = [x["median"] for x in r.get("constancy") or []]
    return c + [1.0] * (len(r["stats"]) - len(c))


def _steps(r: dict) -> str:
    """Steps of the trained candidates (the patience rule's, from their statistics; older files: the budget)."""
    if not all("steps" in st for st in r["stats"]):
        return str(r.get("steps", 3000))
    trained = [st["steps"] for st in r["stats"] if st["steps"] > 0]
    return ", ".join(str(n) for n in trained) if trained else "0"


def run_one(name: str, n: int | None, args: argparse.Namespace) -> dict:
    system = get_system(name, n, **({"regime": args.regime} if name.startswith("fput") else {}))
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    traj = simulate(system, args.n_traj, args.n_times, args.dt, generator=gen)
    t_sim = time.perf_counter() - t0
    overrides = {"seed": args.seed, "steps": args.steps, "involution": args.involution}
    cfg = load_config(args.config or {}, DiscoveryConfig, overrides=overrides)
    t0, c0 = time.perf_counter(), time.process_time()
    run = sciml.fit(Deflation, cfg, traj)
    if run.payload is None:
        raise RuntimeError(f"{name}: {run.status.value}: {run.message}")
    res = run.payload
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ho = traj.X[res.split[1]]
    rep = span_check(res.conserved, system.invariants, ho.reshape(-1, system.dim)) if res.n_conserved else None
    expected = system.expected_involution if args.involution else system.expected
    out = {
        "system": name, "n": n if name in HAS_N else None, "dim": system.dim, "expected": expected,
        "at_least": bool(system.expected_is_lower_bound and not args.involution),
        "n_conserved": res.n_conserved, "margin": res.decision.margin, "losses": res.losses,
        "stats": [f.stats for f in res.fits], "train_losses": [f.train_loss for f in res.fits],
        "wall_s": wall, "cpu_s": cpu, "simulate_s": t_sim, "steps": args.steps, "energy_drift": traj.attrs["energy_drift"],
        "span": rep.as_dict() if rep else None, "spans_known": rep.spans() if rep else None,
        "constancy": [constancy(h, ho) for h in res.conserved], "config": res.summary()["config"],
        "data": {"n_traj": args.n_traj, "n_times": args.n_times, "dt": args.dt},
        "threads": torch.get_num_threads(), "involution": args.involution, "region": system.region.description,
    }
    return out


def _starts(r: dict) -> str:
    """How each candidate started: E<degree> an exact library solution taken as it is, p a polynomial start,
    h the Hamiltonian start, r a random initialisation (older files: '-')."""
    out = []
    for st in r["stats"]:
        start = st.get("start", "-")
        out.append(f"E{st.get('library_degree', '')}" if start == EXACT_START
                   else "p" if start == "polynomial" else "h" if start == "hamiltonian"
                   else "r" if start.startswith("random") else "-")
    return " ".join(out)


def summarise(out: Path, statistic: str, min_jump: float, args_no_veto: bool = False,
              floor_decades: float = DiscoveryConfig.floor_decades,
              independence: float = DiscoveryConfig.independence_decades,
              reference: str = DiscoveryConfig.floor_reference) -> None:
    """One markdown row per JSON file: the count by both rules (floor = the default), the evidence."""
    rows = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    print(f"| system | N | d | theory | found (floor rule) | margin (dec) | found (jump rule) | held-out {statistic} "
          f"losses | starts | constancy | spans known | steps | wall (s) | CPU (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    right = {"floor": 0, "jump": 0}
    for r in rows:
        losses = [s[statistic] for s in r["stats"]]
        complete = len(losses) == r["dim"] - 1 and not r.get("involution")
        cap = (r["dim"] // 2) if r.get("involution") else r["dim"] - 1
        c = r.get("config", {})
        fl = FloorRule(c.get("floor", 1e-3), floor_decades, c.get("floor_exact_decades", 2.0), independence,
                       reference).count(r["stats"], losses, complete=complete, cap=cap)
        jp = JumpRule(min_jump, constancy_tol=0.5).decide(losses, complete=complete, cap=cap,
                                                          constancy=None if args_no_veto else _constancy(r))
        at_least = r.get("at_least", r["system"] == "toda-periodic" and not r.get("involution"))

        def ok(n: int) -> bool:
            return n >= r["expected"] if at_least else n == r["expected"]

        right["floor"] += ok(fl.n)
        right["jump"] += ok(jp.n)
        sp = r["spans_known"]
        cpu = f"{r['cpu_s']:.0f}" if "cpu_s" in r else "-"
        print(f"| {r['system']} | {r['n'] or '-'} | {r['dim']} | {'>= ' if at_least else ''}{r['expected']} | "
              f"{fl.n} ({'yes' if ok(fl.n) else '**no**'}) | {fl.margin:.2f} | {jp.n} ({'yes' if ok(jp.n) else 'no'}) | "
              f"{', '.join(f'{x:.1e}' for x in losses)} | {_starts(r)} | "
              f"{', '.join(f'{x:.0e}' for x in _constancy(r))} | "
              f"{'-' if sp is None else ('yes' if sp else 'no')} | {_steps(r)} | {r['wall_s']:.0f} | "
              f"{cpu} |")
    print(f"\ncounted right: floor rule {right['floor']}/{len(rows)}, jump rule {right['jump']}/{len(rows)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=["all"])
    ap.add_argument("--n", nargs="+", type=int, default=[3])
    ap.add_argument("--out", default="runs/deflation_table")
    ap.add_argument("--n-traj", type=int, default=128)
    ap.add_argument("--n-times", type=int, default=500)
    ap.add_argument("--dt", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--involution", action="store_true")
    ap.add_argument("--regime", choices=("regular", "chaotic"), default="chaotic",
                    help="initial states of the FPUT chains (problems.systems.fput): 'chaotic' (default) where "
                         "only the global integrals survive, 'regular' the low-energy box")
    ap.add_argument("--config", default=None, help="TOML with DiscoveryConfig keys")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--summarise", action="store_true")
    ap.add_argument("--statistic", default="median")
    ap.add_argument("--min-jump", type=float, default=1.0)
    ap.add_argument("--veto", action="store_true", help="summarise with the constancy veto (tolerance 0.5)")
    ap.add_argument("--floor-decades", type=float, default=DiscoveryConfig.floor_decades,
                    help="summarise: the floor rule's D")
    ap.add_argument("--independence-decades", type=float, default=DiscoveryConfig.independence_decades,
                    help="summarise: the floor rule's D_i")
    ap.add_argument("--floor-reference", choices=("candidate", "delta"), default=DiscoveryConfig.floor_reference,
                    help="summarise: each candidate's own floor or delta^2")
    args = ap.parse_args()
    out = Path(args.out)
    if args.summarise:
        summarise(out, args.statistic, args.min_jump, not args.veto, args.floor_decades, args.independence_decades,
                  args.floor_reference)
        return
    torch.set_num_threads(args.threads)
    setup_logging("INFO")  # one line per candidate
    out.mkdir(parents=True, exist_ok=True)
    names = list(SYSTEMS) if args.systems == ["all"] else args.systems
    for name in names:
        for n in (args.n if name in HAS_N else [None]):
            tag = f"{name}-N{n}" if n else name
            r = run_one(name, n, args)
            atomic_write_text(out / f"{tag}{'-inv' if args.involution else ''}.json", json.dumps(r, indent=1))
            print(f"{tag}: found {r['n_conserved']} (theory {r['expected']}), margin {r['margin']:.2f}, "
                  f"losses {[f'{x:.1e}' for x in r['losses']]}, spans {r['spans_known']}, {r['wall_s']:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
