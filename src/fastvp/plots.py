"""Matplotlib helpers shared by fastvp's figures: ``evaluation/figures.py`` (the evaluation
report and the demo), ``problems/figures.py`` (the physics check) and
``scripts/learning_curves.py``.

Figures are ``matplotlib.figure.Figure`` objects built without pyplot (no global state, no
display needed); matplotlib is imported only when a figure is made. ``save_figure`` writes
the PNG complete or not at all. Arrays are numpy or CPU tensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import atomic_write


def as_numpy(x) -> np.ndarray:
    """`x` (a tensor, on any device, or anything numpy takes) as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def subplots(nrows: int, ncols: int, width: float, height: float):
    """(figure, axes [nrows, ncols]) of panels `width` x `height` inches, constrained layout."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, path) -> Path:
    """Write `fig` as a PNG at `path` atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
