"""Adjoint derivation: the transposed Jacobian of a stencil is a stencil (gather form).

Forward, at every cell ``i``: ``y[i] = f(a[i + k1], a[i + k2], b[i + m], ...; params)``.
Reverse, for every input ``a`` and every offset ``k`` at which ``a`` is read::

    a_bar[j] += (df/da[k])(evaluated at forward cell i = j - k) * y_bar[j - k]

"Evaluated at ``j - k``" shifts *every* access inside the partial derivative by ``-k``,
not only the cotangent access. Each ``a_bar[j]`` is written once (no scatter, no race).
Parameter gradients are reductions ``p_bar = sum_i sum_out y_bar[i] * df/dp (at i)``.

Non-smooth functions are differentiated by SymPy and then *lowered*: ``Heaviside``
takes the value 1/2 at 0 and ``DiracDelta`` is dropped (it is zero almost everywhere).
1/2 is the mean of the one-sided derivatives, so at a kink the adjoint agrees with a
central finite difference, and ``d|x|/dx = sign(x)`` is 0 at ``x = 0``, the same
convention as ``Abs = Max(x, -x)``.

Examples
--------
>>> import sympy as sp
>>> from dpgen.symbolic import fields, Stencil
>>> d, u = fields("d u")
>>> dt = sp.Symbol("dt", positive=True)
>>> s = Stencil("adv", {d: d[0] - dt * u[0] * (d[0] - d[-1])})
>>> adj = s.adjoint(wrt="d")
>>> adj.needs
('u',)
>>> print(adj.expression("d"))
d_bar[0]*(-u[0]*dt + 1) + d_bar[1]*u[1]*dt
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Iterable

import numpy as np
import sympy as sp

from .boundary import source_index
from .errors import NotLinearError, UnsupportedExpressionError, WrtError
from .symbolic import Field, Offset, Stencil, accesses, shift


@dataclasses.dataclass(frozen=True)
class AdjointTerm:
    """One gather term of an adjoint: ``coefficient * cotangent[-shift]``.

    ``shift`` is the offset ``k`` at which the forward stencil read the input, so the
    term belongs to forward cell ``i = j - shift``. ``coefficient`` is ``df/da[k]``
    already shifted by ``-shift`` (its accesses are relative to the adjoint cell ``j``).
    """

    output: str
    shift: Offset
    coefficient: sp.Expr


@dataclasses.dataclass(frozen=True)
class ParamTerm:
    """``df_output/dparam`` at cell ``i``; the gradient sums it times ``y_bar[i]`` over cells."""

    output: str
    derivative: sp.Expr


@dataclasses.dataclass(frozen=True)
class AdjointStencil:
    """The derived vector-Jacobian product of a :class:`~dpgen.symbolic.Stencil`.

    Attributes
    ----------
    stencil : Stencil
        The forward stencil.
    field_terms : dict
        ``{input name: (AdjointTerm, ...)}`` for every requested input field.
    param_terms : dict
        ``{parameter name: (ParamTerm, ...)}`` for every requested parameter.
    """

    stencil: Stencil
    field_terms: dict[str, tuple[AdjointTerm, ...]]
    param_terms: dict[str, tuple[ParamTerm, ...]]

    @property
    def wrt(self) -> tuple[str, ...]:
        return tuple(self.field_terms) + tuple(self.param_terms)

    @property
    def needs(self) -> tuple[str, ...]:
        """Input fields whose forward values the adjoint reads (sorted names)."""
        exprs = [t.coefficient for ts in self.field_terms.values() for t in ts]
        exprs += [t.derivative for ts in self.param_terms.values() for t in ts]
        return tuple(sorted({a.field.name for e in exprs for a in accesses(e)}))

    @property
    def cotangents(self) -> tuple[str, ...]:
        """Outputs whose cotangents the adjoint reads."""
        outs = {t.output for ts in self.field_terms.values() for t in ts}
        outs |= {t.output for ts in self.param_terms.values() for t in ts}
        return tuple(f.name for f in self.stencil.outputs if f.name in outs)

    def cotangent_field(self, output: str) -> Field:
        """The symbolic cotangent ``y_bar`` of an output; zero outside the grid."""
        return Field(f"{output}_bar", ndim=self.stencil.ndim, bc="zero")

    def contribution(self, term: AdjointTerm) -> sp.Expr:
        """``term``'s part of ``a_bar[0]``: its coefficient times ``y_bar[-shift]`` (forward cell ``j - shift``)."""
        return term.coefficient * self.cotangent_field(term.output)[tuple(-k for k in term.shift)]

    @functools.cached_property
    def gather_groups(self) -> dict[Offset, dict[str, sp.Expr]]:
        """The gather form grouped by forward-cell shift ``k``: ``{k: {a: what cell j - k adds to a_bar[j]}}``.

        Every access is relative to ``j``. Code generation plans its loops per group (a
        group is valid where the forward cell ``j - k`` is on the grid).
        """
        groups: dict[Offset, dict[str, sp.Expr]] = {}
        for name, terms in self.field_terms.items():
            for t in terms:
                per_field = groups.setdefault(t.shift, {})
                per_field[name] = per_field.get(name, sp.Integer(0)) + self.contribution(t)
        return groups

    def expression(self, wrt: str) -> sp.Expr:
        """``a_bar[0]`` (or ``p_bar``) as one SymPy expression over shifted accesses."""
        if wrt in self.field_terms:
            return sp.Add(*[self.contribution(t) for t in self.field_terms[wrt]])
        if wrt in self.param_terms:
            return sp.Add(
                *[t.derivative * self.cotangent_field(t.output).center for t in self.param_terms[wrt]]
            )
        raise KeyError(wrt)

    def latex(self) -> str:
        """LaTeX of every adjoint (``\\bar{a}_{i} = ...``), one line each."""
        lines = []
        for name in self.field_terms:
            idx = ",".join("ijk"[: self.stencil.ndim])
            lines.append(rf"\bar{{{name}}}_{{{idx}}} = {sp.latex(self.expression(name))}")
        for name in self.param_terms:
            lines.append(rf"\bar{{{name}}} = \sum_{{i}} {sp.latex(self.expression(name))}")
        return " \\\\\n".join(lines)

    def __str__(self) -> str:
        s = self.stencil
        lines = [f"Adjoint of stencil {s.name} (gather form; y_bar is zero outside the grid)"]
        for name, terms in self.field_terms.items():
            lines.append(f"  {name}_bar[0] =")
            for t in terms:
                neg = tuple(-k for k in t.shift)
                cot = self.cotangent_field(t.output)[neg]
                lines.append(f"      + ({t.coefficient}) * {cot}    # forward cell i = {_cell_text(t.shift)}")
        for name, terms in self.param_terms.items():
            lines.append(f"  {name}_bar = sum over cells of")
            for t in terms:
                lines.append(f"      + ({t.derivative}) * {t.output}_bar[0]")
        lines.append(f"  reads forward values of: {', '.join(self.needs) or 'nothing (linear)'}")
        return "\n".join(lines)


def _cell_text(shift_: Offset) -> str:
    """``j - k`` written out per axis, e.g. ``j+1`` or ``(j0-1, j1)``."""
    parts = [f"j{axis if len(shift_) > 1 else ''}" + (f"{-k:+d}" if k else "") for axis, k in enumerate(shift_)]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


# --- lowering of non-smooth derivatives ------------------------------------------------


def lower_nonsmooth(expr: sp.Expr) -> sp.Expr:
    """Replace distributions by printable values: ``Heaviside(0) = 1/2``, ``DiracDelta = 0``.

    Examples
    --------
    >>> x = sp.Symbol("x", real=True)
    >>> h = lower_nonsmooth(sp.Max(x, 0).diff(x) + sp.sign(x).diff(x))
    >>> h, h.subs(x, 0)
    (Heaviside(x), 1/2)
    """
    expr = expr.replace(
        lambda e: isinstance(e, sp.DiracDelta), lambda *args: sp.Integer(0)
    )
    # Only Heavisides without a value at 0 are given 1/2 (SymPy's own default since
    # 1.9); one the user wrote with an explicit H(0) keeps it.
    expr = expr.replace(
        lambda e: isinstance(e, sp.Heaviside) and (len(e.args) < 2 or e.args[1] is sp.nan),
        lambda e: sp.Heaviside(e.args[0], sp.Rational(1, 2)),
    )
    if expr.has(sp.Derivative, sp.Subs):
        bad = next(iter(expr.atoms(sp.Derivative, sp.Subs)))
        raise UnsupportedExpressionError(
            f"SymPy could not differentiate {bad}; rewrite the stencil with supported functions"
        )
    return expr


def _derivative(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    return lower_nonsmooth(sp.diff(expr, var))


# --- derivation --------------------------------------------------------------------------


def resolve_wrt(stencil: Stencil, wrt: str | Iterable[str] | None) -> tuple[list[str], list[str]]:
    """Split ``wrt`` into (input field names, parameter names); ``None`` means all inputs."""
    if wrt is None:
        return [f.name for f in stencil.inputs], []
    names = [wrt] if isinstance(wrt, str) else list(wrt)
    inputs = {f.name for f in stencil.inputs}
    params = {p.name for p in stencil.params}
    field_names, param_names = [], []
    for name in names:
        if not isinstance(name, str):
            raise WrtError(f"wrt entries must be names (str), got {name!r}")
        if name in inputs:
            if name not in field_names:
                field_names.append(name)
        elif name in params:
            if name not in param_names:
                param_names.append(name)
        else:
            outs = {f.name for f in stencil.outputs} - inputs
            hint = f" ({name!r} is an output only)" if name in outs else ""
            raise WrtError(
                f"wrt names {name!r}, which is neither an input field nor a parameter of "
                f"stencil {stencil.name!r}{hint}; inputs: {', '.join(sorted(inputs))}; "
                f"params: {', '.join(sorted(params)) or 'none'}"
            )
    order = {f.name: i for i, f in enumerate(stencil.inputs)}
    field_names.sort(key=order.__getitem__)
    param_names.sort()
    return field_names, param_names


def derive_adjoint(stencil: Stencil, wrt: str | Iterable[str] | None = None) -> AdjointStencil:
    """Derive the gather-form adjoint of ``stencil`` for the inputs/params in ``wrt``."""
    field_names, param_names = resolve_wrt(stencil, wrt)
    return _derive_cached(stencil, tuple(field_names), tuple(param_names))


@functools.lru_cache(maxsize=256)
def _derive_cached(stencil: Stencil, field_names: tuple[str, ...], param_names: tuple[str, ...]) -> AdjointStencil:
    field_terms: dict[str, tuple[AdjointTerm, ...]] = {}
    for name in field_names:
        terms = []
        for out, expr in stencil.outputs.items():
            for k in stencil.offsets(name):
                access = stencil.field(name)[k]
                partial = _derivative(expr, access)
                if partial == 0:
                    continue
                terms.append(AdjointTerm(out.name, k, shift(partial, tuple(-x for x in k))))
        field_terms[name] = tuple(terms)
    params = {p.name: p for p in stencil.params}
    param_terms: dict[str, tuple[ParamTerm, ...]] = {}
    for name in param_names:
        terms = []
        for out, expr in stencil.outputs.items():
            partial = _derivative(expr, params[name])
            if partial != 0:
                terms.append(ParamTerm(out.name, partial))
        param_terms[name] = tuple(terms)
    return AdjointStencil(stencil, field_terms, param_terms)


# --- symbolic queries ----------------------------------------------------------------------


def _is_zero(expr: sp.Expr) -> bool:
    if expr == 0:
        return True
    return sp.simplify(expr) == 0


def _field_of(stencil: Stencil, field: Field | str) -> Field:
    name = field if isinstance(field, str) else field.name
    for f in stencil.inputs:
        if f.name == name:
            return f
    raise WrtError(f"{name!r} is not an input field of stencil {stencil.name!r}")


def is_linear(stencil: Stencil, field: Field | str) -> bool:
    """Whether every output is affine in ``field`` (all second derivatives vanish).

    Distributions are *not* lowered here: ``Max(u, 0)`` has second derivative
    ``DiracDelta(u)`` and so is correctly reported nonlinear in ``u``.
    """
    f = _field_of(stencil, field)
    reads = [f[k] for k in stencil.offsets(f)]
    for expr in stencil.outputs.values():
        for a, b in itertools.combinations_with_replacement(reads, 2):
            if not _is_zero(sp.diff(expr, a, b)):
                return False
    return True


def is_homogeneous_linear(stencil: Stencil, names: Iterable[str]) -> bool:
    """Whether the outputs are jointly linear (not affine) in the fields ``names``."""
    reads = [f[k] for n in names for f in [_field_of(stencil, n)] for k in stencil.offsets(f)]
    for expr in stencil.outputs.values():
        for a, b in itertools.combinations_with_replacement(reads, 2):
            if not _is_zero(sp.diff(expr, a, b)):
                return False
        if not _is_zero(expr.xreplace({a: 0 for a in reads})):
            return False
    return True


def is_self_adjoint(stencil: Stencil, field: Field | str | None = None) -> bool:
    """Whether the linear operator ``field -> output`` equals its transpose.

    Requires one output and a stencil homogeneous-linear in ``field`` (the other fields
    and the parameters are coefficients). The interior test is the identity
    ``c_{-k}(i) = c_k(i - k)`` on the coefficients ``c_k = df/dfield[k]``. With the
    boundary rule: ``periodic`` and ``zero`` keep a symmetric interior symmetric;
    ``edge``/``symmetric`` do so for halos one cell wide; every other case is decided
    by building the operator symbolically on a small grid and comparing with its
    transpose.
    """
    if len(stencil.outputs) != 1:
        return False
    f = stencil.inputs[0] if field is None and len(stencil.inputs) == 1 else None
    if f is None:
        if field is None:
            raise NotLinearError(
                f"stencil {stencil.name!r} reads several fields; name the unknown: is_self_adjoint(field=...)"
            )
        f = _field_of(stencil, field)
    if not is_homogeneous_linear(stencil, [f.name]):
        return False
    expr = next(iter(stencil.outputs.values()))
    coeff = {k: sp.diff(expr, f[k]) for k in stencil.offsets(f)}
    for k in set(coeff) | {tuple(-x for x in k) for k in coeff}:
        neg = tuple(-x for x in k)
        lhs = shift(coeff.get(k, sp.Integer(0)), neg)
        if not _is_zero(lhs - coeff.get(neg, sp.Integer(0))):
            return False
    for axis, rule in enumerate(f.bc):
        width = max(stencil.halo[axis])
        if rule in ("periodic", "zero") or width == 0:
            continue
        if rule in ("edge", "symmetric") and width <= 1:
            continue
        return _symmetric_on_small_grid(stencil, f)
    return True


def _symmetric_on_small_grid(stencil: Stencil, unknown: Field) -> bool:
    size = tuple(3 * max(max(h), 1) + 2 for h in stencil.halo)
    matrix = operator_matrix(stencil, unknown, size)
    return all(_is_zero(matrix[i, j] - matrix[j, i]) for i in range(matrix.rows) for j in range(i))


def operator_matrix(stencil: Stencil, unknown: Field, shape: tuple[int, ...]) -> sp.Matrix:
    """The operator ``unknown -> output`` of a one-output linear stencil as a SymPy matrix.

    Built from the boundary rules' index maps on a grid of ``shape``; the other fields
    are symbols ``name_<cell>`` and the parameters stay symbolic. Rows and columns are
    cells in C order. Meant for small grids (tests and symmetry checks).
    """
    n_cells = int(np.prod(shape))
    cells = list(itertools.product(*[range(n) for n in shape]))
    values = {
        f.name: {c: sp.Symbol(f"{f.name}_{'_'.join(map(str, c))}", real=True) for c in cells}
        for f in stencil.inputs
    }
    expr = next(iter(stencil.outputs.values()))
    reads = sorted(accesses(expr), key=lambda a: (a.field.name, a.offset))
    rows = []
    for cell in cells:
        subs = {}
        for a in reads:
            src = []
            for axis, (c, o) in enumerate(zip(cell, a.offset)):
                src.append(source_index(a.field.bc[axis], c + o, shape[axis]))
            subs[a] = sp.Integer(0) if None in src else values[a.field.name][tuple(src)]
        rows.append(expr.xreplace(subs))
    unknowns = [values[unknown.name][c] for c in cells]
    return sp.Matrix(n_cells, n_cells, lambda i, j: sp.diff(rows[i], unknowns[j]))
