"""Grid transfers of the cell-centred multigrid: bilinear prolongation and its transpose.

A coarse cell ``J`` covers fine cells ``2J`` and ``2J + 1`` along each axis. The
prolongation interpolates (bi/tri)linearly between coarse cell centres: fine cell
``2I + a`` takes ``3/4`` of coarse ``I`` and ``1/4`` of coarse ``I - 1`` (``a = 0``) or
``I + 1`` (``a = 1``), per axis. Coarse values outside the grid come from the ghost
cells of a *padded* coarse array, filled by the stencil's own ``fill_halo`` — so the
boundary rule of the unknown field decides them, whatever it is.

Restriction is the exact transpose, scaled by ``2**-ndim``: every padded coarse cell
(ghosts one cell deep included) gathers ``W = (1/4, 3/4, 3/4, 1/4)`` of fine cells
``2J - 1 ... 2J + 2``, and the stencil's ``fold_halo`` (the transpose of ``fill_halo``)
adds the ghost sums onto the cells they were copied from. ``R = P^T / 2**ndim`` makes the
V-cycle a symmetric operator, as CG needs of a preconditioner.

Every kernel loops in gather form (each output cell written once), so they run in
parallel without races.
"""

from __future__ import annotations

import numba
import numpy as np

from ..runtime.twins import twin

_W = (0.25, 0.75, 0.75, 0.25)  # fine cells 2J-1, 2J, 2J+1, 2J+2 of coarse cell J


@twin
def _prolong_add_1d(xf, xc, h0):
    for i0 in numba.prange(xf.shape[0]):
        c0 = i0 // 2 + h0
        s0 = 2 * (i0 % 2) - 1
        xf[i0] += 0.75 * xc[c0] + 0.25 * xc[c0 + s0]


@twin
def _prolong_add_2d(xf, xc, h0, h1):
    for i0 in numba.prange(xf.shape[0]):
        c0 = i0 // 2 + h0
        s0 = 2 * (i0 % 2) - 1
        for i1 in range(xf.shape[1]):
            c1 = i1 // 2 + h1
            s1 = 2 * (i1 % 2) - 1
            xf[i0, i1] += (0.5625 * xc[c0, c1] + 0.1875 * (xc[c0 + s0, c1] + xc[c0, c1 + s1])
                           + 0.0625 * xc[c0 + s0, c1 + s1])


@twin
def _prolong_add_3d(xf, xc, h0, h1, h2):
    for i0 in numba.prange(xf.shape[0]):
        c0 = i0 // 2 + h0
        s0 = 2 * (i0 % 2) - 1
        for i1 in range(xf.shape[1]):
            c1 = i1 // 2 + h1
            s1 = 2 * (i1 % 2) - 1
            for i2 in range(xf.shape[2]):
                c2 = i2 // 2 + h2
                s2 = 2 * (i2 % 2) - 1
                total = 0.0
                for a in range(2):
                    wa = 0.75 if a == 0 else 0.25
                    for b in range(2):
                        wb = 0.75 if b == 0 else 0.25
                        for c in range(2):
                            wc = 0.75 if c == 0 else 0.25
                            total += wa * wb * wc * xc[c0 + a * s0, c1 + b * s1, c2 + c * s2]
                xf[i0, i1, i2] += total


@twin
def _restrict_1d(rf, rc, h0, scale):
    n0 = rf.shape[0]
    for j0 in numba.prange(rf.shape[0] // 2 + 2):  # padded coarse index J + h0, J in [-1, nc]
        big0 = 2 * (j0 - 1) - 1
        total = 0.0
        for a in range(4):
            i0 = big0 + a
            if 0 <= i0 < n0:
                total += _W[a] * rf[i0]
        rc[j0 - 1 + h0] = scale * total


@twin
def _restrict_2d(rf, rc, h0, h1, scale):
    n0, n1 = rf.shape
    for j0 in numba.prange(n0 // 2 + 2):
        big0 = 2 * (j0 - 1) - 1
        for j1 in range(n1 // 2 + 2):
            big1 = 2 * (j1 - 1) - 1
            total = 0.0
            for a in range(4):
                i0 = big0 + a
                if 0 <= i0 < n0:
                    for b in range(4):
                        i1 = big1 + b
                        if 0 <= i1 < n1:
                            total += _W[a] * _W[b] * rf[i0, i1]
            rc[j0 - 1 + h0, j1 - 1 + h1] = scale * total


@twin
def _restrict_3d(rf, rc, h0, h1, h2, scale):
    n0, n1, n2 = rf.shape
    for j0 in numba.prange(n0 // 2 + 2):
        big0 = 2 * (j0 - 1) - 1
        for j1 in range(n1 // 2 + 2):
            big1 = 2 * (j1 - 1) - 1
            for j2 in range(n2 // 2 + 2):
                big2 = 2 * (j2 - 1) - 1
                total = 0.0
                for a in range(4):
                    i0 = big0 + a
                    if 0 <= i0 < n0:
                        for b in range(4):
                            i1 = big1 + b
                            if 0 <= i1 < n1:
                                for c in range(4):
                                    i2 = big2 + c
                                    if 0 <= i2 < n2:
                                        total += _W[a] * _W[b] * _W[c] * rf[i0, i1, i2]
                rc[j0 - 1 + h0, j1 - 1 + h1, j2 - 1 + h2] = scale * total


def prolong_add(coarse_padded: np.ndarray, fine: np.ndarray, halo_lo: tuple[int, ...]) -> None:
    """``fine += P coarse``; ``coarse_padded`` has its ghost cells filled (``halo_lo`` deep below)."""
    kernel = (_prolong_add_1d, _prolong_add_2d, _prolong_add_3d)[fine.ndim - 1]
    kernel(fine, coarse_padded, *halo_lo)


def restrict_unfolded(fine: np.ndarray, coarse_padded: np.ndarray, halo_lo: tuple[int, ...]) -> None:
    """Padded ``coarse = P^T fine / 2**ndim`` before the halo fold (ghosts one cell deep set).

    Ghost cells farther out are zeroed; fold them with the stencil's ``fold_halo``.
    """
    coarse_padded[...] = 0.0
    kernel = (_restrict_1d, _restrict_2d, _restrict_3d)[fine.ndim - 1]
    kernel(fine, coarse_padded, *halo_lo, 0.5 ** fine.ndim)
