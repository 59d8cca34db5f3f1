"""The standard problems by name, with their parameter tables, and ``build``: a problem
from a command line's values, with per-example ranges (``x_range``)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

from ..arguments import integer
from .base import Problem
from .bump_on_tail import PARAMETERS as BUMP_ON_TAIL
from .bump_on_tail import bump_on_tail
from .jeans import PARAMETERS as JEANS
from .jeans import jeans
from .landau import PARAMETERS as LANDAU
from .landau import landau
from .paper import PARAMETERS as PAPER
from .paper import paper
from .plasma_oscillation import PARAMETERS as PLASMA_OSCILLATION
from .plasma_oscillation import plasma_oscillation
from .two_stream import PARAMETERS as TWO_STREAM
from .two_stream import two_stream

#: name -> the function building that problem
PROBLEMS = {
    "landau": landau,
    "two_stream": two_stream,
    "bump_on_tail": bump_on_tail,
    "plasma_oscillation": plasma_oscillation,
    "jeans": jeans,
    "paper": paper,
}

#: name -> its parameters (name, default, help, per_example, kind, bounds) for the CLI's flags
PARAMETERS = {
    "landau": LANDAU,
    "two_stream": TWO_STREAM,
    "bump_on_tail": BUMP_ON_TAIL,
    "plasma_oscillation": PLASMA_OSCILLATION,
    "jeans": JEANS,
    "paper": PAPER,
}


#: Entropy words that set the streams of per-example parameter ranges apart from the
#: examples' own streams (seed, i).
RANGE_STREAM = zlib.crc32(b"fastvp.problems.range")


def draw_range(name: str, low: float, high: float, examples: int, seed: int) -> np.ndarray:
    """Per-example values of parameter `name` drawn uniformly from [low, high]:

        x_i = low + (high - low) u_i,  u_i ~ U[0, 1) from the stream (seed, name),

    so example i gets the same value whatever the number of examples beyond it: [examples].
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, RANGE_STREAM, zlib.crc32(name.encode())]))
    return low + (high - low) * rng.random(examples)


def build(name: str, values: Mapping | None = None, examples: int | None = None,
          seed: int = 0) -> Problem:
    """The problem `name` from a command line's values, per-example ranges drawn.

    Args:
        name: a key of ``PROBLEMS``.
        values: {parameter: value, parameter_range: (low, high)}: a value as the problem's
            function takes it (a number; for a per-example parameter also a sequence, one
            value per example); ``x_range`` of a per-example parameter x: each example draws
            its own x uniformly from [low, high] (``draw_range``; low == high: that value),
            as the command line's --x-range. Parameters not given keep their defaults.
        examples: the number of examples (needed for a range).
        seed: the seed of the ranges' draws.

    Returns:
        ``PROBLEMS[name](**values)`` with the ranges drawn.

    Raises:
        ValueError: naming the problem or the parameter, for an unknown problem, a parameter
            the problem does not take, a range of a shared parameter, or a bad value.

    Example:
        >>> prob = build("landau", {"alpha_range": (0.01, 0.02), "particles": 64}, examples=3)
        >>> prob.examples, bool(((prob.params["alpha"] >= 0.01) & (prob.params["alpha"] <= 0.02)).all())
        (3, True)
    """
    if name not in PROBLEMS:
        raise ValueError(f"problem must be one of {sorted(PROBLEMS)}, got {name!r}")
    table = {p.name: p for p in PARAMETERS[name]}
    seed = integer("seed", seed, low=0)
    out = {}
    for key, value in (values or {}).items():
        base = key.removesuffix("_range")
        if key not in table and base not in table:
            raise ValueError(f"{key} is not a parameter of problem {name!r} (its parameters: "
                             f"{', '.join(table)}, and x_range of a per-example x)")
        if key not in table:
            if not table[base].per_example:
                raise ValueError(f"{key}: {base} takes one value (it is shared by the examples "
                                 f"of a {name} batch), not a range")
            if base in (values or {}):
                raise ValueError(f"{base} and {key} exclude each other")
            out[base] = _draw(table[base], key, value, examples, seed)
        else:
            out[key] = value
    return PROBLEMS[name](**out)


def _draw(param, key: str, value, examples, seed: int) -> np.ndarray:
    """Per-example values of `param` from its range `value` = (low, high), checked."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{key} must be a range (low, high), got {value!r}")
    low, high = (param.check(v) for v in value)
    if high < low:
        raise ValueError(f"{key} must be a range (low, high) with low <= high, got {list(value)!r}")
    n = integer("examples", examples, low=1)
    return draw_range(param.name, low, high, n, seed)
