"""Triton kernels of fastvp (packaged as ``fastvp.kernels``).

Kernels take plain tensors and sizes and make no physics decisions; each file holds one
kernel family with its launchers. The plain-torch twins live in ``fastvp.pic.deposit``
and ``fastvp.surrogate.potential`` / ``fastvp.surrogate.flow``.
"""
