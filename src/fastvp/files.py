"""Atomic file writes: a file appears complete under its name, or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_text(path, text: str) -> None:
    """Write `text` to `path` through a temporary name, fsync, then rename into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
