"""What ``fastvp.kernels.aot`` compiles: one AotSpec per kernel, declared by each kernel family.

Kept apart from ``aot`` so that the kernel modules can declare their specs without
importing the compiler driver (and without an import circle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DTYPES = ("float32", "float64")


@dataclass
class AotSpec:
    """One kernel to compile: its JIT function, signature types, constexprs and launch options.

    signature maps every argument name to a Triton type ("*fp32", "i32", "constexpr", ...);
    ints maps int arguments to the value the launcher passes (16-divisible ones get the
    same ``tt.divisibility`` hint the JIT gives them); trips names the runtime trip counts
    of the kernel's innermost loops in address order, for cost models (optional).
    """

    name: str
    fn: object
    signature: dict
    constexprs: dict
    num_warps: int
    ints: dict = field(default_factory=dict)
    trips: tuple = ()


def pointer(dtype: str) -> str:
    """Triton's signature type of a pointer to `dtype` ("float32" -> "*fp32")."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return "*fp32" if dtype == "float32" else "*fp64"


def signature_of(fn, dtype: str, constexprs: dict, ints: dict) -> dict:
    """Signature of a kernel whose arguments are pointers (``*_ptr``), ints and constexprs."""
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in ints:
            sig[name] = "i32"
        elif name.endswith("_ptr"):
            sig[name] = pointer(dtype)
        else:
            raise ValueError(f"argument {name!r} of {fn.__name__} is neither a pointer, an int "
                             "nor a constexpr of its spec")
    return sig
