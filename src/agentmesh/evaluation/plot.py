"""Cost-quality plot of an evaluation (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentmesh.evaluation.report import RouterResult

__all__ = ["plot_curves"]


def plot_curves(summary: dict[str, Any], results: Sequence[RouterResult], path: str | Path) -> None:
    """Draw accuracy against the share of strong calls (and cost, when priced) into ``path``.

    Raises:
        ImportError: matplotlib is not installed (the ``eval`` extra).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    priced = bool(results) and results[0].curve[0].cost_usd is not None
    fig, axes = plt.subplots(1, 2 if priced else 1, figsize=(13 if priced else 7, 5.2))
    ax_share = axes[0] if priced else axes
    for r in results:
        xs = [p.strong_share * 100 for p in r.curve]
        ys = [p.accuracy for p in r.curve]
        style = ":" if r.name.startswith(("random", "oracle")) else "-"
        ci = f", 95% {r.apgr_ci[0]:.3f}-{r.apgr_ci[1]:.3f}" if r.apgr_ci is not None else ""
        label = f"{r.name} (APGR {r.apgr:.3f}{ci})"
        ax_share.plot(xs, ys, style, label=label, linewidth=1.6)
        if priced:
            costs = [p.cost_usd or 0.0 for p in r.curve]
            axes[1].plot(costs, ys, style, label=r.name, linewidth=1.6)
    for ax in axes if priced else [ax_share]:
        ax.axhline(summary["weak_accuracy"], color="grey", linestyle="--", linewidth=1)
        ax.axhline(summary["strong_accuracy"], color="red", linestyle="--", linewidth=1)
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    ax_share.set_xlabel("strong model calls (%)")
    ax_share.set_title(
        f"{Path(summary['test']).name}: weak {summary['weak_accuracy']:.3f}, "
        f"strong {summary['strong_accuracy']:.3f} ({summary['rows']} rows)"
    )
    ax_share.legend(fontsize=8, loc="lower right")
    if priced:
        prices = summary["prices"]
        axes[1].set_xlabel(
            f"cost of the test rows, USD ({prices['weak_model']} / {prices['strong_model']})"
        )
        axes[1].set_title("accuracy against cost (catalog prices)")
        axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
