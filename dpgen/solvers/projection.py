"""Chorin pressure projection on a staggered (MAC) grid: ``u_n = u - grad p``, ``lap p = div u``.

Layout: ``u[i, j]`` is the x-velocity on the face between cells ``i-1`` and ``i``,
``v[i, j]`` the y-velocity on the face between ``j-1`` and ``j``. The divergence uses
forward differences and the gradient backward differences (``dpgen.stencils``), so
``divergence ∘ gradient`` is exactly the 5-point Laplacian — the operator solved — and
``div u_n`` vanishes to solver tolerance.

Boundaries: ``"periodic"``, or ``"closed"`` (walls on all four sides): the velocity
has zero ghosts and its wall faces (``u[0, :]``, ``v[:, 0]``) are held at zero, the
pressure has ``edge`` (zero normal gradient) ghosts. Both Laplacians are singular
(constants); the solve projects and returns the zero-mean pressure.

The vjp chains the vjps of the three stencils and of the implicit solve; no solver
iteration is differentiated.

Examples
--------
>>> import numpy as np
>>> proj = PressureProjection("closed", rtol=1e-12)
>>> rng = np.random.default_rng(0)
>>> out = proj.forward(u=rng.standard_normal((12, 10)), v=rng.standard_normal((12, 10)), dx=1.0, dy=1.0)
>>> bool(np.abs(proj.divergence(out["u"], out["v"], dx=1.0, dy=1.0)).max() < 1e-9)
True
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..compiler import compile as compile_stencil
from ..stencils import divergence_2d, gradient_2d, laplacian
from .linear import LinearSolve


class PressureProjection:
    """Make a MAC velocity field divergence-free; exact vjp through the implicit solve.

    Parameters
    ----------
    boundary : {"closed", "periodic"}
    rtol : float
        Tolerance of the pressure solve (forward and backward).
    preconditioner : {"mg", "jacobi", None}
        Of the CG pressure solve (see :class:`~dpgen.solvers.linear.LinearSolve`);
        multigrid needs grid sizes with enough factors of two.
    """

    def __init__(self, boundary: str = "closed", *, rtol: float = 1e-10, maxiter: int | None = None,
                 preconditioner: str | None = "jacobi"):
        if boundary not in {"closed", "periodic"}:
            raise ValueError(f"boundary must be 'closed' or 'periodic', got {boundary!r}")
        self.boundary = boundary
        velocity_bc, pressure_bc = ("zero", "edge") if boundary == "closed" else ("periodic", "periodic")
        suffix = boundary
        self.div = compile_stencil(divergence_2d(velocity_bc, name=f"mac_div_{suffix}"), ("u", "v"))
        self.grad = compile_stencil(gradient_2d(pressure_bc, name=f"mac_grad_{suffix}"), ("p",))
        self.solve = LinearSolve(laplacian(2, pressure_bc, name=f"mac_lap_{suffix}"), unknown="p",
                                 rtol=rtol, maxiter=maxiter, wrt=(), preconditioner=preconditioner,
                                 # div u sums to zero (discrete Gauss theorem): any mean is round-off
                                 warn_singular_mean=False)

    def _walls(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zero the wall faces (a linear mask: its own transpose)."""
        if self.boundary == "closed":
            u, v = u.copy(), v.copy()
            u[0, :] = 0.0
            v[:, 0] = 0.0
        return u, v

    def divergence(self, u: np.ndarray, v: np.ndarray, **spacing: float) -> np.ndarray:
        """``div u`` on cells (after zeroing the wall faces)."""
        u, v = self._walls(np.asarray(u), np.asarray(v))
        return self.div.forward(u=u, v=v, **spacing)["div"]

    def forward(self, *, u: np.ndarray, v: np.ndarray, dx: float, dy: float) -> dict[str, np.ndarray]:
        """``{"u": u_n, "v": v_n, "p": p}`` with ``div (u_n, v_n) = 0``."""
        spacing = {"dx": dx, "dy": dy}
        u, v = self._walls(np.asarray(u), np.asarray(v))
        rhs = self.div.forward(u=u, v=v, **spacing)["div"]
        p = self.solve.forward(lap=rhs, **spacing)["p"]
        g = self.grad.forward(p=p, **spacing)
        u_n, v_n = self._walls(u - g["gx"], v - g["gy"])
        return {"u": u_n, "v": v_n, "p": p}

    def vjp(self, cotangents: Mapping[str, np.ndarray], *, dx: float, dy: float) -> dict[str, np.ndarray]:
        """``{"u": u_bar, "v": v_bar}`` from cotangents of ``u_n``, ``v_n`` (and optionally ``p``)."""
        spacing = {"dx": dx, "dy": dy}
        some = next(iter(cotangents.values()))
        zeros = np.zeros_like(some)
        u_bar_n, v_bar_n = self._walls(np.asarray(cotangents.get("u", zeros)), np.asarray(cotangents.get("v", zeros)))
        p_bar = self.grad.vjp({"gx": -u_bar_n, "gy": -v_bar_n}, **spacing)["p"]
        if "p" in cotangents:
            p_bar = p_bar + np.asarray(cotangents["p"])
        rhs_bar = self.solve.vjp({"p": p_bar}, **spacing)["lap"]
        div_bar = self.div.vjp({"div": rhs_bar}, **spacing)
        return dict(zip(("u", "v"), self._walls(u_bar_n + div_bar["u"], v_bar_n + div_bar["v"])))
