"""``p = A(theta)^-1 b`` for a linear stencil ``A``, with implicit (not unrolled) gradients.

Forward: a matrix-free Krylov solve whose operator is the generated stencil kernel.
Backward, by the implicit function theorem: ``lambda = A^-T p_bar`` solved from zero
(with its own tolerance), then ``b_bar = lambda`` and ``theta_bar = -lambda^T (dA/dtheta) p``
— the vjp of the stencil ``A(theta) p`` with respect to ``theta`` at cotangent
``-lambda``, which the code generator already made. When the stencil is self-adjoint
under its boundary rules (decided symbolically), ``A^-T = A^-1`` and the backward
solve reuses the forward solver and kernel; otherwise ``A^T`` is applied through the
generated adjoint kernel and both solves use BiCGStab.

Sign and null space are detected numerically on the actual coefficients: a negative
Rayleigh quotient (the Laplacian is negative semi-definite) flips the system to
``-A p = -b`` for CG; ``|A 1| ~ 0`` marks the constants as null space (periodic or
all-edge Laplacians), and then the right-hand side and the cotangent are projected
onto the range (mean removed) and the zero-mean solution is returned, in both
directions. No bordered systems.

Examples
--------
>>> import numpy as np, sympy as sp, dpgen as dp
>>> p, b = dp.fields("p b", ndim=1, bc="zero")
>>> lap = dp.Stencil("lap1_doc", {b: p[1] - 2 * p[0] + p[-1]})
>>> solve = LinearSolve(lap, unknown="p", rtol=1e-12)
>>> rhs = np.array([1.0, -2.0, 0.5, 3.0])
>>> x = solve.forward(b=rhs)["p"]
>>> bool(np.allclose(dp.compile(lap, wrt=()).forward(p=x)["b"], rhs))
True
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..adjoint import is_homogeneous_linear
from ..compiler import compile as compile_stencil
from ..errors import MissingArgumentError, NotLinearError, SingularSystemWarning, SolverError, WrtError
from ..runtime import CompiledStencil
from ..runtime.twins import dot
from ..symbolic import Field, Stencil
from .krylov import SolveInfo, bicgstab, cg, cg_unrolled, cg_unrolled_vjp, probe_diagonal
from .multigrid import Multigrid
from .operators import StencilOperator


class LinearSolve:
    """The operator ``p = A^-1 b`` where ``A`` is a stencil linear in ``unknown``.

    Parameters
    ----------
    stencil : Stencil
        One output (the right-hand side field ``b``); homogeneous-linear in
        ``unknown``. Other input fields (e.g. a coefficient ``k``) and parameters are
        coefficients of ``A`` and get gradients.
    unknown : Field or str
        The field solved for.
    rhs : Field or str, optional
        Name of the right-hand side; defaults to the stencil's output.
    method : {"auto", "cg", "bicgstab"}
        ``auto``: CG when the stencil is self-adjoint, BiCGStab otherwise.
    preconditioner : {"jacobi", "mg", None}
        ``"jacobi"``: diagonal preconditioning of CG; the exact diagonal is probed from
        the stencil at the current coefficients (about 80 applications for a 5-point
        stencil) before each solve. ``"mg"``: one geometric multigrid V-cycle per CG
        iteration (:mod:`dpgen.solvers.multigrid`), rediscretized from the same stencil
        on coarser grids — iteration counts that barely grow with the grid. Both are
        symmetric, so the backward solve uses them unchanged.
    spacing : sequence of str, optional
        Multigrid only: the grid-spacing parameter of each axis, doubled on each coarser
        level (default: the parameters named ``dx``, ``dy``, ``dz``).
    rtol, atol : float
        Forward tolerance on ``|b - A p|`` (relative to ``|b|``, absolute).
    backward_rtol : float, optional
        Tolerance of the backward solve (default: ``rtol``).
    maxiter : int, optional
        Iteration limit of each solve (default ``10 * cells``); not converging raises.
    wrt : names, optional
        Coefficient fields and parameters to return gradients for (default: all).
        The gradient of the right-hand side is always returned.
    warn_singular_mean : bool
        Warn when a singular system gets a right-hand side with a mean (its null-space
        component is dropped). Turn off where the mean is zero by construction.
    unrolled : int, optional
        Opt-in: run exactly this many plain CG iterations (self-adjoint stencils only)
        and differentiate *through* them, e.g. to learn initial guesses. The implicit
        gradient with respect to an initial guess is zero; the unrolled one is not.
        Memory grows with the iteration count.
    """

    def __init__(
        self,
        stencil: Stencil,
        unknown: Field | str,
        rhs: Field | str | None = None,
        *,
        method: str = "auto",
        preconditioner: str | None = "jacobi",
        spacing: Sequence[str] | None = None,
        rtol: float = 1e-10,
        atol: float = 0.0,
        backward_rtol: float | None = None,
        maxiter: int | None = None,
        wrt: Iterable[str] | None = None,
        warn_singular_mean: bool = True,
        unrolled: int | None = None,
    ):
        if len(stencil.outputs) != 1:
            raise NotLinearError(f"stencil {stencil.name!r}: a linear solve needs exactly one output (the right-hand side)")
        self.stencil = stencil
        self.unknown = unknown if isinstance(unknown, str) else unknown.name
        self.rhs = next(iter(stencil.outputs)).name
        if rhs is not None and (rhs if isinstance(rhs, str) else rhs.name) != self.rhs:
            raise WrtError(f"stencil {stencil.name!r} defines {self.rhs!r}, not {rhs!r}, as its right-hand side")
        if self.unknown not in {f.name for f in stencil.inputs}:
            raise WrtError(f"{self.unknown!r} is not an input field of stencil {stencil.name!r}")
        if not is_homogeneous_linear(stencil, [self.unknown]):
            raise NotLinearError(
                f"stencil {stencil.name!r} is not linear (without a constant term) in {self.unknown!r}; "
                "a linear solve needs A(unknown) = b with A linear"
            )
        self.self_adjoint = stencil.is_self_adjoint(self.unknown)
        if method not in {"auto", "cg", "bicgstab"}:
            raise ValueError(f"method must be 'auto', 'cg' or 'bicgstab', got {method!r}")
        if method == "cg" and not self.self_adjoint:
            raise SolverError(
                f"stencil {stencil.name!r} is not self-adjoint under its boundary rules: CG needs a "
                "symmetric operator; use method='bicgstab' (or 'auto')"
            )
        self.method = ("cg" if self.self_adjoint else "bicgstab") if method == "auto" else method
        if preconditioner not in {"jacobi", "mg", None}:
            raise ValueError(f"preconditioner must be 'jacobi', 'mg' or None, got {preconditioner!r}")
        if preconditioner == "mg" and self.method != "cg":
            raise SolverError(f"stencil {stencil.name!r}: the multigrid preconditioner is symmetric and runs "
                              "with CG; the operator is not self-adjoint")
        self.preconditioner = preconditioner
        params = [p.name for p in stencil.params]
        if spacing is None:
            spacing = [n for n in ("dx", "dy", "dz")[: stencil.ndim] if n in params]
            spacing = spacing if len(spacing) == stencil.ndim else None
        elif len(spacing) != stencil.ndim or any(n not in params for n in spacing):
            raise WrtError(f"spacing={tuple(spacing)!r}: name one parameter of {stencil.name!r} per axis "
                           f"({stencil.ndim}); its parameters: {', '.join(params) or 'none'}")
        if preconditioner == "mg" and spacing is None:
            raise SolverError(
                f"stencil {stencil.name!r}: multigrid rediscretizes the stencil on coarser grids and needs "
                f"the grid spacing of each axis as a parameter (dx, dy, dz, or spacing=...); its "
                f"parameters: {', '.join(params) or 'none'}"
            )
        self.spacing = None if spacing is None else tuple(spacing)
        self._multigrid: tuple[tuple, dict[str, np.ndarray], Multigrid] | None = None
        self.warn_singular_mean = warn_singular_mean
        if unrolled is not None and (self.method != "cg" or int(unrolled) < 1):
            raise SolverError("unrolled mode differentiates plain CG: it needs a self-adjoint stencil and "
                              f"unrolled >= 1 (got {unrolled!r}, method {self.method!r})")
        self.unrolled = None if unrolled is None else int(unrolled)
        if "initial_guess" in {f.name for f in stencil.inputs} | {p.name for p in stencil.params}:
            raise WrtError("'initial_guess' names the solver's starting point; rename the field or parameter")
        self.rtol, self.atol = float(rtol), float(atol)
        self.backward_rtol = self.rtol if backward_rtol is None else float(backward_rtol)
        self.maxiter = maxiter
        self.coefficients = tuple(f.name for f in stencil.inputs if f.name != self.unknown)
        self.params = tuple(p.name for p in stencil.params)
        allowed = self.coefficients + self.params
        self.wrt = allowed if wrt is None else tuple(wrt)
        bad = [n for n in self.wrt if n not in allowed]
        if bad:
            raise WrtError(f"linear solve of {stencil.name!r}: cannot differentiate w.r.t. {bad}; coefficients "
                           f"and parameters: {', '.join(allowed) or 'none'}")
        self._kernel: CompiledStencil | None = None
        self._transpose: CompiledStencil | None = None
        #: how the last forward and backward solves went
        self.forward_info: SolveInfo | None = None
        self.backward_info: SolveInfo | None = None

    # --- step-operator protocol (dpgen.rollout): a linear solve as one operator of a Step ---------

    @property
    def name(self) -> str:
        return f"{self.stencil.name}_solve"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.rhs,) + self.coefficients

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.unknown,)

    @property
    def ndim(self) -> int:
        return self.stencil.ndim

    @property
    def differentiable(self) -> frozenset[str]:
        return frozenset((self.rhs,) + self.wrt)

    def step_forward(self, fields: Mapping[str, np.ndarray], params: Mapping[str, float]):
        """Solve inside a rollout step; the solution is kept for coefficient gradients."""
        p = self.forward(**fields, **params)[self.unknown]
        return {self.unknown: p}, ({"solution": p} if self.wrt else {})

    def step_vjp(self, cotangents, fields, memo, params) -> dict[str, np.ndarray | float]:
        grads = self.vjp(cotangents, solution=memo.get("solution"), **fields, **params)
        grads.pop("initial_guess", None)
        return grads

    @property
    def kernel(self) -> CompiledStencil:
        """The stencil compiled with adjoints for the unknown, the coefficients and parameters."""
        if self._kernel is None:
            self._kernel = compile_stencil(self.stencil, (self.unknown,) + self.wrt)
        return self._kernel

    def __repr__(self) -> str:
        kind = "self-adjoint" if self.self_adjoint else "non-self-adjoint"
        return f"<LinearSolve {self.unknown} = {self.stencil.name}^-1 {self.rhs} ({kind}, {self.method}, rtol {self.rtol:g})>"

    # --- the operator on given coefficients ---------------------------------------------------

    def _split(self, kwargs: Mapping[str, object], need_rhs: bool) -> tuple[dict, dict, np.ndarray | None]:
        known = {self.rhs, self.unknown, *self.coefficients, *self.params}  # unknown may equal rhs
        unknown = set(kwargs) - known
        if unknown:
            raise WrtError(
                f"linear solve of {self.stencil.name!r} got unknown argument(s) {sorted(unknown)}; "
                f"it takes {self.rhs}, {', '.join(self.coefficients + self.params) or 'no coefficients'}"
            )
        missing = [n for n in self.coefficients + self.params if n not in kwargs]
        if need_rhs and self.rhs not in kwargs:
            missing.insert(0, self.rhs)
        if missing:
            raise MissingArgumentError(f"linear solve of {self.stencil.name!r}: missing {', '.join(map(repr, missing))}")
        coeffs = {n: kwargs[n] for n in self.coefficients}
        params = {n: kwargs[n] for n in self.params}
        rhs = None if self.rhs not in kwargs else np.asarray(kwargs[self.rhs])
        return coeffs, params, rhs

    def _operator(self, coeffs, params, like: np.ndarray) -> StencilOperator:
        """``A`` for these coefficients on the grid of ``like``: validated, coefficients
        padded once per solve; CG's vectors live in its padded layout, and it applies to
        grid arrays too (``A(x)``)."""
        shape, _ = self.kernel.validate({self.unknown: like, **coeffs})
        return StencilOperator(self.kernel, self.unknown, self.rhs, coeffs, params, shape)

    def _apply_transpose(self, coeffs, params):
        # A^T through the generated adjoint of the unknown alone: it reads no p.
        if self._transpose is None:
            self._transpose = compile_stencil(self.stencil, (self.unknown,))
        k = self._transpose

        def apply_t(y: np.ndarray) -> np.ndarray:
            return np.asarray(k.vjp({self.rhs: y}, **{n: coeffs[n] for n in k.needs}, **params)[self.unknown])

        return apply_t

    def _structure(self, apply, shape, dtype) -> tuple[float, bool]:
        """(sign, singular): sign of the Rayleigh quotient; whether A annihilates constants."""
        rng = np.random.default_rng(12345)
        x = rng.standard_normal(shape)
        ax = apply(x.astype(dtype))
        # Numba dot products, not BLAS: OpenBLAS worker threads keep spinning after a call
        # and steal the cores from the parallel kernels that follow (measured: 2x slower solves).
        ax = np.ascontiguousarray(ax, dtype=np.float64)
        rayleigh = dot(x, ax)
        scale = math.sqrt(dot(ax, ax) / dot(x, x))
        ones = np.ones(shape, dtype)
        a1 = np.ascontiguousarray(apply(ones), dtype=np.float64)
        singular = math.sqrt(dot(a1, a1)) <= 1e-10 * scale * math.sqrt(ones.size)
        return (-1.0 if rayleigh < 0 else 1.0), singular

    def _jacobi(self, apply, shape, sign: float) -> np.ndarray | None:
        """``1 / diag(sign * A)``, or ``None`` (no preconditioning, or a diagonal that is not positive)."""
        if self.preconditioner != "jacobi" or self.method != "cg":
            return None
        reach = tuple(max(h) for h in self.stencil.halo)
        diag = sign * probe_diagonal(apply, shape, reach)
        if np.any(diag <= 0):
            return None  # Jacobi needs a positive diagonal; fall back to plain CG
        return 1.0 / diag

    def multigrid(self, coeffs: Mapping[str, np.ndarray], params: Mapping[str, float], shape, sign: float) -> Multigrid:
        """The V-cycle for these coefficients, parameters and grid (built once, reused while they hold)."""
        key = (tuple(shape), sign, tuple(sorted((p, float(v)) for p, v in params.items())))
        if self._multigrid is not None:
            old_key, old_coeffs, mg = self._multigrid
            if old_key == key and all(np.array_equal(old_coeffs[n], coeffs[n]) for n in coeffs):
                return mg
        mg = Multigrid(self.kernel, self.unknown, self.rhs, coeffs, params, self.spacing, tuple(shape), sign)
        self._multigrid = (key, {n: np.array(v, copy=True) for n, v in coeffs.items()}, mg)
        return mg

    def _solve(self, apply, b: np.ndarray, rtol: float, what: str, singular: bool, sign: float, x0=None,
               coeffs=None, params=None):
        if self.method == "cg":
            mg = self.multigrid(coeffs, params, b.shape, sign) if self.preconditioner == "mg" else None
            x, info = cg(apply, b, rtol=rtol, atol=self.atol, maxiter=self.maxiter, sign=sign, project=singular,
                         diag_inv=None if mg else self._jacobi(apply, b.shape, sign),
                         preconditioner=None if mg is None else mg.apply_padded, x0=x0, what=what)
        else:
            if singular:
                raise SolverError(
                    f"{what}: the operator is singular and not self-adjoint; dpgen projects null spaces "
                    "only for self-adjoint operators"
                )
            x, info = bicgstab(apply, b, rtol=rtol, atol=self.atol, maxiter=self.maxiter, what=what)
        return x.astype(b.dtype, copy=False), info

    # --- public API ----------------------------------------------------------------------------

    def forward(self, *, initial_guess: np.ndarray | None = None, **kwargs: object) -> dict[str, np.ndarray]:
        """Solve: ``{unknown: p}`` from the right-hand side, coefficient fields and parameters.

        ``initial_guess`` warm-starts the solver (implicit mode) or is the start of the
        unrolled iterations.
        """
        coeffs, params, b = self._split(kwargs, need_rhs=True)
        apply = self._operator(coeffs, params, b)
        sign, singular = self._structure(apply, b.shape, b.dtype)
        if self.unrolled is not None:
            x0 = np.zeros(b.shape) if initial_guess is None else np.asarray(initial_guess, dtype=np.float64)
            x, _ = cg_unrolled(lambda v: sign * apply(v), sign * b, x0, self.unrolled)
            self.forward_info = SolveInfo("unrolled-cg", self.unrolled, math.nan, True, math.nan)
            return {self.unknown: x.astype(b.dtype, copy=False)}
        if singular and self.warn_singular_mean:
            mean = float(np.mean(b))
            # warn unless the sum is a cancellation at round-off level (e.g. b = div u, closed box)
            if abs(mean) * b.size > 1e-6 * float(np.sum(np.abs(b))):
                warnings.warn(
                    f"linear solve of {self.stencil.name!r}: the operator is singular (constants are in its "
                    f"null space) and the right-hand side has mean {mean:.3e}; it is removed (the system is "
                    "solved in the least-squares sense and the zero-mean solution returned)",
                    SingularSystemWarning,
                    stacklevel=2,
                )
        p, self.forward_info = self._solve(apply, b, self.rtol, f"forward solve of {self.stencil.name!r}",
                                           singular, sign, initial_guess, coeffs, params)
        return {self.unknown: p}

    def vjp(
        self,
        cotangents: Mapping[str, object],
        *,
        initial_guess: np.ndarray | None = None,
        solution: np.ndarray | None = None,
        **kwargs: object,
    ) -> dict[str, np.ndarray | float]:
        """Gradients ``{rhs: b_bar, coefficient: bar, param: bar, "initial_guess": bar}`` from ``{unknown: p_bar}``.

        Pass the same arguments as to :meth:`forward`; in implicit mode, pass the
        solution (``solution=p``, or ``<unknown>=p`` when the unknown and the
        right-hand side have different names) to skip solving the forward system again
        (it is needed for coefficient gradients only). The implicit gradient with
        respect to the initial guess is zero.
        """
        if set(cotangents) - {self.unknown}:
            raise WrtError(f"linear solve of {self.stencil.name!r} has one output, {self.unknown!r}")
        coeffs, params, b = self._split(kwargs, need_rhs=self.unrolled is not None)
        p_bar = np.asarray(cotangents[self.unknown])
        apply = self._operator(coeffs, params, p_bar)
        sign, singular = self._structure(apply, p_bar.shape, p_bar.dtype)
        if self.unrolled is not None:
            return self._unrolled_vjp(p_bar, b, initial_guess, coeffs, params, apply, sign)
        what = f"backward solve of {self.stencil.name!r}"
        if self.self_adjoint:  # A^-T = A^-1: the forward solver, reused as is
            lam, self.backward_info = self._solve(apply, p_bar, self.backward_rtol, what, singular, sign,
                                                  coeffs=coeffs, params=params)
        else:
            lam, self.backward_info = self._solve(self._apply_transpose(coeffs, params), p_bar,
                                                  self.backward_rtol, what, singular, sign)
        grads: dict[str, np.ndarray | float] = {self.rhs: lam}
        if self.wrt:
            if solution is not None:
                p = np.asarray(solution)
            elif self.unknown in kwargs and self.unknown != self.rhs:
                p = np.asarray(kwargs[self.unknown])
            else:
                if b is None:
                    raise MissingArgumentError(
                        f"linear solve of {self.stencil.name!r}: coefficient gradients need the solution "
                        f"({self.unknown}=...) or the right-hand side ({self.rhs}=...)"
                    )
                p = self.forward(**{self.rhs: b}, **coeffs, **params)[self.unknown]
            # theta_bar = -lambda^T (dA/dtheta) p: the stencil's own vjp at cotangent -lambda
            res = self.kernel.vjp({self.rhs: -lam}, **{self.unknown: p}, **coeffs, **params)
            grads.update({n: res[n] for n in self.wrt})
        grads["initial_guess"] = np.zeros_like(p_bar)
        return grads

    def _unrolled_vjp(self, p_bar, b, initial_guess, coeffs, params, apply, sign):
        x0 = np.zeros(b.shape) if initial_guess is None else np.asarray(initial_guess, dtype=np.float64)
        op = lambda v: sign * apply(v)  # noqa: E731 - symmetric: its own transpose
        _, tape = cg_unrolled(op, sign * b, x0, self.unrolled)
        b_bar, x0_bar, pairs = cg_unrolled_vjp(tape, p_bar, op)
        grads: dict[str, np.ndarray | float] = {self.rhs: sign * b_bar, "initial_guess": x0_bar}
        if self.wrt:
            totals: dict[str, np.ndarray | float] = {}
            for v, w_bar in pairs:  # every application w = (sign A) v contributes vjp_theta(A v; sign w_bar)
                res = self.kernel.vjp({self.rhs: sign * w_bar.reshape(b.shape)}, **{self.unknown: v.reshape(b.shape)},
                                      **coeffs, **params)
                for n in self.wrt:
                    totals[n] = totals[n] + res[n] if n in totals else res[n]
            grads.update(totals)
        return grads
