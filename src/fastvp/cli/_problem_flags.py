"""The flags of the plasma problems' parameters (``fastvp.problems.PARAMETERS``), shared by
``simulate --problem`` and ``check-physics``: a parameter x is the flag --x everywhere."""

from __future__ import annotations

from ..problems import PARAMETERS


def option(name: str) -> str:
    """The flag of parameter `name`: --name-with-dashes."""
    return "--" + name.replace("_", "-")


def parameters(problems=None) -> dict[str, list]:
    """Every parameter of `problems` (default: all): {name: [(problem, Parameter), ...]},
    in table order."""
    out: dict[str, list] = {}
    for problem, table in PARAMETERS.items():
        if problems is None or problem in problems:
            for p in table:
                out.setdefault(p.name, []).append((problem, p))
    return out
