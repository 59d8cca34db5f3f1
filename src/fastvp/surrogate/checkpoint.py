"""What ``train`` (PDE-NHF) and ``train_baseline`` share to be resumable and NaN-safe.

A run folder holds checkpoint.pt (everything needed to continue bit-exactly), the model
file and history.json, each written under a temporary name and renamed into place. A
checkpoint records the settings of its run; resuming with other settings is refused,
except for those the trainer names as resumable. ``NonFiniteGuard`` skips optimiser steps
whose loss or gradient is not finite and stops training after too many in a row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from .. import distributed as dist
from ..data import fingerprint_difference
from ..files import atomic_write, atomic_write_text

CHECKPOINT = "checkpoint.pt"
MODEL = "model.safetensors"
HISTORY = "history.json"


def atomic_save(obj, path: Path) -> None:
    """``torch.save(obj)`` to `path` through a temporary name (never a half-written file)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def write_history(out: Path, history: list[dict]) -> None:
    """Write `history` (one dict per epoch) to out/history.json, atomically."""
    atomic_write_text(Path(out) / HISTORY, json.dumps(history, indent=1) + "\n")


def prepare_out(out: Path, resume: bool) -> bool:
    """Check the run folder `out` and create it; True when it holds a checkpoint.

    Raises ValueError when `out` is a file, or holds a checkpoint and resume is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out {str(out)!r} exists and is not a folder")
    if not resume and (out / CHECKPOINT).exists():
        raise ValueError(f"out {str(out)!r} already holds a checkpoint: pass resume=True "
                         "(--resume) to continue it, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    return (out / CHECKPOINT).exists()


def load_checkpoint(path: Path, fmt: str, config: Mapping, resumable: Iterable[str],
                    migrate: Callable[[dict], dict | None] | None = None) -> dict:
    """The checkpoint at `path`, on the CPU (``torch.load(weights_only=True)``).

    migrate: turns a checkpoint of an older format into `fmt` (None where it cannot).
    Raises ValueError when it is unreadable, its "format" is not `fmt` (after migration),
    or its saved settings differ from `config` (a dict) in a key outside `resumable`.
    """
    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {str(path)!r} is unreadable: {exc}") from exc
    if isinstance(ck, dict) and ck.get("format") != fmt and migrate is not None:
        ck = migrate(ck) or ck
    if not isinstance(ck, dict) or ck.get("format") != fmt:
        found = ck.get("format") if isinstance(ck, dict) else None
        raise ValueError(f"{str(path)!r} is not a {fmt} checkpoint (format {found!r})")
    saved = dict(ck["config"])
    resumable = set(resumable)
    differ = {k: (saved.get(k), v) for k, v in config.items()
              if k not in resumable and saved.get(k) != v}
    if differ:
        raise ValueError(f"resume with the settings of the checkpoint {str(path)!r}: "
                         f"(saved, given) differ for {differ}")
    return ck


def check_same_data(saved: dict | None, given: dict | None, path: Path) -> None:
    """Raise ValueError when a run resumed from `path` is given other data than it was
    trained on: `saved` and `given` are ``data.dataset_fingerprint``s (the digests differ),
    named by their folders and what differs. A checkpoint of before the fingerprints
    (saved None) is not checked."""
    if saved is None or given is None or saved.get("digest") == given.get("digest"):
        return

    differ = fingerprint_difference(saved, given, ("run", "given"))
    raise ValueError(f"resume=True: the run of {str(path)!r} was trained on the dataset "
                     f"{saved.get('path')!r}, not on {given.get('path')!r}: "
                     f"{'; '.join(differ) or 'their fingerprints differ'}")


def saved_config(path: Path, config_cls, migrate: Callable[[dict], dict | None] | None = None):
    """The settings a run folder's checkpoint was made with, as a `config_cls` instance
    (for a resume that keeps them); older checkpoint formats go through `migrate`."""
    try:
        ck = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {str(path)!r} is unreadable: {exc}") from exc
    if migrate is not None:
        ck = migrate(ck) or ck
    known = set(config_cls.__dataclass_fields__)
    return config_cls(**{k: v for k, v in dict(ck.get("config", {})).items() if k in known})


def check_finite(model: torch.nn.Module, out: Path) -> None:
    """Raise FloatingPointError (before a checkpoint is written) if a parameter is not finite."""
    if not all(torch.isfinite(x).all() for x in model.parameters()):
        raise FloatingPointError("parameters became non-finite; the last checkpoint in "
                                 f"{str(out)!r} is kept")


class NonFiniteGuard:
    """Skips optimiser steps whose loss or gradient is not finite; stops after `limit` in a row.

    ``backward(loss, loss_all, params)`` back-propagates `loss` (this process's part) when
    `loss_all` (the loss of the whole batch, the same on every rank) is finite, and returns
    whether it and every gradient of `params` are finite; under DDP (parallel) the answer
    is agreed by all ranks. ``skip`` counts a step not taken (``bad`` in a row, ``total`` in
    the run) and raises FloatingPointError at `limit` in a row; ``taken`` resets ``bad``.
    """

    def __init__(self, limit: int, total: int = 0, bad: int = 0):
        self.limit, self.total, self.bad = int(limit), int(total), int(bad)

    def backward(self, loss: torch.Tensor, loss_all: torch.Tensor,
                 params: Iterable[torch.Tensor], parallel: bool = False) -> bool:

        ok = bool(torch.isfinite(loss_all))
        if ok:
            loss.backward()
            ok = all(bool(torch.isfinite(x.grad).all()) for x in params if x.grad is not None)
            if parallel:  # the all-reduced gradients agree; the flag is shared anyway
                ok = not dist.any_true(not ok)
        return ok

    def taken(self) -> None:
        self.bad = 0

    def skip(self, where: str, value: float, write: Callable[[str], None] | None = None) -> None:
        self.bad, self.total = self.bad + 1, self.total + 1
        if write is not None:
            write(f"{where}: non-finite loss or gradient ({value:g}); step skipped "
                  f"({self.bad} in a row)")
        if self.bad >= self.limit:
            raise FloatingPointError(
                f"training stopped: {self.bad} non-finite steps in a row at {where}; "
                "lower lr or use float64 (last good checkpoint kept)")
