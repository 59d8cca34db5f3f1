"""Learning curves of training runs: a figure and a markdown table from their history.json.

    python scripts/learning_curves.py docs/learning-curves.png \
        "fastvp recipe=runs/paper-1d/history.json" "paper recipe=runs/paper-recipe/history.json"
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fastvp import plots


def table(runs: dict) -> str:
    lines = ["| run | epoch | wall time (h) | val NLL | W1 q % | W1 p % | a |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for label, rows in runs.items():
        for r in rows:
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
    plots.save_figure(plots.plot_learning_curves(runs), out)
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
