"""Solvers: matrix-free Krylov methods, a multigrid preconditioner, and linear solves with implicit gradients."""

from .krylov import SolveInfo, bicgstab, cg
from .linear import LinearSolve
from .multigrid import Multigrid
from .operators import StencilOperator

__all__ = ["LinearSolve", "Multigrid", "SolveInfo", "StencilOperator", "bicgstab", "cg"]
