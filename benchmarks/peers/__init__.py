"""The peers dpgen is compared with, one module per library, one class per problem.

``numpy_peer`` and ``scipy_peer`` (hand-written adjoints), ``numba_peer`` (hand-written
forward and adjoint kernels, upwind only), ``jax_peer`` (``jit`` of ``value_and_grad``)
and ``torch_peer`` (eager autograd). ``jax`` and ``torch`` are optional: their modules
fail to import without them, and the rows say "not installed".
"""
