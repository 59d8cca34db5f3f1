"""Argument checks shared by the whole package: each raises ValueError naming the argument.

    integer("epochs", 0, low=1)   ->  ValueError: epochs must be an integer >= 1, got 0
    number("lr", -1.0, low=0, open_low=True) -> ValueError: lr must be a finite number > 0, got -1.0

Booleans are refused where numbers are expected (``True`` is an int in Python).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np


def _bounds(low, high, open_low: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if open_low else '>='} {low:g}" if isinstance(low, float)
                     else f"{'>' if open_low else '>='} {low}")
    if high is not None:
        parts.append(f"<= {high}")
    return " " + " and ".join(parts) if parts else ""


def integer(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int, if it is an integer (not a bool) in [low, high]."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Integral)
    if ok and ((low is not None and value < low) or (high is not None and value > high)):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be an integer{_bounds(low, high, False)}, got {value!r}")
    return int(value)


def number(name: str, value, low: float | None = None, high: float | None = None, *,
           open_low: bool = False) -> float:
    """`value` as a float, if it is a finite real number (not a bool) within the bounds.

    open_low: the lower bound is excluded (e.g. "> 0").
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    ok = math.isfinite(value)
    if ok and low is not None and (value <= low if open_low else value < low):
        ok = False
    if ok and high is not None and value > high:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite number{_bounds(low, high, open_low)}, "
                         f"got {value!r}")
    return float(value)


def positive(name: str, value) -> float:
    """A finite number > 0."""
    return number(name, value, 0, open_low=True)


def boolean(name: str, value) -> bool:
    """`value` as a bool, if it is True or False (numpy's booleans included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name: str, value, options: Iterable) -> str:
    """`value`, if it is one of `options`."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def optional(check, name: str, value, *args, **kwargs):
    """None, or `check(name, value, ...)`."""
    return None if value is None else check(name, value, *args, **kwargs)
