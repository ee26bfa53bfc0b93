"""dpgen: SymPy stencils -> derived adjoint stencils -> generated Numba kernels.

>>> import sympy as sp, dpgen as dp
>>> d, u = dp.fields("d u", ndim=1, bc="periodic")
>>> dp.Stencil("adv", {d: d[0] - u[0] * (d[0] - d[-1])}).is_linear("d")
True
"""

__version__ = "0.1.0"

from . import errors
from .adjoint import AdjointStencil
from .compiler import compile, load
from .config import config
from .runtime import CompiledStencil
from .symbolic import Access, Field, Stencil, fields
from . import losses, stencils
from .rollout import Rollout, Step
from .solvers import LinearSolve
from .verify import CheckResult, check_periodic_adjoint, check_stencil, check_vjp, dot_test, random_inputs, taylor_test

__all__ = [
    "Access",
    "CheckResult",
    "check_periodic_adjoint",
    "check_stencil",
    "check_vjp",
    "dot_test",
    "random_inputs",
    "taylor_test",
    "AdjointStencil",
    "CompiledStencil",
    "Field",
    "Stencil",
    "compile",
    "config",
    "errors",
    "fields",
    "LinearSolve",
    "load",
    "losses",
    "Rollout",
    "Step",
    "stencils",
]
