"""Triton kernels of fastvp (packaged as ``fastvp.kernels``).

Kernels take plain tensors and sizes and make no physics decisions; each file holds one
kernel family with its launchers. The plain-torch twins live in ``fastvp.pic.deposit``
and ``fastvp.surrogate.potential`` / ``fastvp.surrogate.flow``. ``aot_report`` compiles
them all for sm_80 / sm_90 without a GPU (``fastvp.kernels.aot``).
"""


def aot_report(archs=("sm_80", "sm_90"), **kwargs) -> list[dict]:
    """``fastvp.kernels.aot.aot_report``: every kernel compiled for `archs`, its resources."""
    from .aot import aot_report as report

    return report(archs=archs, **kwargs)
