"""torch.distributed in a few plain functions, for sharded generation and DDP training.

Launch with torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; then::

    from fastvp import distributed as dist

    dist.init()                       # process group from the environment (no-op alone)
    device = dist.device()            # cuda:LOCAL_RANK, or cpu
    if dist.is_main():
        print("rank 0 of", dist.world_size())
    dist.barrier()
    dist.shutdown()

Every function works in a single process too: rank() is 0, world_size() is 1, barrier()
and the collectives return at once. Collectives use CUDA tensors under NCCL and CPU tensors
otherwise (gloo), so the same code runs on GPUs and in CPU tests.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable
from typing import Any

import torch

from . import arguments
from .backend import resolve_device

ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
BACKENDS = ("gloo", "nccl")


def _dist():
    return torch.distributed if torch.distributed.is_available() else None


def launched() -> bool:
    """Whether this process was started by torchrun (or alike) with WORLD_SIZE > 1."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def is_initialized() -> bool:
    """Whether a default process group exists."""
    d = _dist()
    return d is not None and d.is_initialized()


def rank() -> int:
    """This process's global rank (0 without a process group)."""
    return _dist().get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return _dist().get_world_size() if is_initialized() else 1


def local_rank() -> int:
    """Rank on this node (LOCAL_RANK set by torchrun; 0 otherwise)."""
    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ValueError(f"LOCAL_RANK must be an integer, got {os.environ['LOCAL_RANK']!r}") from exc


def is_main() -> bool:
    """True on rank 0: the process that logs, saves checkpoints and renames files."""
    return rank() == 0


def device(device=None) -> torch.device:
    """The device this rank should compute on.

    None: cuda:LOCAL_RANK when CUDA is available, else cpu. A bare "cuda" also becomes
    cuda:LOCAL_RANK (one GPU per process); an explicit index or "cpu" is kept.
    """
    if device is None and not torch.cuda.is_available():
        return torch.device("cpu")
    dev = resolve_device("cuda" if device is None else device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank() % max(1, torch.cuda.device_count()))
    return dev


def init(backend: str | None = None, timeout: float | None = None) -> bool:
    """Join the process group described by the environment (torchrun's variables).

    backend: "nccl" or "gloo"; None picks nccl when CUDA is available, else gloo.
    timeout: seconds a collective may wait (torch's default, 10-30 min, if None).
    Returns True when running distributed (a group exists after the call), False in a
    plain single process, where nothing is done. Calling it twice is harmless.
    """
    arguments.optional(arguments.choice, "backend", backend, BACKENDS)
    arguments.optional(arguments.positive, "timeout", timeout)
    if is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ:
        return False
    d = _dist()
    if d is None:  # pragma: no cover - torch built without distributed
        raise ValueError("WORLD_SIZE is set but this torch build has no torch.distributed")
    missing = [v for v in ENV_VARS if v not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE is set but {missing} are not: launch with torchrun")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(device())
    kw = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
    d.init_process_group(backend=backend, init_method="env://", **kw)
    return True


def shutdown() -> None:
    """Leave the process group (if any)."""
    if is_initialized():
        _dist().destroy_process_group()


@contextlib.contextmanager
def session(backend: str | None = None, timeout: float | None = None):
    """``with session(): ...`` joins the group from the environment and leaves it after,
    unless it existed before (then it is left as found)."""
    existed = is_initialized()
    init(backend, timeout)
    try:
        yield
    finally:
        if not existed:
            shutdown()


def check_distributed(distributed) -> None:
    """Raise ValueError unless `distributed` (a function's argument) is True, False or None."""
    if distributed is not None and not isinstance(distributed, bool):
        raise ValueError(f"distributed must be True, False or None, got {distributed!r}")


@contextlib.contextmanager
def data_parallel(distributed: bool | None, requested=None):
    """``with data_parallel(distributed, requested) as (parallel, dev):`` for a function
    that takes a `distributed` argument (training); `requested` is its device argument.

    distributed None: True when a process group exists or WORLD_SIZE > 1. When true, the
    group is joined from the environment (nccl for a CUDA device, gloo for the cpu) and
    left at the end if it was made here; dev is this rank's device (``device(requested)``).
    When false: dev is ``resolve_device(requested)``. parallel: distributed over > 1 rank.
    """
    check_distributed(distributed)
    if distributed is None:
        distributed = is_initialized() or launched()
    dev = device(requested) if distributed else resolve_device(requested)
    existed = is_initialized()
    if distributed:
        init(backend="nccl" if dev.type == "cuda" else "gloo")
    try:
        yield distributed and world_size() > 1, dev
    finally:
        if distributed and not existed:
            shutdown()


def barrier() -> None:
    """Wait for all ranks (no-op in a single process)."""
    if is_initialized():
        if _dist().get_backend() == "nccl":
            _dist().barrier(device_ids=[torch.cuda.current_device()])
        else:
            _dist().barrier()


def _collective_device() -> torch.device:
    if _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_object(obj: Any = None, src: int = 0) -> Any:
    """`obj` of rank `src`, on every rank (picklable objects)."""
    if not is_initialized():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def any_true(flag: bool) -> bool:
    """True on every rank if `flag` is true on at least one."""
    if not is_initialized():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
    _dist().all_reduce(t, op=_dist().ReduceOp.MAX)
    return bool(t.item())


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over ranks (a new tensor, detached; `tensor` itself unchanged).

    Every rank gets the same bits.
    """
    if not is_initialized():
        return tensor.detach().clone()
    t = tensor.detach().to(_collective_device(), copy=True)
    _dist().all_reduce(t, op=_dist().ReduceOp.SUM)
    return t.to(tensor.device)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over ranks (a new tensor; `tensor` itself unchanged).

    For logging a loss averaged over all ranks; DDP already averages gradients.
    """
    if not is_initialized():
        return tensor.detach().clone()
    return all_reduce_sum(tensor) / world_size()


def shard(n: int) -> slice:
    """This rank's contiguous part of n items: [r n // W, (r + 1) n // W).

    The parts of the W ranks tile range(n) in order; their sizes differ by at most one
    (a part is empty when n < W).
    """
    r, w = rank(), world_size()
    return slice(r * n // w, (r + 1) * n // w)


def wrap_ddp(module: torch.nn.Module) -> torch.nn.Module:
    """`module` in DistributedDataParallel when a group of more than one rank exists
    (itself otherwise). Its parameters must already be on this rank's device: CUDA
    modules get device_ids=[their device], CPU modules none (which needs gloo).
    """
    if world_size() <= 1:
        return module
    dev = next(module.parameters()).device
    if dev.type == "cpu" and _dist().get_backend() == "nccl":
        raise ValueError("a model on the cpu cannot train under the nccl backend: use gloo "
                         "(fastvp.distributed.init(backend='gloo')) or a CUDA device")
    ids = [dev] if dev.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)


def on_main(fn: Callable[[], Any]) -> Any:
    """Run `fn` on rank 0 only and give its result to every rank.

    If `fn` raises ValueError, FileNotFoundError or OSError on rank 0, every rank raises
    the same error type with the same message, so no rank waits forever at a later
    barrier. Other exceptions reach rank 0 and become RuntimeError elsewhere.
    """
    if not is_initialized():
        return fn()
    outcome, error = None, None
    if is_main():
        try:
            outcome = ("ok", fn())
        except (ValueError, FileNotFoundError, OSError) as exc:
            error = exc
            outcome = ("error", type(exc).__name__, str(exc))
        except BaseException as exc:
            error = exc
            outcome = ("error", "RuntimeError", f"rank 0 failed: {type(exc).__name__}: {exc}")
    outcome = broadcast_object(outcome)
    if error is not None:
        raise error
    if outcome[0] == "error":
        kinds = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError,
                 "RuntimeError": RuntimeError}
        raise kinds.get(outcome[1], OSError)(outcome[2])
    return outcome[1]
