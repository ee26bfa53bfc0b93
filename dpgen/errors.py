"""Typed exceptions raised by dpgen.

Every error names the field, parameter, offset, shape or SymPy construct at fault,
and is raised before any generated kernel runs. Each class also derives from the
matching built-in exception (``ValueError``, ``TypeError`` …) so generic handlers
keep working.
"""

from __future__ import annotations


class DpgenError(Exception):
    """Base class of every error dpgen raises on purpose."""


# --- definition time (symbolic layer) -------------------------------------------------


class StencilDefinitionError(DpgenError, ValueError):
    """A stencil or field definition that dpgen cannot turn into correct code."""


class OffsetError(StencilDefinitionError, TypeError):
    """A field access with a non-integer offset or the wrong number of indices."""


class UnsupportedExpressionError(StencilDefinitionError):
    """A SymPy construct (function, object) that dpgen cannot print or differentiate."""


class DuplicateOutputError(StencilDefinitionError):
    """The same output field is defined twice in one stencil."""


class BoundaryRuleError(StencilDefinitionError):
    """An unknown boundary rule, or a rule tuple of the wrong length."""


class WrtError(DpgenError, ValueError):
    """``wrt`` names something that is not an input field or parameter of the stencil."""


class NotApplicableError(DpgenError, ValueError):
    """A query or check that does not apply to this stencil."""


class NotLinearError(NotApplicableError):
    """A query or test that needs a linear stencil got a nonlinear one."""


# --- call time (runtime layer) --------------------------------------------------------


class CallError(DpgenError, ValueError):
    """Bad arguments to a compiled stencil, detected before any kernel runs."""


class MissingArgumentError(CallError, TypeError):
    """A required input field, parameter or cotangent was not passed."""


class UnknownArgumentError(CallError, TypeError):
    """An argument name that the stencil does not know (often a typo)."""


class ParameterError(CallError, TypeError):
    """A parameter value that is not a real scalar."""


class ShapeError(CallError):
    """Wrong number of dimensions, or shapes that disagree between arrays."""


class DTypeError(CallError, TypeError):
    """A non-floating dtype, or arrays of different floating dtypes."""


class GridTooSmallError(CallError):
    """A grid axis with fewer cells than the boundary halo needs."""


# --- time stepping ---------------------------------------------------------------------


class SimulationError(DpgenError, FloatingPointError):
    """A rollout produced NaN or infinite values (the message names the step and field)."""


class SolverError(DpgenError, ArithmeticError):
    """A linear solve did not converge, or its operator broke an assumption (named)."""


class SingularSystemWarning(UserWarning):
    """The right-hand side of a singular system had a non-negligible component in the null space."""


class StabilityWarning(UserWarning):
    """An explicit step violates its monotonicity (CFL) condition."""


# --- build and verification ----------------------------------------------------------


class BuildError(DpgenError, RuntimeError):
    """A spec file or generated module that cannot be built or loaded."""


class GradientCheckError(DpgenError, AssertionError):
    """A gradient verification (finite differences, dot test, Taylor test) failed."""
