"""Solvers: matrix-free Krylov methods and linear solves with implicit gradients."""

from .krylov import SolveInfo, bicgstab, cg
from .linear import LinearSolve

__all__ = ["LinearSolve", "SolveInfo", "bicgstab", "cg"]
