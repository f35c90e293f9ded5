"""The evidence plot: held-out loss against k, with the decided count and its margin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_losses"]


def plot_losses(res: Any, path: str | Path, title: str | None = None) -> Path:
    """Plot held-out (and training) losses vs k on a log axis; mark the candidates the floor rule counted
    (with their thresholds) or the jump the jump rule chose. ``res``: a
    :class:`~sciml.conservation.Discovery` with a decision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = res.decision
    ks = [f.index for f in res.fits]
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    ax.semilogy(ks, [f.loss for f in res.fits], "o-", label="held-out loss")
    ax.semilogy(ks, [f.train_loss for f in res.fits], "x--", alpha=0.6, label="training loss")
    K = len(ks)
    if d.thresholds is not None:  # the floor rule: counted below its threshold (own floor x 10^D, or the global line)
        from .count import FloorRule, exact_flags

        thr = list(d.thresholds)
        if isinstance(res.rule, FloorRule) and res.rule.floor_reference == "delta":  # one line (and one for exact)
            for t, ls in zip(sorted(set(thr)), ("--", ":")):
                ax.axhline(t, color="gray", ls=ls, label=f"threshold {t:.0e}")
        else:
            ax.semilogy(ks, thr, "_", color="gray", ms=16, mew=2, label="threshold (own floor x 10^D)")
        exact = [f.index for f, x in zip(res.fits, exact_flags([f.stats for f in res.fits])) if x]
        if exact:
            ax.semilogy(exact, [res.fits[k - 1].loss for k in exact], "s", mfc="none", color="C2", ms=9,
                        label="exact polynomial")
        cnt = list(d.counted_indices)
        ax.semilogy(cnt, [res.fits[k - 1].loss for k in cnt], "*", color="C3", ms=11,
                    label=f"counted: {d.n} (margin {d.margin:.2f} dec)")
    elif len(d.log_losses) > K:  # the jump rule: log-losses end with the virtual candidate
        ax.semilogy([K + 1], [10 ** d.log_losses[-1]], "s", color="gray", label="virtual end (loss 1)")
        if 1 <= d.n <= K:
            lo, hi = 10 ** d.log_losses[d.n - 1], 10 ** d.log_losses[d.n]
            ax.annotate("", xy=(d.n + 0.5, hi), xytext=(d.n + 0.5, lo),
                        arrowprops=dict(arrowstyle="<->", color="C3"))
        ax.axvline(d.n + 0.5, color="C3", ls=":", label=f"count = {d.n} (margin {d.margin:.2f} dec)")
    ax.set_xlabel("k (candidate $H_k$)")
    ax.set_ylabel("loss")
    ax.set_xticks(range(1, K + 2))
    ax.set_title(title or f"neural deflation: {res.n_conserved} conserved")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
