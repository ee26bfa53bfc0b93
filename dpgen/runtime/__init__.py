"""Runtime: load generated modules and call their kernels with validated arrays."""

from .compiled import CompiledStencil, load_module

__all__ = ["CompiledStencil", "load_module"]
