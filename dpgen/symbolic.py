"""Symbolic stencils: fields, accesses at relative offsets, and stencil definitions.

A :class:`Field` is symbolic; ``d[0]``, ``d[1]``, ``d[-1]`` (``p[1, 0]`` in 2-D) are
:class:`Access` atoms — ordinary SymPy symbols that carry their field and offset as
data, so ``diff``, ``subs``, ``cse`` and printing work unchanged. A :class:`Stencil`
maps output fields (written at offset 0 only) to expressions over accesses and scalar
parameters (plain SymPy symbols such as ``dt`` or ``dx``).

Examples
--------
>>> import sympy as sp
>>> d, u = fields("d u", ndim=1, bc="periodic")
>>> dt, dx = sp.symbols("dt dx", positive=True)
>>> s = Stencil("shift", {d: d[0] - dt / dx * u[0] * (d[0] - d[-1])})
>>> [f.name for f in s.inputs], [str(p) for p in s.params]
(['d', 'u'], ['dt', 'dx'])
>>> s.offsets(d), s.halo
(((-1,), (0,)), ((1, 0),))
"""

from __future__ import annotations

import keyword
import numbers
from typing import Iterable, Mapping, Sequence

import sympy as sp
from sympy.core.function import AppliedUndef

from .boundary import normalize_bc
from .errors import (
    DuplicateOutputError,
    OffsetError,
    StencilDefinitionError,
    UnsupportedExpressionError,
)

Offset = tuple[int, ...]

#: Function classes a stencil may use. Each is printable for Numba and has a
#: derivative dpgen can lower (non-smooth ones get one documented value at the kink).
SUPPORTED_FUNCTIONS: tuple[type, ...] = (
    sp.exp, sp.log, sp.sin, sp.cos, sp.tan, sp.sinh, sp.cosh, sp.tanh,
    sp.asin, sp.acos, sp.atan, sp.Abs, sp.Min, sp.Max, sp.sign, sp.Piecewise,
    sp.Heaviside,
)  # fmt: skip
_STRUCTURAL = (
    sp.Add, sp.Mul, sp.Pow, sp.Number, sp.NumberSymbol, sp.Symbol,
    sp.logic.boolalg.BooleanAtom, sp.core.relational.Relational,
    sp.And, sp.Or, sp.Not, sp.functions.elementary.piecewise.ExprCondPair,
)  # fmt: skip
#: Names the generated code uses itself; fields and parameters may not take them.
RESERVED_NAMES = frozenset(
    # modules, metadata and helpers of the generated module, and the builtins it calls
    {"numba", "math", "SPEC", "heaviside", "sign", "min", "max", "abs", "range", "float"}
    # loop indices and extents
    | {f"{p}{k}" for p in ("i", "q", "s", "n", "N", "k") for k in range(3)}
)


def _check_identifier(name: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name in RESERVED_NAMES:
        raise StencilDefinitionError(
            f"{what} name {name!r} must be a Python identifier that is not a keyword "
            f"or one of dpgen's reserved names ({', '.join(sorted(RESERVED_NAMES))})"
        )
    if name.startswith("_") or "__" in name:
        raise StencilDefinitionError(
            f"{what} name {name!r} may not start with '_' or contain '__' "
            "(generated code uses such names)"
        )


class Field:
    """A symbolic grid field; index it with integer offsets to get an :class:`Access`.

    Parameters
    ----------
    name : str
        Python identifier; it names the keyword argument at call time.
    ndim : int
        1, 2 or 3.
    bc : str or tuple of str
        Boundary rule for all axes, or one per axis: ``"periodic"``, ``"zero"``,
        ``"edge"``, ``"symmetric"`` or ``"reflect"`` (``numpy.pad`` semantics, see
        :mod:`dpgen.boundary`).

    Examples
    --------
    >>> p = Field("p", ndim=2, bc=("periodic", "edge"))
    >>> p[1, 0], p[1, 0].offset
    (p[1, 0], (1, 0))
    """

    __slots__ = ("name", "ndim", "bc")

    def __init__(self, name: str, ndim: int = 1, bc: str | Sequence[str] = "periodic"):
        _check_identifier(name, "field")
        if not isinstance(ndim, numbers.Integral) or not 1 <= int(ndim) <= 3:
            raise StencilDefinitionError(f"field {name!r}: ndim must be 1, 2 or 3, got {ndim!r}")
        self.name = name
        self.ndim = int(ndim)
        self.bc = normalize_bc(bc, self.ndim, field=name)

    def __getitem__(self, index: object) -> Access:
        items = index if isinstance(index, tuple) else (index,)
        if len(items) != self.ndim:
            raise OffsetError(
                f"field {self.name!r} is {self.ndim}-D: an access needs {self.ndim} "
                f"offset(s), got {len(items)} in {self.name}[{', '.join(map(str, items))}]"
            )
        offset = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, (numbers.Integral, sp.Integer)):
                raise OffsetError(
                    f"field {self.name!r}: offset {item!r} ({type(item).__name__}) in "
                    f"{self.name}[{', '.join(map(str, items))}] is not an integer; "
                    "accesses are at integer offsets relative to the current cell"
                )
            offset.append(int(item))
        return Access(self, tuple(offset))

    @property
    def center(self) -> Access:
        """The access at offset 0 in every axis."""
        return Access(self, (0,) * self.ndim)

    def _key(self) -> tuple:
        return (self.name, self.ndim, self.bc)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("dpgen.Field",) + self._key())

    def __repr__(self) -> str:
        bc = self.bc[0] if len(set(self.bc)) == 1 else self.bc
        return f"Field({self.name!r}, ndim={self.ndim}, bc={bc!r})"


class Access(sp.Symbol):
    """A read of ``field`` at a relative integer ``offset``: a SymPy atom.

    Accesses are real-valued symbols, so derivatives of ``Abs`` and friends simplify.
    Two accesses are equal when field and offset are.
    """

    __slots__ = ("field", "offset")
    field: Field
    offset: Offset

    def __new__(cls, field: Field, offset: Offset) -> "Access":
        name = f"{field.name}[{', '.join(map(str, offset))}]"
        obj = sp.Symbol.__xnew__(cls, name, real=True)
        obj.field = field
        obj.offset = tuple(offset)
        return obj

    def __getnewargs_ex__(self):
        return ((self.field, self.offset), {})

    def _hashable_content(self):
        return super()._hashable_content() + (self.field, self.offset)

    def shifted(self, by: Offset) -> "Access":
        """The same field read at ``offset + by``."""
        return Access(self.field, tuple(o + b for o, b in zip(self.offset, by)))

    def _latex(self, printer) -> str:
        names = "ijk"
        parts = []
        for axis, o in enumerate(self.offset):
            parts.append(names[axis] + (f"{o:+d}" if o else ""))
        name = self.field.name
        if name.endswith("_bar"):  # cotangent fields of the adjoint print as \bar{y}
            name = rf"\bar{{{name[:-4]}}}"
        return f"{name}_{{{','.join(parts)}}}"


def fields(names: str | Iterable[str], ndim: int = 1, bc: str | Sequence[str] = "periodic"):
    """Create several fields with the same ``ndim`` and ``bc``.

    Examples
    --------
    >>> d, u = fields("d u", ndim=1)
    >>> d, u
    (Field('d', ndim=1, bc='periodic'), Field('u', ndim=1, bc='periodic'))
    """
    name_list = names.replace(",", " ").split() if isinstance(names, str) else list(names)
    made = tuple(Field(n, ndim=ndim, bc=bc) for n in name_list)
    return made[0] if len(made) == 1 else made


def accesses(expr: sp.Basic) -> set[Access]:
    """All field accesses in ``expr``."""
    return {s for s in expr.free_symbols if isinstance(s, Access)}


def shift(expr: sp.Expr, by: Offset) -> sp.Expr:
    """Shift every access in ``expr`` by ``by``: the expression evaluated at cell ``i + by``.

    Examples
    --------
    >>> d = Field("d")
    >>> shift(d[1] * d[0], (-1,))
    d[-1]*d[0]
    """
    if not any(by):
        return expr
    return expr.xreplace({a: a.shifted(by) for a in accesses(expr)})


def _validate_expression(expr: sp.Basic, output: str) -> None:
    for node in sp.preorder_traversal(expr):
        if isinstance(node, AppliedUndef):
            raise UnsupportedExpressionError(
                f"output {output!r}: unknown function {node.func}() in {node}; dpgen needs "
                "functions it can differentiate and print "
                f"({', '.join(f.__name__ for f in SUPPORTED_FUNCTIONS)})"
            )
        if isinstance(node, sp.Piecewise) and node.args[-1].cond != sp.true:
            raise UnsupportedExpressionError(
                f"output {output!r}: {node} has no default branch; end it with (expr, True) "
                "so every cell gets a value"
            )
        if isinstance(node, SUPPORTED_FUNCTIONS) or isinstance(node, _STRUCTURAL):
            if isinstance(node, sp.Number) and not node.is_finite:
                raise UnsupportedExpressionError(f"output {output!r}: non-finite number {node}")
            if isinstance(node, sp.Number) and not node.is_real:
                raise UnsupportedExpressionError(f"output {output!r}: complex number {node}")
            continue
        construct = type(node).__name__
        raise UnsupportedExpressionError(
            f"output {output!r}: unsupported SymPy construct {construct} in {node}; "
            "dpgen supports arithmetic, powers and "
            f"{', '.join(f.__name__ for f in SUPPORTED_FUNCTIONS)}"
        )


def _as_output_field(key: object) -> Field:
    if isinstance(key, Field):
        return key
    if isinstance(key, Access):
        if any(key.offset):
            raise OffsetError(
                f"output {key} is written at offset {key.offset}; outputs are written only "
                f"at offset 0 (use {key.field.name} or {key.field.name}[{', '.join('0' * key.field.ndim)}])"
            )
        return key.field
    raise StencilDefinitionError(
        f"stencil outputs must be dpgen Fields, got {key!r} ({type(key).__name__})"
    )


class Stencil:
    """A discretized operator: output fields defined by expressions over accesses.

    Parameters
    ----------
    name : str
        Python identifier; names the generated module.
    equations : mapping or sequence of pairs
        ``{output_field: expression}``. Each output is written at offset 0 into a new
        array; inputs are the fields the expressions read; parameters are the other
        free symbols, passed by name at call time.

    Raises
    ------
    StencilDefinitionError
        For an output defined twice, fields of different ``ndim``, two fields with one
        name, a parameter named like a field, or a stencil that reads no field.
    UnsupportedExpressionError
        For a function dpgen cannot differentiate or print (named in the message).
    """

    def __init__(
        self,
        name: str,
        equations: Mapping[object, object] | Sequence[tuple[object, object]],
    ):
        _check_identifier(name, "stencil")
        self.name = name
        pairs = list(equations.items()) if isinstance(equations, Mapping) else list(equations)
        if not pairs:
            raise StencilDefinitionError(f"stencil {name!r} defines no output")

        outputs: dict[Field, sp.Expr] = {}
        for key, value in pairs:
            out = _as_output_field(key)
            if out in outputs or any(o.name == out.name for o in outputs):
                raise DuplicateOutputError(
                    f"stencil {name!r}: output field {out.name!r} is defined twice"
                )
            try:
                expr = sp.sympify(value, strict=True)
            except (sp.SympifyError, TypeError) as exc:
                raise UnsupportedExpressionError(
                    f"stencil {name!r}, output {out.name!r}: {value!r} is not a SymPy expression"
                ) from exc
            if not isinstance(expr, sp.Expr):
                raise UnsupportedExpressionError(
                    f"stencil {name!r}, output {out.name!r}: expected a scalar SymPy expression, "
                    f"got {type(expr).__name__}"
                )
            _validate_expression(expr, out.name)
            outputs[out] = expr

        all_fields: dict[str, Field] = {}
        for f in list(outputs) + [a.field for e in outputs.values() for a in accesses(e)]:
            seen = all_fields.setdefault(f.name, f)
            if seen != f:
                raise StencilDefinitionError(
                    f"stencil {name!r}: two different fields are named {f.name!r}: {seen!r} and {f!r}"
                )
        ndims = {f.ndim for f in all_fields.values()}
        if len(ndims) > 1:
            detail = ", ".join(f"{f.name}: {f.ndim}-D" for f in all_fields.values())
            raise StencilDefinitionError(
                f"stencil {name!r} mixes fields of different dimension ({detail}); "
                "all fields of one stencil live on one grid"
            )
        self.ndim: int = ndims.pop()

        # Parameters become real symbols so derivatives of Abs/sign stay real-valued.
        param_syms: dict[str, sp.Symbol] = {}
        for expr in outputs.values():
            for s in expr.free_symbols:
                if isinstance(s, Access):
                    continue
                seen = param_syms.setdefault(s.name, s)
                if seen != s:
                    raise StencilDefinitionError(
                        f"stencil {name!r}: two different SymPy symbols are named {s.name!r} "
                        f"({sp.srepr(seen)} and {sp.srepr(s)}); a parameter must be one symbol"
                    )
        real_params = {}
        for pname, sym in param_syms.items():
            _check_identifier(pname, "parameter")
            if pname in all_fields:
                raise StencilDefinitionError(
                    f"stencil {name!r}: parameter {pname!r} has the same name as a field"
                )
            real_params[sym] = sym if sym.is_real else sp.Symbol(pname, real=True, **{
                k: v for k, v in sym.assumptions0.items() if v is not None and k != "commutative"
            })
        self.outputs: dict[Field, sp.Expr] = {
            f: e.xreplace({s: r for s, r in real_params.items() if s is not r})
            for f, e in outputs.items()
        }
        for f in all_fields.values():
            if f.name.endswith("_bar") and f.name[:-4] in {o.name for o in self.outputs}:
                raise StencilDefinitionError(
                    f"stencil {name!r}: field name {f.name!r} is taken by the cotangent of output "
                    f"{f.name[:-4]!r}; rename the field"
                )
        read = {a.field for e in self.outputs.values() for a in accesses(e)}
        if not read:
            raise StencilDefinitionError(f"stencil {name!r} reads no field")
        self.inputs: tuple[Field, ...] = tuple(sorted(read, key=lambda f: f.name))
        self.params: tuple[sp.Symbol, ...] = tuple(
            sorted(set(real_params.values()), key=lambda s: s.name)
        )

    # --- structure -------------------------------------------------------------------

    def field(self, name: str) -> Field:
        """The input or output field called ``name``."""
        for f in list(self.inputs) + list(self.outputs):
            if f.name == name:
                return f
        raise KeyError(name)

    def offsets(self, field: Field | str) -> tuple[Offset, ...]:
        """Sorted offsets at which ``field`` is read (over all outputs)."""
        name = field if isinstance(field, str) else field.name
        found = {a.offset for e in self.outputs.values() for a in accesses(e) if a.field.name == name}
        return tuple(sorted(found))

    @property
    def halo(self) -> tuple[tuple[int, int], ...]:
        """Ghost cells ``(lo, hi)`` per axis: as wide as the largest offset read."""
        result = []
        for axis in range(self.ndim):
            offs = [o[axis] for f in self.inputs for o in self.offsets(f)]
            result.append((max(0, -min(offs)), max(0, max(offs))))
        return tuple(result)

    # --- symbolic queries (delegated to the adjoint layer) ------------------------------

    def adjoint(self, wrt: str | Iterable[str] | None = None):
        """The derived gather-form adjoint (transposed-Jacobian stencil) for ``wrt``."""
        from .adjoint import derive_adjoint  # the adjoint layer builds on this one

        return derive_adjoint(self, wrt)

    def is_linear(self, field: Field | str) -> bool:
        """Whether every output is linear (affine) in ``field``: second derivatives vanish."""
        from .adjoint import is_linear

        return is_linear(self, field)

    def is_self_adjoint(self, field: Field | str | None = None) -> bool:
        """Whether the linear map ``field -> output`` equals its transpose with its boundary rule."""
        from .adjoint import is_self_adjoint

        return is_self_adjoint(self, field)

    def needs(self, wrt: str | Iterable[str] | None = None) -> tuple[str, ...]:
        """Names of the input fields whose forward values the adjoint for ``wrt`` reads."""
        return self.adjoint(wrt).needs

    def __repr__(self) -> str:
        return f"Stencil({self.name!r}, outputs={[f.name for f in self.outputs]}, inputs={[f.name for f in self.inputs]}, params={[p.name for p in self.params]})"

    def __str__(self) -> str:
        lines = [f"Stencil {self.name} ({self.ndim}-D)"]
        for f, e in self.outputs.items():
            lines.append(f"  {f.name}_new[0] = {e}")
        bcs = ", ".join(f"{f.name}: {'/'.join(f.bc)}" for f in self.inputs)
        lines.append(f"  boundary rules: {bcs}; halo {self.halo}")
        return "\n".join(lines)
