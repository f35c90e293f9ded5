"""Print the reproduction JSON of ``transfer_reproduce.py`` as a markdown table (for docs/pinn.md).

    python experiments/transfer_table.py docs/results/transfer_allen_cahn.json
"""

import json
import sys


def main(path: str) -> None:
    s = json.load(open(path))
    pre = s.get("pretrain", {})
    if pre:
        print(f"Pre-training at {pre['value']:g}: {pre['iters']} Adam iterations, rel L2 {pre['rel_l2']:.4f}.\n")
    print("| target | method | trainable params | rel L2 at start | rel L2 at end | best | (rel L2)^2 at end | "
          "training time (s) | s / iteration |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in s["runs"]:
        print(f"| {r['target']:g} | {r['method']} | {r['n_trainable']:,} | {r['initial_rel_l2']:.4f} | "
              f"{r['final_rel_l2']:.4f} | {r['best_rel_l2']:.4f} | {r['final_rel_l2_sq']:.2e} | "
              f"{r['train_seconds']:.0f} | {r['train_seconds'] / r['iters']:.2f} |")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        main(p)
