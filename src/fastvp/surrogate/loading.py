"""One reader for every model file: a PDE-NHF ``Surrogate`` or the ``Baseline``, told apart
by what the file says it is (the "format" of its header), never by its name or suffix."""

from __future__ import annotations

import os
from pathlib import Path

from ..files import file_format, model_path, read_model_meta
from .baseline import FORMAT as BASELINE_FORMAT
from .baseline import Baseline
from .model import Surrogate

#: The kinds of model a file may hold.
KINDS = ("pde-nhf", "baseline")


def _path(spec) -> Path:
    """The file of `spec` (its .safetensors name if only that exists)."""
    path = Path(spec)
    return model_path(path) if not path.exists() and model_path(path).is_file() else path


def model_kind(spec) -> str:
    """What a model is: "baseline" for a fastvp baseline file, else "pde-nhf" (a bundled
    name, a fastvp PDE-NHF file, the authors' checkpoint; ``read_model`` checks which)."""
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"model must be a model name or a path, got {spec!r}")
    path = _path(spec)
    if path.is_file() and file_format(path) == "safetensors":
        if (read_model_meta(path) or {}).get("format") == BASELINE_FORMAT:
            return "baseline"
    return "pde-nhf"


def read_model(spec) -> Surrogate | Baseline:
    """The model of a bundled name or a file, PDE-NHF or baseline by its header.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: neither a file nor a bundled name, or not a model file.
    """
    if model_kind(spec) == "baseline":
        return Baseline.load(_path(spec))
    return Surrogate.load(spec)
