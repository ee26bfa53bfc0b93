"""Call generated kernels safely: validate arrays, pad and fill halos, run, fold.

A :class:`CompiledStencil` wraps one generated module. It needs only the module's
``SPEC`` metadata and kernels — no SymPy — so modules built into ``generated/`` load
fast. Every check (names, ndim, shapes, dtypes, grid size) happens here, in Python,
before a kernel runs: Numba does not bounds-check.

Padded input buffers and the padded adjoint buffers are kept per shape and dtype and
reused across calls (touching fresh memory costs more than the stencil itself on big
grids). Returned arrays are always new. An instance is therefore not thread-safe;
use one per thread.
"""

from __future__ import annotations

import hashlib
import importlib.util
import numbers
import sys
from pathlib import Path
from types import ModuleType
from typing import Mapping

import numpy as np

from ..boundary import min_cells
from ..config import config
from ..errors import (
    BuildError,
    DTypeError,
    GridTooSmallError,
    MissingArgumentError,
    ParameterError,
    ShapeError,
    UnknownArgumentError,
)
from .twins import copy_into

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def load_module(path: str | Path, module_name: str | None = None) -> ModuleType:
    """Import a generated module from ``path`` (Numba caches its machine code beside it)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise BuildError(f"no generated module at {path}")
    # A stable, dot-free name: Numba's on-disk cache re-imports the module by this name.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = module_name or f"dpgen_kernels_{path.stem}_{digest}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BuildError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    if not isinstance(getattr(module, "SPEC", None), dict):
        raise BuildError(f"{path} is not a dpgen-generated module (no SPEC)")
    return module


class CompiledStencil:
    """Forward and vector-Jacobian product of one generated stencil module.

    Parameters
    ----------
    module : module
        A module rendered by :func:`dpgen.codegen.render_module`.

    Examples
    --------
    >>> import numpy as np, sympy as sp, dpgen as dp
    >>> d = dp.Field("d", bc="periodic")
    >>> k = dp.compile(dp.Stencil("diff_doc", {d: d[1] - d[0]}), wrt="d")
    >>> k.forward(d=np.array([1.0, 2.0, 4.0]))["d"]
    array([ 1.,  2., -3.])
    >>> k.vjp({"d": np.array([1.0, 0.0, 0.0])})["d"]  # y[0] = d[1] - d[0]
    array([-1.,  1.,  0.])
    """

    def __init__(self, module: ModuleType):
        self.module = module
        spec = module.SPEC
        self.spec = spec
        self.name: str = spec["name"]
        self.ndim: int = spec["ndim"]
        self.inputs: tuple[str, ...] = tuple(spec["inputs"])
        self.outputs: tuple[str, ...] = tuple(spec["outputs"])
        self.params: tuple[str, ...] = tuple(spec["params"])
        self.halo: tuple[tuple[int, int], ...] = tuple(tuple(h) for h in spec["halo"])
        self.wrt_fields: tuple[str, ...] = tuple(spec["wrt_fields"])
        self.wrt_params: tuple[str, ...] = tuple(spec["wrt_params"])
        self.content_hash: str = spec["content_hash"]
        #: input fields the vjp reads (the others may be omitted in ``vjp``)
        self.needs: tuple[str, ...] = tuple(
            n for n in self.inputs if n in set(spec["adjoint_inputs"]) | set(spec["param_inputs"])
        )
        self._buffers: dict[tuple, np.ndarray] = {}

    @property
    def wrt(self) -> tuple[str, ...]:
        return self.wrt_fields + self.wrt_params

    @property
    def path(self) -> str | None:
        return getattr(self.module, "__file__", None)

    def __repr__(self) -> str:
        return (
            f"<CompiledStencil {self.name}: inputs {', '.join(self.inputs)} -> outputs "
            f"{', '.join(self.outputs)}; params {', '.join(self.params) or '-'}; "
            f"wrt {', '.join(self.wrt) or '-'}>"
        )

    # --- validation ------------------------------------------------------------------

    def _parse(
        self, kwargs: Mapping[str, object], required_fields: tuple[str, ...], extra_arrays: Mapping[str, object] = {}
    ) -> tuple[dict[str, np.ndarray], dict[str, float], tuple[int, ...], np.dtype]:
        fields: dict[str, np.ndarray] = {}
        params: dict[str, float] = {}
        for name, value in kwargs.items():
            if name in self.inputs:
                fields[name] = self._as_array(name, value, "field")
            elif name in self.params:
                params[name] = self._as_scalar(name, value)
            elif name in self.outputs:
                raise UnknownArgumentError(
                    f"{name!r} is an output of stencil {self.name!r}, not an input; "
                    f"inputs: {', '.join(self.inputs)}"
                )
            else:
                raise UnknownArgumentError(
                    f"stencil {self.name!r} has no input field or parameter {name!r}; "
                    f"inputs: {', '.join(self.inputs)}; params: {', '.join(self.params) or 'none'}"
                )
        missing = [n for n in required_fields if n not in fields] + [p for p in self.params if p not in params]
        if missing:
            raise MissingArgumentError(
                f"stencil {self.name!r}: missing {', '.join(repr(m) for m in missing)} "
                f"(needs fields {', '.join(required_fields) or 'none'} and params {', '.join(self.params) or 'none'})"
            )
        arrays = {**fields, **{f"cotangent of {k}": v for k, v in extra_arrays.items()}}
        if not arrays:
            raise MissingArgumentError(
                f"stencil {self.name!r}: pass at least one array so the grid shape is known"
            )
        shape, dtype = self._common_shape_dtype(arrays)
        return fields, params, shape, dtype

    def _as_array(self, name: str, value: object, role: str) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype not in SUPPORTED_DTYPES:
            raise DTypeError(
                f"stencil {self.name!r}: {role} {name!r} has dtype {arr.dtype}; "
                "use float32 or float64 (dpgen never casts silently)"
            )
        if arr.ndim != self.ndim:
            raise ShapeError(
                f"stencil {self.name!r}: {role} {name!r} has ndim {arr.ndim} (shape {arr.shape}) "
                f"but the stencil is {self.ndim}-D"
            )
        return arr

    def _as_scalar(self, name: str, value: object) -> float:
        if isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiu":
            return float(value)
        raise ParameterError(
            f"stencil {self.name!r}: parameter {name!r} must be a real scalar, got "
            f"{type(value).__name__}{getattr(value, 'shape', '')}"
        )

    def _common_shape_dtype(self, arrays: Mapping[str, np.ndarray]) -> tuple[tuple[int, ...], np.dtype]:
        shapes = {n: a.shape for n, a in arrays.items()}
        if len(set(shapes.values())) > 1:
            detail = ", ".join(f"{n}: {s}" for n, s in shapes.items())
            raise ShapeError(f"stencil {self.name!r}: arrays disagree in shape ({detail})")
        dtypes = {n: a.dtype for n, a in arrays.items()}
        if len(set(dtypes.values())) > 1:
            detail = ", ".join(f"{n}: {d}" for n, d in dtypes.items())
            raise DTypeError(
                f"stencil {self.name!r}: arrays mix dtypes ({detail}); cast them to one dtype"
            )
        shape = next(iter(shapes.values()))
        for axis, (n, h) in enumerate(zip(shape, self.halo)):
            need = min_cells(h)
            if n < need:
                raise GridTooSmallError(
                    f"stencil {self.name!r}: axis {axis} has {n} cell(s) but the halo is {h} "
                    f"(lo, hi) wide; the grid needs at least {need} cells on that axis"
                )
        return shape, next(iter(dtypes.values()))

    def validate(self, arrays: Mapping[str, object]) -> tuple[tuple[int, ...], np.dtype]:
        """Check arrays meant for this stencil (dtype, ndim, one shape, grid >= halo).

        Returns the common grid shape and dtype; raises the same typed errors as
        :meth:`forward`. For callers of the padded-array layer.
        """
        return self._common_shape_dtype({n: self._as_array(n, v, "field") for n, v in arrays.items()})

    # --- buffers ---------------------------------------------------------------------

    def _buffer(self, key: tuple, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        full = (key, shape, dtype.str)
        buf = self._buffers.get(full)
        if buf is None:
            buf = self._buffers[full] = np.empty(shape, dtype=dtype)
        return buf

    def padded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of a field on a grid of ``shape`` padded with this stencil's halo."""
        return tuple(n + lo + hi for n, (lo, hi) in zip(shape, self.halo))

    def interior(self, shape: tuple[int, ...]) -> tuple[slice, ...]:
        """Index of the grid cells inside a padded array (``shape``: the grid's)."""
        return tuple(slice(lo, lo + n) for n, (lo, _) in zip(shape, self.halo))

    def _grid_shape(self, padded: np.ndarray) -> tuple[int, ...]:
        return tuple(n - lo - hi for n, (lo, hi) in zip(padded.shape, self.halo))

    def _padded_input(self, name: str, arr: np.ndarray) -> np.ndarray:
        buf = self._buffer(("in", name), self.padded_shape(arr.shape), arr.dtype)
        copy_into(buf[self.interior(arr.shape)], arr)
        return buf

    def _kernel(self, name: str, shape: tuple[int, ...]):
        # the fused adjoint does several forward cells' work per cell: parallel sooner
        threshold = config.parallel_threshold // (4 if name == "adjoint" else 1)
        parallel = int(np.prod(shape)) >= threshold
        return getattr(self.module, name if parallel else f"{name}_serial")

    # --- padded-array layer ---------------------------------------------------------------
    # No validation here: the public methods below validate and then call these, and
    # rollouts call them directly on fields they keep padded between steps. Every
    # method (re)fills the halos of the inputs it reads: cheap (ghost cells only) and
    # always right, even when another stencil with another rule filled them before.

    def fill_halo(self, name: str, padded: np.ndarray) -> None:
        """Fill the ghost cells of input ``name`` in place (this stencil's rule)."""
        getattr(self.module, f"fill_halo_{name}")(padded)

    def fold_halo(self, name: str, padded: np.ndarray) -> np.ndarray:
        """Fold ghost cotangents onto their source cells in place; return the interior view."""
        getattr(self.module, f"fold_halo_{name}")(padded)
        return padded[self.interior(self._grid_shape(padded))]

    def forward_padded(
        self, padded: Mapping[str, np.ndarray], params: Mapping[str, float], outs: Mapping[str, np.ndarray]
    ) -> int:
        """Forward kernel on padded inputs, writing the grid cells of padded ``outs``.

        The ghost cells of ``outs`` are not touched. Returns the number of cells with a
        non-finite output (counted inside the kernel).
        """
        for n in self.inputs:
            self.fill_halo(n, padded[n])
        shape = self._grid_shape(next(iter(outs.values())))
        return self._kernel("forward", shape)(
            *[padded[n] for n in self.inputs], *[params[p] for p in self.params], *[outs[n] for n in self.outputs]
        )

    def adjoint_padded(
        self,
        bars: Mapping[str, np.ndarray],
        padded: Mapping[str, np.ndarray],
        params: Mapping[str, float],
        adj: Mapping[str, np.ndarray],
        add: Mapping[str, bool],
    ) -> None:
        """Fused adjoint into padded ``adj`` arrays (unfolded); ``add[name]`` accumulates.

        ``bars`` holds a grid-shaped cotangent for every output the adjoint reads.
        """
        for n in self.spec["adjoint_inputs"]:
            self.fill_halo(n, padded[n])
        shape = next(iter(bars.values())).shape
        self._kernel("adjoint", shape)(
            *[padded[n] for n in self.spec["adjoint_inputs"]],
            *[bars[n] for n in self.spec["adjoint_cotangents"]],
            *[params[p] for p in self.params],
            *[adj[n] for n in self.wrt_fields],
            *[adj[n] for n in self.wrt_fields],  # prev__<name>: read only where add[name]
            *[bool(add.get(n, False)) for n in self.wrt_fields],
        )

    def param_gradients_padded(
        self, bars: Mapping[str, np.ndarray], padded: Mapping[str, np.ndarray], params: Mapping[str, float]
    ) -> dict[str, float]:
        """Gradients of the parameters in ``wrt`` (sums over the grid)."""
        if not self.spec["has_param_kernel"]:
            return {p: 0.0 for p in self.wrt_params}
        for n in self.spec["param_inputs"]:
            self.fill_halo(n, padded[n])
        shape = next(iter(bars.values())).shape
        sums = self._kernel("param_gradients", shape)(
            *[padded[n] for n in self.spec["param_inputs"]],
            *[bars[n] for n in self.spec["param_cotangents"]],
            *[params[p] for p in self.params],
        )
        return {p: float(v) for p, v in zip(self.wrt_params, sums)}

    def min_diagonal_padded(self, padded: Mapping[str, np.ndarray], params: Mapping[str, float]) -> dict[str, float]:
        """See :meth:`min_diagonal`."""
        names = self.spec.get("diagonal_fields", [])
        if not names:
            return {}
        for n in self.inputs:
            self.fill_halo(n, padded[n])
        lows = self.module.diagonal_min(*[padded[n] for n in self.inputs], *[params[p] for p in self.params])
        return {n: float(v) for n, v in zip(names, lows)}

    # --- public API --------------------------------------------------------------------

    def forward(self, **kwargs: object) -> dict[str, np.ndarray]:
        """Apply the stencil: ``{output name: new array}``.

        Pass every input field (arrays of one shape and float dtype) and every
        parameter (scalars) by name. Each output is a view of the grid cells of a fresh
        padded array (the kernel writes there; no copy).
        """
        fields, params, shape, dtype = self._parse(kwargs, self.inputs)
        padded = {n: self._padded_input(n, fields[n]) for n in self.inputs}
        # fresh padded outputs, returned as views of their grid cells (no copy, as for vjp)
        outs = {n: np.empty(self.padded_shape(shape), dtype) for n in self.outputs}
        self.forward_padded(padded, params, outs)
        inside = self.interior(shape)
        return {n: out[inside] for n, out in outs.items()}

    __call__ = forward

    def min_diagonal(self, **kwargs: object) -> dict[str, float]:
        """Smallest centre coefficient ``d x_new / d x[0]`` over the grid, per explicit update.

        Only for outputs that are also inputs (``x -> x_new``). A negative value means
        the explicit step is not monotone there: for upwind advection ``1 - min`` is
        the Courant number, for explicit diffusion the diffusion number.
        """
        fields, params, _, _ = self._parse(kwargs, self.inputs)
        return self.min_diagonal_padded({n: self._padded_input(n, fields[n]) for n in self.inputs}, params)

    def vjp(self, cotangents: Mapping[str, object], **kwargs: object) -> dict[str, np.ndarray | float]:
        """Vector-Jacobian product: cotangents of the outputs -> cotangents of ``wrt``.

        Parameters
        ----------
        cotangents : mapping
            ``{output name: array}``; outputs left out count as zero.
        **kwargs
            The forward inputs and parameters. Only the fields listed in :attr:`needs`
            are read (linear dependence needs no forward value); the others may be left out.

        Returns
        -------
        dict
            ``{field: array}`` for every field in ``wrt`` and ``{param: float}`` for
            every parameter in ``wrt``. Field cotangents are views into a fresh padded
            array (the halo is folded, then cut off without a copy).
        """
        if not isinstance(cotangents, Mapping):
            raise UnknownArgumentError(
                f"stencil {self.name!r}: cotangents must be a mapping {{output name: array}}, "
                f"got {type(cotangents).__name__}"
            )
        bars = {}
        for name, value in cotangents.items():
            if name not in self.outputs:
                raise UnknownArgumentError(
                    f"stencil {self.name!r} has no output {name!r} to take a cotangent of; "
                    f"outputs: {', '.join(self.outputs)}"
                )
            bars[name] = self._as_array(name, value, "cotangent")
        fields, params, shape, dtype = self._parse(kwargs, self.needs, bars)
        bars = {n: np.ascontiguousarray(bars[n]) if n in bars else np.zeros(shape, dtype) for n in self.outputs}
        padded = {n: self._padded_input(n, fields[n]) for n in self.needs}
        result: dict[str, np.ndarray | float] = {}
        if self.wrt_fields:
            if self.spec["has_adjoint_kernel"]:
                adj = {n: np.empty(self.padded_shape(shape), dtype) for n in self.wrt_fields}
                self.adjoint_padded(bars, padded, params, adj, {})
                result.update({n: self.fold_halo(n, buf) for n, buf in adj.items()})
            else:  # no output depends on the requested fields
                result.update({n: np.zeros(shape, dtype) for n in self.wrt_fields})
        if self.wrt_params:
            result.update(self.param_gradients_padded(bars, padded, params))
        return result
