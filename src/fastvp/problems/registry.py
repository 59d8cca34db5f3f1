"""The standard problems by name, with their parameter tables (for a command line)."""

from __future__ import annotations

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
