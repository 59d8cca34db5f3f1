"""Atomic file writes: a file appears complete under its name, or not at all.

``atomic_write(path, write)`` lets `write` fill a temporary file beside `path`, flushes it
to disk (fsync), gives it the permissions of a new file (0666 less the umask, 0644 as a
rule, whatever the writer chose), renames it into place and syncs the folder. Every file
fastvp writes (models, checkpoints, reports, dataset metadata) goes through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PARTIAL = ".partial"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the platform allows."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path, write: Callable[[Path], object], suffix: str = "") -> Path:
    """Write `path` by ``write(tmp)`` into a temporary file, then fsync and rename it.

    suffix: an ending the temporary name must keep for writers that insist on one (e.g.
    ``.npz`` for ``numpy.savez``). The temporary file is removed if `write` fails.
    Returns `path`.
    """
    path = Path(path)
    tmp = path.with_name(path.name + PARTIAL + suffix)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write `text` to `path` atomically (``atomic_write``)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


MODEL_SUFFIX = ".safetensors"


def model_path(path) -> Path:
    """`path` with the .safetensors suffix added if it lacks it."""
    path = Path(path)
    return path if path.suffix == MODEL_SUFFIX else path.with_name(path.name + MODEL_SUFFIX)


def save_model_file(path, tensors: dict, meta: dict) -> Path:
    """Write `tensors` to `path` (.safetensors added if missing) with `meta` in its header
    (key "fastvp"), and the same `meta` as JSON beside it; each file atomically.

    Returns the path of the weights.
    """
    import json

    from safetensors.torch import save_file

    path = model_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(cpu, str(tmp), metadata={"fastvp": json.dumps(meta)}))
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_model_file(path) -> tuple[dict, dict | None]:
    """(tensors, meta) of a file written by ``save_model_file``; meta None if it has none.

    Raises ValueError naming the file if it is not a readable safetensors file.
    """
    import json

    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{str(path)!r} is not a fastvp model file (.safetensors): {exc}") from exc
    if "fastvp" not in header:
        return tensors, None
    try:
        return tensors, json.loads(header["fastvp"])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} holds unreadable metadata: {exc}") from exc
