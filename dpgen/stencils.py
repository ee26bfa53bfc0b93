"""Stencils dpgen ships, as factories (choose the boundary rule) and as a build spec.

Each factory returns a :class:`~dpgen.symbolic.Stencil`; grid spacings and the time
step are parameters, so one kernel serves every resolution. Run as a spec file, this
module defines one instance of each with periodic boundaries; ``dpgen build
dpgen/stencils.py -o generated`` writes their modules into ``generated/``.

The staggered (MAC) pair is written with one-sided differences — ``gradient_2d`` backward,
``divergence_2d`` forward — so that ``divergence_2d ∘ gradient_2d`` is exactly the 5-point
Laplacian.

Examples
--------
>>> print(laplacian(ndim=1, bc="edge"))
Stencil laplace_3pt (1-D)
  lap_new[0] = (p[-1] - 2*p[0] + p[1])/dx**2
  boundary rules: p: edge; halo ((1, 1),)
"""

from __future__ import annotations

from typing import Sequence

import sympy as sp

# Absolute import: this module is also run as a spec file (`dpgen build dpgen/stencils.py`).
from dpgen.symbolic import Field, Stencil, fields

BC = str | Sequence[str]
_SPACINGS = sp.symbols("dx dy dz", positive=True)
_AXES = "xyz"


def upwind(ndim: int = 1, bc: BC = "periodic", name: str | None = None) -> Stencil:
    """First-order upwind advection of a density ``d`` by a velocity (``u``, ``v``, ``w``).

    ``d_new = d - dt * sum_axes (min(c, 0) (d[+1] - d[0]) + max(c, 0) (d[0] - d[-1]))``
    with Courant-like factor ``c = velocity / spacing``.
    """
    d = Field("d", ndim, bc)
    vel = fields("u v w"[: 2 * ndim - 1], ndim=ndim, bc=bc)
    vel = (vel,) if isinstance(vel, Field) else vel
    dt = sp.Symbol("dt", positive=True)
    flux = sp.Integer(0)
    for axis in range(ndim):
        e = tuple(int(a == axis) for a in range(ndim))
        zero, plus, minus = (0,) * ndim, e, tuple(-x for x in e)
        c = vel[axis][zero] / _SPACINGS[axis]
        flux += sp.Min(c, 0) * (d[plus] - d[zero]) + sp.Max(c, 0) * (d[zero] - d[minus])
    return Stencil(name or f"upwind_{ndim}d", {d: d[(0,) * ndim] - dt * flux})


def _difference(kind: str, ndim: int, axis: int, bc: BC, name: str | None) -> Stencil:
    f = Field("f", ndim, bc)
    out = Field(f"d{_AXES[axis]}_f", ndim, bc)
    e = tuple(int(a == axis) for a in range(ndim))
    zero, plus, minus = (0,) * ndim, e, tuple(-x for x in e)
    h = _SPACINGS[axis]
    expr = {
        "central": (f[plus] - f[minus]) / (2 * h),
        "forward": (f[plus] - f[zero]) / h,
        "backward": (f[zero] - f[minus]) / h,
    }[kind]
    return Stencil(name or f"{kind}_diff_{ndim}d_{_AXES[axis]}", {out: expr})


def central_difference(ndim: int = 1, axis: int = 0, bc: BC = "periodic", name: str | None = None) -> Stencil:
    """``(f[+1] - f[-1]) / (2 h)`` along ``axis``."""
    return _difference("central", ndim, axis, bc, name)


def forward_difference(ndim: int = 1, axis: int = 0, bc: BC = "periodic", name: str | None = None) -> Stencil:
    """``(f[+1] - f[0]) / h`` along ``axis``."""
    return _difference("forward", ndim, axis, bc, name)


def backward_difference(ndim: int = 1, axis: int = 0, bc: BC = "periodic", name: str | None = None) -> Stencil:
    """``(f[0] - f[-1]) / h`` along ``axis``."""
    return _difference("backward", ndim, axis, bc, name)


def laplacian(ndim: int = 2, bc: BC = "periodic", name: str | None = None) -> Stencil:
    """Second-order Laplacian of ``p``: 3-point (1-D), 5-point (2-D), 7-point (3-D)."""
    p = Field("p", ndim, bc)
    out = Field("lap", ndim, bc)
    zero = (0,) * ndim
    expr = sp.Integer(0)
    for axis in range(ndim):
        e = tuple(int(a == axis) for a in range(ndim))
        expr += (p[e] - 2 * p[zero] + p[tuple(-x for x in e)]) / _SPACINGS[axis] ** 2
    return Stencil(name or f"laplace_{2 * ndim + 1}pt", {out: expr})


def diffusion(ndim: int = 2, bc: BC = "periodic", name: str | None = None) -> Stencil:
    """One explicit step of variable-coefficient diffusion, ``c_new = c + dt div(k grad c)``.

    Conservative form: the coefficient on the face between two cells is the mean of
    theirs, ``(k[0] + k[e]) / 2 * (c[e] - c[0]) / h**2`` summed over the faces.
    """
    c = Field("c", ndim, bc)
    k = Field("k", ndim, bc)
    dt = sp.Symbol("dt", positive=True)
    zero = (0,) * ndim
    flux = sp.Integer(0)
    for axis in range(ndim):
        e = tuple(int(a == axis) for a in range(ndim))
        m = tuple(-x for x in e)
        h2 = _SPACINGS[axis] ** 2
        flux += ((k[zero] + k[e]) * (c[e] - c[zero]) - (k[m] + k[zero]) * (c[zero] - c[m])) / (2 * h2)
    return Stencil(name or f"diffusion_{ndim}d", {c: c[zero] + dt * flux})


def divergence_2d(bc: BC = "periodic", name: str = "divergence_2d") -> Stencil:
    """MAC divergence of face velocities ``(u, v)``: forward differences."""
    u, v = fields("u v", ndim=2, bc=bc)
    div = Field("div", 2, bc)
    dx, dy = _SPACINGS[:2]
    return Stencil(name, {div: (u[1, 0] - u[0, 0]) / dx + (v[0, 1] - v[0, 0]) / dy})


def gradient_2d(bc: BC = "periodic", name: str = "gradient_2d") -> Stencil:
    """MAC gradient of a cell-centred ``p`` onto faces: backward differences."""
    p = Field("p", 2, bc)
    gx, gy = fields("gx gy", ndim=2, bc=bc)
    dx, dy = _SPACINGS[:2]
    return Stencil(name, {gx: (p[0, 0] - p[-1, 0]) / dx, gy: (p[0, 0] - p[0, -1]) / dy})


#: Every shipped factory, with the arguments of its instance in ``generated/``.
FACTORIES = {
    "upwind_1d": (upwind, {"ndim": 1}),
    "upwind_2d": (upwind, {"ndim": 2}),
    "central_diff_1d": (central_difference, {"ndim": 1, "name": "central_diff_1d"}),
    "forward_diff_1d": (forward_difference, {"ndim": 1, "name": "forward_diff_1d"}),
    "backward_diff_1d": (backward_difference, {"ndim": 1, "name": "backward_diff_1d"}),
    "laplace_5pt": (laplacian, {"ndim": 2}),
    "laplace_7pt": (laplacian, {"ndim": 3}),
    "diffusion_2d": (diffusion, {"ndim": 2}),
    "divergence_2d": (divergence_2d, {}),
    "gradient_2d": (gradient_2d, {}),
}


def shipped(bc: BC = "periodic") -> list[Stencil]:
    """One instance of every shipped stencil with boundary rule ``bc``."""
    return [factory(bc=bc, **kwargs) for factory, kwargs in FACTORIES.values()]


# --- build spec: the instances generated into generated/ (all inputs and parameters) ----
def _spec() -> tuple[list[Stencil], dict[str, tuple[str, ...]]]:
    stencils = shipped("periodic")
    return stencils, {s.name: tuple(f.name for f in s.inputs) + tuple(p.name for p in s.params) for s in stencils}


if __name__ != "dpgen.stencils":  # run as a spec file (`dpgen build dpgen/stencils.py` reads these names)
    STENCILS, WRT = _spec()


def __getattr__(name: str) -> object:
    """``STENCILS`` and ``WRT``, built on first use when imported: building every shipped
    stencil had been 70 ms of ``import dpgen`` (SymPy imports more of itself for them)."""
    if name in ("STENCILS", "WRT"):
        globals()["STENCILS"], globals()["WRT"] = _spec()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
