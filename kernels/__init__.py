"""Triton kernels of fastvp (packaged as ``fastvp.kernels``).

Kernels take plain tensors and sizes and make no physics decisions; each file holds one
kernel family with its launchers:

    cic               CIC deposit and gather, and the simulator's fused drift-deposit and
                      kick-gather (twin: ``fastvp.pic.deposit``)
    deepset_leapfrog  the fused sampler: K leapfrog steps on the Deep Set gradient
                      (twin: ``fastvp.surrogate.flow`` with ``fastvp.surrogate.potential``)
    deepset_train     the training gradient: dV/dq and its hand-derived backward
                      (twin: ``fastvp.surrogate.potential.closed_form_grad``)
    fourier_leapfrog  the fused sampler of the periodic potential: K leapfrog steps on the
                      Fourier-feature gradient, positions wrapped into [0, L) (twin:
                      ``fastvp.surrogate.flow.leapfrog`` with ``periodic_grad_nograd``)

``deepset_common`` holds the Deep Set helpers the two Deep Set families share (the
per-example softplus and sigma passes, tile sizes, argument checks); it has no kernel.
``aot_report`` compiles every kernel for sm_80 / sm_90 without a GPU (``fastvp.kernels.aot``;
each family declares its kernels in ``aot_specs``, see ``aot_spec``).
"""


def aot_report(archs=("sm_80", "sm_90"), **kwargs) -> list[dict]:
    """``fastvp.kernels.aot.aot_report``: every kernel compiled for `archs`, its resources."""
    from .aot import aot_report as report

    return report(archs=archs, **kwargs)
