"""dpgen benchmarks: ``python -m benchmarks run`` compares dpgen with NumPy, SciPy,
hand-written Numba, JAX and PyTorch (see ``benchmarks/README.md``).

Modules: ``harness`` (implementation interface, timing, checks), ``runner`` (one size
of one problem, side by side), ``probe`` (STREAM-triad bandwidth), ``memory`` (peak
memory in fresh processes), ``machine``, ``report``; ``problems/`` (one module per
problem, with its dpgen rows) and ``peers/`` (one module per peer library). The older
stand-alone scripts (``compile_time.py``, ``checkpoint_memory.py``,
``solve_tolerance.py``, ``bridge_overhead.py``) still run as ``python benchmarks/X.py``.
"""
