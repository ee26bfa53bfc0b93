"""Print SymPy expressions as Numba-friendly Python.

Differences from SymPy's ``PythonCodePrinter``: field accesses print as array
indexing chosen by the kernel being generated; ``Heaviside`` and ``sign`` print as
calls to small inlined helpers of the generated module (their argument is evaluated
once); ``Min``/``Max`` use the builtins, which Numba compiles for floats.

Examples
--------
>>> import sympy as sp
>>> from dpgen.symbolic import Field
>>> d = Field("d")
>>> printer = NumbaPrinter(lambda a: f"d[i0 + {1 + a.offset[0]}]")
>>> printer.doprint(sp.Max(d[1], 0) * sp.Heaviside(d[-1], sp.Rational(1, 2)))
'heaviside(d[i0 + 0])*max(0, d[i0 + 2])'
"""

from __future__ import annotations

from typing import Callable

import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ..symbolic import Access


class NumbaPrinter(PythonCodePrinter):
    """``PythonCodePrinter`` with field accesses mapped by ``index_access``."""

    def __init__(self, index_access: Callable[[Access], str]):
        super().__init__({"standard": "python3", "fully_qualified_modules": True})
        self._index_access = index_access

    def _print_Access(self, expr: Access) -> str:
        return self._index_access(expr)

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        # Derivatives always carry H(0) = 1/2 (see dpgen.adjoint.lower_nonsmooth); a
        # user-written Heaviside may choose another value at 0.
        arg = self._print(expr.args[0])
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.Rational(1, 2)
        if at_zero == sp.Rational(1, 2):
            return f"heaviside({arg})"
        return f"(1.0 if ({arg}) > 0 else (0.0 if ({arg}) < 0 else {self._print(sp.Float(at_zero))}))"

    def _print_sign(self, expr: sp.sign) -> str:
        return f"sign({self._print(expr.args[0])})"

    def _print_Rational(self, expr: sp.Rational) -> str:
        # Print as a float literal so integer division never happens and types stay float.
        return repr(float(expr.p) / float(expr.q)) if expr.q != 1 else str(expr.p)

    def _print_Half(self, expr: sp.Rational) -> str:
        return "0.5"
