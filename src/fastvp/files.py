"""Atomic file writes: a file appears complete under its name, or not at all.

``atomic_write(path, write)`` lets `write` fill a temporary file beside `path`, flushes it
to disk (fsync), gives it the permissions of a new file (0666 less the umask, 0644 as a
rule, whatever the writer chose), renames it into place and syncs the folder. Every file
fastvp writes (models, checkpoints, reports, dataset metadata) goes through it.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

PARTIAL = ".partial"


# ---------------------------------------------------------------------------- checks


def existing_ancestor(path) -> Path:
    """The nearest of `path` and its parents that exists (absolute)."""
    path = Path(path).absolute()
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def check_writable(path, name: str, kind: str = "folder") -> None:
    """Raise ValueError naming `name` and `path` unless fastvp can write there: a folder
    `path` (kind "folder") or a file `path` (kind "file") can be created, or exists as
    such and is writable. The true cause is named (a parent that is a file, a folder that
    refuses new entries, a read-only filesystem). A path to be created is probed by
    creating and removing a temporary folder in its nearest existing parent (nothing is
    left behind); an existing folder is asked (``os.access``), not probed.
    """
    path = Path(path)
    if str(path) == "":
        raise ValueError(f"{name} must be a path, got ''")
    if path.exists():
        if kind == "folder" and not path.is_dir():
            raise ValueError(f"{name} {str(path)!r} exists and is not a folder")
        if kind == "file" and path.is_dir():
            raise ValueError(f"{name} {str(path)!r} is a folder, not a file")
    if path.is_dir():  # no probe inside: other processes (ranks) may be listing it
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{name} {str(path)!r} cannot be written: the folder refuses new "
                             "entries (no write permission, or a read-only filesystem)")
        return
    where = existing_ancestor(path.parent if kind == "file" else path)
    if not where.is_dir():
        raise ValueError(f"{name} {str(path)!r} cannot be created: {str(where)!r} is a file, "
                         "not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fastvp-probe-", dir=where))
    except OSError as exc:
        raise ValueError(f"{name} {str(path)!r} cannot be created: the folder {str(where)!r} "
                         f"refuses new entries ({exc.strerror})") from None


def size_text(n_bytes: float) -> str:
    """A byte count for people: 512 B, 4.7 kB, 12.3 MB, 2.46 TB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{int(n_bytes)} B"


def check_free_space(path, need: int, name: str, what: str) -> None:
    """Raise OSError (ENOSPC) naming `name`, `path`, the bytes `what` needs and those free
    on the filesystem that would hold `path`."""
    where = existing_ancestor(path)
    free = shutil.disk_usage(where).free
    if need > free:
        raise OSError(errno.ENOSPC, f"{name} {str(path)!r}: {what} needs {size_text(need)}, "
                      f"only {size_text(free)} are free on the filesystem of {str(where)!r}")


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


def digest(obj) -> str:
    """A short stable fingerprint of a JSON-able object: 16 hex digits of the SHA-256 of
    its canonical JSON (sorted keys)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


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


def file_format(path) -> str:
    """What a model file is, from its first bytes (never its suffix): "safetensors" (an
    8-byte header length, then JSON), "torch" (``torch.save``: a zip archive, or the legacy
    pickle), or "unknown"."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head[:4] == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    return "unknown"


def read_model_meta(path) -> dict | None:
    """The fastvp metadata of a .safetensors model file (its header), without its tensors;
    None when the file is not one or holds none."""
    import json

    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if size > 100_000_000:
                return None
            header = json.loads(fh.read(size))
        return json.loads(header["__metadata__"]["fastvp"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_model_file(path) -> tuple[dict, dict | None]:
    """(tensors, meta) of a file written by ``save_model_file``; meta None if it has none.

    Raises ValueError naming the file if it is not a readable safetensors file (one that
    is no model file at all, e.g. text, is said to be neither safetensors nor torch).
    """
    import json

    from safetensors import safe_open

    path = Path(path)
    if file_format(path) == "unknown":
        raise ValueError(f"{str(path)!r} is not a fastvp model file: neither safetensors nor a "
                         "torch checkpoint")
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
