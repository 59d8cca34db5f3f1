"""Wasserstein-1 distance between particle samples (the physics diagnostics are in
``fastvp.pic.diagnostics``)."""

from __future__ import annotations

import numpy as np
import torch


def _as_tensor(name: str, x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a tensor or numpy array, got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    return x if x.is_floating_point() else x.to(torch.float64)


def _merged_quantiles(n: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The steps of two quantile functions of n and m atoms on (0, 1]: (i, j, width).

    The breakpoints u = i/n and j/m, as integers k over n*m (exact), sorted and merged;
    on the interval ending at k the quantiles are x_(ceil(k/m)) and y_(ceil(k/n)).
    """
    ends = torch.unique(torch.cat((torch.arange(1, n + 1, device=device) * m,
                                   torch.arange(1, m + 1, device=device) * n)))
    starts = torch.cat((ends.new_zeros(1), ends[:-1]))
    return (ends + m - 1) // m - 1, (ends + n - 1) // n - 1, ends - starts


def wasserstein_1d(x, y) -> torch.Tensor:
    """W1 between the samples along the last axis: [..., n] x [..., m] -> [...].

    W1 = integral over u in (0, 1) of |F_x^-1(u) - F_y^-1(u)| du, with F^-1 the empirical
    quantile functions (steps), computed exactly: for n = m it is (1/n) sum_i |x_(i) -
    y_(i)| over the sorted samples; otherwise the sum over the merged steps i/n, j/m.
    NaN in a sample gives NaN for its row.

    Args:
        x, y: tensors or numpy arrays of real numbers, the same leading shape [...], last
            axes of n >= 1 and m >= 1 samples. Computed in x's dtype (integers: float64),
            on x's device.

    Returns:
        W1 [...].

    Raises:
        ValueError: a non-numeric input, leading shapes that differ, or an empty sample.

    Example:
        >>> import torch, fastvp
        >>> x, y = torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.5, 1.0])
        >>> round(fastvp.wasserstein_1d(x, y).item(), 6)  # 1/6: |0 - 0.5| on (1/3, 2/3)
        0.166667
    """
    x, y = _as_tensor("x", x), _as_tensor("y", y)
    if x.dim() == 0 or y.dim() == 0 or x.shape[:-1] != y.shape[:-1]:
        raise ValueError(f"x and y must have the same shape but for the last axis, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    n, m = x.shape[-1], y.shape[-1]
    if n == 0 or m == 0:
        raise ValueError(f"x and y need a non-empty last axis, got shapes {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    xs = torch.sort(x, dim=-1).values
    ys = torch.sort(y.to(device=x.device, dtype=x.dtype), dim=-1).values
    if n == m:
        return (xs - ys).abs().mean(dim=-1)
    i, j, width = _merged_quantiles(n, m, x.device)
    gap = (xs.index_select(-1, i) - ys.index_select(-1, j)).abs()
    return (gap * width.to(x.dtype)).sum(dim=-1) / (n * m)
