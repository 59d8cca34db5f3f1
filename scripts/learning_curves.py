"""Learning curves of training runs: a figure and a markdown table from their history.json.

    python scripts/learning_curves.py docs/learning-curves.png \
        "fastvp recipe (paper-1d)=src/fastvp/weights/paper-1d.history.json" \
        "paper recipe (stopped at epoch 8)=docs/likelihood-probes/paper-recipe.history.json" \
        "fastvp recipe, official scheme=src/fastvp/weights/paper-1d-official-scheme.history.json"

(the paper recipe's run: `fastvp train --recipe paper --data data/paper-seed0 --out
runs/paper-recipe --threads 1`, stopped after 8 epochs; its history.json copied to docs/)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastvp.plots import save_figure, subplots

EPOCHS = (1, 2, 3, 5, 10, 20, 40, 60, 80, 100, 120, 160, 200)


def plot_learning_curves(runs: Mapping[str, Sequence[Mapping]]):
    """Validation W1 at T (% of the identity) of training runs against wall time (left)
    and epochs (right); runs: {label: history rows with "epoch", "elapsed",
    "val_w1_q_pct", "val_w1_p_pct"}. Positions solid, momenta dashed."""
    fig, axes = subplots(1, 2, 4.6, 3.4)
    for j, (label, rows) in enumerate(runs.items()):
        rows = [r for r in rows if "val_w1_q_pct" in r]
        hours = [r["elapsed"] / 3600 for r in rows]
        epochs = [r["epoch"] for r in rows]
        for ax, x in ((axes[0, 0], hours), (axes[0, 1], epochs)):
            ax.plot(x, [r["val_w1_q_pct"] for r in rows], "-", color=f"C{j}", label=f"{label}, q")
            ax.plot(x, [r["val_w1_p_pct"] for r in rows], "--", color=f"C{j}", label=f"{label}, p")
    for ax, xlabel in ((axes[0, 0], "wall time (hours)"), (axes[0, 1], "epoch")):
        ax.set(xlabel=xlabel, ylabel="validation W1 at T, % of identity", yscale="log")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Likelihood training from a random start: validation W1 at T")
    return fig


def table(runs: dict) -> str:
    """Rows at the epochs of EPOCHS, each run's kept epoch and its last one."""
    lines = ["| run | epoch | wall time (h) | val NLL | W1 q % | W1 p % | a |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, rows in runs.items():
        kept = {rows[-1].get("kept"), rows[-1]["epoch"]} if rows else set()
        for r in rows:
            if r["epoch"] not in EPOCHS and r["epoch"] not in kept:
                continue
            lines.append(f"| {label} | {r['epoch']} | {r['elapsed'] / 3600:.2f} | "
                         f"{r.get('val_loss', float('nan')):.1f} | {r['val_w1_q_pct']:.2f} | "
                         f"{r['val_w1_p_pct']:.2f} | {r.get('a', float('nan')):.4f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    out, specs = Path(argv[0]), argv[1:]
    runs = {}
    for spec in specs:
        label, _, path = spec.partition("=")
        runs[label] = [r for r in json.loads(Path(path).read_text()) if "val_w1_q_pct" in r]
    save_figure(plot_learning_curves(runs), out)
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
