"""Device, dtype and kernel selection.

Triton kernels run on CUDA tensors; on CPU the same kernels run only under the Triton
interpreter (``TRITON_INTERPRET=1``, used by the tests on small sizes); production CPU runs
use the plain-torch path. ``FASTVP_KERNELS`` ("auto", "torch", "triton") overrides the
choice, and so does the ``kernels=`` argument of the functions that take one.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

KERNEL_CHOICES = ("auto", "torch", "triton")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device) -> torch.device:
    """A torch.device from None (CUDA if present, else CPU), a string or a device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for, but CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


def resolve_dtype(dtype) -> torch.dtype:
    """torch.float32 or torch.float64, from a dtype or its name."""
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        return DTYPES[dtype]
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def triton_interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # an optional dependency: pip install 'fastvp[cuda]'
        return False
    return True


def use_triton(tensor: torch.Tensor, kernels: str | None = None) -> bool:
    """Whether the Triton path should run for data living where `tensor` lives."""
    choice = kernels or os.environ.get("FASTVP_KERNELS", "auto")
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got {choice!r}")
    if choice == "torch":
        return False
    runnable = triton_available() and (tensor.is_cuda or triton_interpreted())
    if choice == "triton":
        if not triton_available():
            raise ValueError("kernels='triton' needs the triton package, not installed here "
                             "(pip install 'fastvp[cuda]'; CUDA builds of torch bring it)")
        if not runnable:
            raise ValueError(
                "kernels='triton' needs a CUDA tensor, or TRITON_INTERPRET=1 set before "
                f"importing fastvp (tensor on {tensor.device})"
            )
        return True
    return triton_available() and tensor.is_cuda


@functools.lru_cache(maxsize=1)
def cupy_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def default_threads() -> int:
    """CPU threads for long work: the cores left idle by the other processes, at least 1.

    torch's intra-op threads wait for each other at the end of every op; when another
    process holds a core, a thread that loses its core stalls them all (a training step
    at 2 threads went from 2 s to 25-114 s beside a second job, and held 1.6-1.9 s at 1
    thread; ``benchmarks/test_threads.py``). So the default counts the cores minus the
    other processes' demand: the larger of the 1-minute load average and the processes
    runnable right now besides this one (``/proc/loadavg``; the average lags a job that
    just started by a minute), rounded.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        load = 0.0
    return max(1, min(cores, round(cores - max(load, _runnable_others()))))


def _runnable_others() -> int:
    """Threads runnable now on the machine, less the one reading (Linux; 0 elsewhere)."""
    try:
        with open("/proc/loadavg") as fh:
            running = int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


@contextlib.contextmanager
def threads_context(threads: int | None):
    """Run the block with `threads` intra-op CPU threads (None: ``default_threads()``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads or default_threads())
    try:
        yield
    finally:
        torch.set_num_threads(before)
