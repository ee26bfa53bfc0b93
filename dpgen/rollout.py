"""Time stepping with exact gradients: a :class:`Step` of operators, run as a :class:`Rollout`.

A step is a chain of operators (stencils); outputs of earlier operators feed later
ones by name. Names that the step reads before it writes them, and also writes, are
the *state*; names it only reads are *external*: time-constant fields (an array of
the grid's shape), per-step controls (an array with a leading time axis) and scalar
parameters.

The reverse sweep fits on a page (:meth:`Rollout._reverse_step`): each operator's vjp
in reverse order, cotangents of intermediate names passed backwards, external fields
and parameters accumulated into preallocated buffers, per-step controls getting
per-step adjoints. The forward sweep records, per step and operator, only the fields
the vjp reads (``CompiledStencil.needs``; time-constant fields are never copied).

Memory is store-all by default; with ``snapshots`` (or a ``memory_budget``) the
forward and reverse sweeps follow the action stream of a ``checkpoint_schedules``
schedule (binomial Revolve checkpointing in memory, multistage with disk snapshots). Both modes run through
the same interpreter and the same kernels, so their gradients agree bit for bit.

Examples
--------
>>> import numpy as np, dpgen as dp
>>> sim = dp.Rollout(dp.Step([dp.stencils.upwind(1)]), steps=20)
>>> d0, u = np.exp(-np.linspace(-3, 3, 32) ** 2), np.full(32, 0.5)
>>> loss, grads = sim.value_and_grad(dp.losses.L2(np.zeros(32), field="d"), d=d0, u=u, dt=0.1, dx=1.0)
>>> sorted(grads), grads["d"].shape
(['d', 'u'], (32,))
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from checkpoint_schedules import (
    Copy,
    EndForward,
    EndReverse,
    Forward,
    Move,
    MultistageCheckpointSchedule,
    Reverse,
    StorageType,
)

from .compiler import compile as compile_stencil
from .config import config
from .errors import (
    MissingArgumentError,
    ShapeError,
    SimulationError,
    StabilityWarning,
    UnknownArgumentError,
    WrtError,
)
from .losses import Loss, as_loss
from .runtime import CompiledStencil
from .runtime.checks import all_finite
from .runtime.twins import copy_grid, copy_into
from .symbolic import Stencil

Operator = Stencil | CompiledStencil


@dataclasses.dataclass(frozen=True)
class _OpInfo:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[str, ...]
    ndim: int


def _describe(op: Operator) -> _OpInfo:
    if isinstance(op, Stencil):
        return _OpInfo(op.name, tuple(f.name for f in op.inputs), tuple(f.name for f in op.outputs),
                       tuple(p.name for p in op.params), op.ndim)
    if isinstance(op, CompiledStencil) or _is_step_operator(op):
        return _OpInfo(op.name, tuple(op.inputs), tuple(op.outputs), tuple(op.params), op.ndim)
    raise TypeError(
        f"a Step holds dpgen Stencils, CompiledStencils or step operators (e.g. LinearSolve), "
        f"got {type(op).__name__}"
    )


def _is_step_operator(op: object) -> bool:
    """Duck-typed operators (a linear solve, say): ``step_forward`` and ``step_vjp`` on grid arrays.

    Protocol: attributes ``name, inputs, outputs, params, ndim, differentiable`` (the
    inputs and parameters it can return gradients for); ``step_forward(fields, params)
    -> (outputs, record)``; ``step_vjp(cotangents, fields, record, params) -> grads``.
    Fields are grid-shaped (unpadded) arrays. Keeps this module free of imports from
    the solvers, which build on it.
    """
    return hasattr(op, "step_forward") and hasattr(op, "step_vjp")


class Step:
    """One time step: operators applied in order, outputs feeding later inputs by name.

    Parameters
    ----------
    operators : sequence of Stencil or CompiledStencil
        Stencils are compiled on demand with exactly the adjoints a gradient needs;
        compiled stencils must already carry them.
    """

    def __init__(self, operators: Sequence[Operator]):
        self.operators = list(operators)
        if not self.operators:
            raise ValueError("a Step needs at least one operator")
        self.info = [_describe(op) for op in self.operators]
        ndims = {i.ndim for i in self.info}
        if len(ndims) != 1:
            raise ShapeError(f"operators of one step live on one grid; got dimensions {sorted(ndims)}")
        self.ndim = ndims.pop()
        written: set[str] = set()
        read_first: list[str] = []
        for info in self.info:
            read_first += [n for n in info.inputs if n not in written and n not in read_first]
            written |= set(info.outputs)
        #: fields carried from step to step (read before written, and written)
        self.state = tuple(n for n in read_first if n in written)
        #: fields the user supplies each step (time-constant or per-step controls)
        self.external = tuple(n for n in read_first if n not in written)
        self.params = tuple(sorted({p for i in self.info for p in i.params}))
        self._compiled: dict[tuple[int, frozenset[str]], CompiledStencil] = {}

    def compiled(self, wrt_external: Iterable[str] = (), wrt_params: Iterable[str] = ()) -> list[CompiledStencil]:
        """Each operator compiled with the adjoints a gradient w.r.t. ``wrt_*`` needs.

        An operator needs the cotangents of its state and intermediate inputs (to pass
        them backwards), of the requested external fields, and of requested parameters.
        """
        wanted_external, wanted_params = set(wrt_external), set(wrt_params)
        result = []
        for index, (op, info) in enumerate(zip(self.operators, self.info)):
            wrt = frozenset(
                [n for n in info.inputs if n not in self.external or n in wanted_external]
                + [p for p in info.params if p in wanted_params]
            )
            key = (index, wrt)
            if key not in self._compiled:
                if _is_step_operator(op):
                    missing = sorted(n for n in wrt if n in self.external or n in self.params)
                    missing = [n for n in missing if n not in op.differentiable]
                    if missing:
                        raise WrtError(f"operator {op.name!r} gives no gradient for {', '.join(missing)}")
                    self._compiled[key] = op
                elif isinstance(op, CompiledStencil):
                    missing = sorted(wrt - set(op.wrt))
                    if missing:
                        raise WrtError(
                            f"operator {op.name!r} was compiled without adjoints for {', '.join(missing)}; "
                            "compile it with them or give the Step the Stencil"
                        )
                    self._compiled[key] = op
                else:
                    self._compiled[key] = compile_stencil(op, sorted(wrt))
            result.append(self._compiled[key])
        return result

    def __repr__(self) -> str:
        ops = " -> ".join(i.name for i in self.info)
        return f"<Step {ops}: state {', '.join(self.state)}; external {', '.join(self.external) or '-'}>"


def _schedule_actions_all(steps: int) -> list:
    """Store-all as an action stream, so both modes share one interpreter."""
    return [
        Forward(0, steps, False, True, StorageType.WORK),
        EndForward(),
        Reverse(steps, 0, True),
        EndReverse(),
    ]


def parse_bytes(budget: int | str) -> int:
    """``"200 MB"``, ``"1.5GiB"`` or an int -> bytes."""
    if isinstance(budget, (int, np.integer)):
        return int(budget)
    text = str(budget).strip().replace(" ", "").upper()
    units = {"GIB": 2**30, "MIB": 2**20, "KIB": 2**10, "GB": 1e9, "MB": 1e6, "KB": 1e3, "B": 1}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(float(text))


@dataclasses.dataclass
class RolloutStats:
    """What the last gradient computation did."""

    steps: int
    forward_steps: int = 0
    adjoint_steps: int = 0
    max_snapshots: int = 0
    #: the most steps whose tapes held values at once (a step whose adjoints read nothing records nothing)
    max_recorded_steps: int = 0
    schedule: str = "store all"
    #: pairs of adjoint steps run as one fused pass (``adjoint_periodic_pair``; counted in ``adjoint_steps``)
    fused_pairs: int = 0

    @property
    def recompute_factor(self) -> float:
        """Forward steps run per time step (1.0 when everything is stored)."""
        return self.forward_steps / self.steps if self.steps else 1.0


class Rollout:
    """Run a :class:`Step` ``steps`` times and differentiate through it.

    Parameters
    ----------
    step : Step or sequence of operators
    steps : int
        Number of time steps ``T``.
    snapshots : int, optional
        Checkpoint with Revolve keeping this many states in memory (default: store
        every step's adjoint data).
    disk_snapshots : int, optional
        With ``snapshots``: a multistage schedule that also keeps this many states on
        disk (``numpy.save`` files in a temporary folder).
    memory_budget : int or str, optional
        Alternative to ``snapshots``: bytes (``"500 MB"``) for snapshots; store-all
        if the whole recording fits.
    check_finite : bool
        Stop with :class:`~dpgen.errors.SimulationError` naming the step at which a
        state field became NaN or infinite.
    keep_buffers : bool
        Keep the buffers of the recorded states after :meth:`value_and_grad` (store-all
        schedule, a loss with ``keeps_state = False`` such as :class:`~dpgen.losses.L2`)
        and reuse them in the next call, as an optimization loop makes it. Fresh memory
        costs a page fault per page on first touch, and on virtual machines much more:
        10⁶ cells × 100 steps spent 20–500 ms per call recording into new memory, against
        about 75 ms into reused buffers. They stay allocated until :meth:`release_buffers`
        or until the rollout is garbage-collected; ``False`` frees them with each call.
    """

    def __init__(
        self,
        step: Step | Sequence[Operator],
        steps: int,
        *,
        snapshots: int | None = None,
        disk_snapshots: int = 0,
        memory_budget: int | str | None = None,
        check_finite: bool = True,
        keep_buffers: bool = True,
    ):
        self.step = step if isinstance(step, Step) else Step(step)
        if int(steps) < 1:
            raise ValueError(f"a rollout needs at least one step, got steps={steps}")
        self.steps = int(steps)
        if snapshots is not None and memory_budget is not None:
            raise ValueError("give snapshots or memory_budget, not both")
        if snapshots is not None and int(snapshots) < 1:
            raise ValueError(f"snapshots must be >= 1, got {snapshots}")
        self.snapshots = None if snapshots is None else int(snapshots)
        self.disk_snapshots = int(disk_snapshots)
        self.memory_budget = None if memory_budget is None else parse_bytes(memory_budget)
        self.check_finite = check_finite
        self.keep_buffers = keep_buffers
        self.stats = RolloutStats(self.steps)
        # padded buffers of the last call, for the next one: {(shape, dtype): [arrays]}
        self._spare_buffers: dict[tuple, list[np.ndarray]] = {}

    def release_buffers(self) -> None:
        """Free the state buffers kept from the last call (see ``keep_buffers``)."""
        self._spare_buffers = {}

    def _take_buffers(self, shape: tuple[int, ...], dtype: np.dtype) -> list[np.ndarray]:
        """The kept buffers of this layout, now owned by the caller (a call of its own)."""
        return self._spare_buffers.pop((shape, np.dtype(dtype)), [])

    def _return_buffers(self, shape: tuple[int, ...], dtype: np.dtype, buffers: list[np.ndarray]) -> None:
        """Keep ``buffers`` (no reference to them may remain elsewhere) for the next call."""
        if self.keep_buffers and buffers:
            self._spare_buffers = {(shape, np.dtype(dtype)): buffers}  # one layout: memory stays bounded

    # --- inputs ------------------------------------------------------------------------

    def _split_inputs(self, inputs: Mapping[str, object]):
        step = self.step
        state, constants, controls, params = {}, {}, {}, {}
        for name, value in inputs.items():
            if name in step.params:
                params[name] = float(value)  # type: ignore[arg-type]
            elif name in step.state:
                state[name] = np.asarray(value)
            elif name in step.external:
                arr = np.asarray(value)
                if arr.ndim == step.ndim + 1:
                    if arr.shape[0] != self.steps:
                        raise ShapeError(
                            f"per-step control {name!r} has {arr.shape[0]} entries on its time axis; "
                            f"the rollout has {self.steps} steps"
                        )
                    controls[name] = arr
                else:
                    constants[name] = arr
            else:
                raise UnknownArgumentError(
                    f"the step has no state, external field or parameter {name!r}; state: "
                    f"{', '.join(step.state)}; external: {', '.join(step.external) or '-'}; "
                    f"params: {', '.join(step.params) or '-'}"
                )
        missing = [n for n in step.state + step.external + step.params if n not in inputs]
        if missing:
            raise MissingArgumentError(f"rollout: missing {', '.join(repr(m) for m in missing)}")
        return state, constants, controls, params

    def _start(self, inputs: Mapping[str, object] | tuple, wrt_external=(), wrt_params=()) -> "_Run":
        """Validate the inputs, compile the operators, pad the fields: a :class:`_Run`."""
        split = inputs if isinstance(inputs, tuple) else self._split_inputs(inputs)
        state, constants, controls, params = split
        ops = self.step.compiled(wrt_external, wrt_params)
        run = _Run(self, ops, state, constants, controls, params)
        run.check_stability()
        return run

    # --- forward -------------------------------------------------------------------------

    def run(self, **inputs: object) -> dict[str, np.ndarray]:
        """Forward only: the state after ``steps`` steps."""
        run = self._start(inputs)
        run.track_buffers()  # two per state field, and the result is a copy
        state = run.initial_state()
        free: list[np.ndarray] = []
        for t in range(self.steps):
            # a few buffers in all: each step writes over the state of two steps ago and
            # over the intermediates of the step before (every state field is written each
            # step, so no buffer of the old state lives on in the new one)
            new_state, _ = run.forward_step(t, state, record=False, into=free, released=free)
            free.extend(state.values())
            state = new_state
        final = {n: copy_grid(run.grid(v)) for n, v in state.items()}
        run.give_back(issued=True)
        return final

    def value(self, loss: Loss | Callable, **inputs: object) -> float:
        """The loss of the rollout, forward only (nothing recorded)."""
        loss = as_loss(loss)
        observed = frozenset(loss.observed_steps(self.steps))  # looked up every step
        run = self._start(inputs)
        # a loss that keeps no reference to a state (dpgen's own) lets its buffers be reused
        reuse = not loss.keeps_state
        if reuse:
            run.track_buffers()
        state = run.initial_state()
        total = loss.evaluate(0, run.grid_state(state))[0] if 0 in observed else 0.0
        free: list[np.ndarray] = []
        for t in range(self.steps):
            new_state, _ = run.forward_step(t, state, record=False, into=free, released=free)
            if reuse:
                free.extend(state.values())
            state = new_state
            if t + 1 in observed:
                total += loss.evaluate(t + 1, run.grid_state(state))[0]
        run.give_back(issued=reuse)
        return total

    def trajectory(self, **inputs: object) -> dict[str, np.ndarray]:
        """Forward only: every state, stacked on a leading time axis of length ``steps + 1``."""
        run = self._start(inputs)
        state = run.initial_state()
        history = [run.grid_state(state)]
        free: list[np.ndarray] = []  # intermediates only: the states are returned
        for t in range(self.steps):
            state, _ = run.forward_step(t, state, record=False, into=free, released=free)
            history.append(run.grid_state(state))
        return {n: np.stack([s[n] for s in history]) for n in self.step.state}

    def _actions(self, bytes_per_state: int, bytes_per_record: int):
        snapshots = self.snapshots
        if self.memory_budget is not None:
            if self.memory_budget >= self.steps * (bytes_per_record + bytes_per_state):
                snapshots = None
            else:
                snapshots = max(1, self.memory_budget // max(bytes_per_state, 1) - 2)
        if snapshots is None or snapshots >= self.steps:
            self.stats.schedule = "store all"
            return iter(_schedule_actions_all(self.steps))
        # MultistageCheckpointSchedule with no disk slots is binomial (Revolve-optimal)
        # checkpointing; the package's Revolve class gives the same actions but builds
        # them in time quadratic in the number of steps (minutes at 10^4 steps).
        self.stats.schedule = self.schedule_name(snapshots)
        return iter(MultistageCheckpointSchedule(self.steps, snapshots, self.disk_snapshots))

    def schedule_name(self, snapshots: int) -> str:
        if self.disk_snapshots:
            return f"multistage: {snapshots} in memory, {self.disk_snapshots} on disk"
        return f"revolve: {snapshots} snapshots in memory"

    def value_and_grad(
        self, loss: Loss | Callable, wrt: str | Iterable[str] | None = None, **inputs: object
    ) -> tuple[float, dict[str, np.ndarray | float]]:
        """The loss of the rollout and its gradient, in one forward and one reverse sweep.

        Parameters
        ----------
        loss : Loss or callable
            See :mod:`dpgen.losses`; a callable ``fn(t, state) -> (value, grads)``
            observes the final state.
        wrt : names, optional
            What to differentiate: state fields (their initial value), external
            fields, per-step controls and parameters. Default: every array passed.
        **inputs
            Initial state, external fields, per-step controls (leading time axis) and
            parameters, by name.

        Returns
        -------
        value : float
        grads : dict
            ``{name: gradient}``: arrays for fields (the initial-state gradient for
            state fields, the sum over steps for time-constant fields, one entry per
            step for controls) and floats for parameters.
        """
        loss = as_loss(loss)
        split = self._split_inputs(inputs)
        state, constants, controls, params = split
        names = self._resolve_wrt(wrt, state, constants, controls, params)
        run = self._start(
            split, [n for n in names if n in constants or n in controls], [n for n in names if n in params]
        )
        run.start_gradients(names)
        observed = frozenset(loss.observed_steps(self.steps))  # looked up every step

        bytes_per_state = sum(run.layout_bytes for _ in self.step.state)
        per_record = run.layout_bytes * sum(
            1 for k in run.ops for n in (k.needs if isinstance(k, CompiledStencil) else k.inputs + k.outputs)
            if n not in run.constants
        )
        self.stats = RolloutStats(self.steps)
        stats = self.stats
        storage: dict[StorageType, dict[int, object]] = {StorageType.RAM: {}, StorageType.DISK: {}}
        disk_dir = tempfile.TemporaryDirectory(prefix="dpgen-checkpoints-") if self.disk_snapshots else None
        tapes: dict[int, list] = {}
        recorded_now = 0  # tapes that hold values (see RolloutStats.max_recorded_steps)
        loss_grads: dict[int, dict[str, np.ndarray]] = {}
        value = 0.0
        work = run.initial_state()  # padded state at step `position`
        position = 0
        cot: dict[str, np.ndarray] = {}
        forward_done = False

        def observe(t: int, current) -> None:
            nonlocal value
            if not forward_done and t in observed and t not in loss_grads:
                # the final step's gradient straight into the buffers the reverse sweep starts from
                out = run.seed_buffers() if t == self.steps else None
                v, g = loss.evaluate(t, run.grid_state(current), out)
                value += v
                loss_grads[t] = g

        def first_cotangent() -> dict[str, np.ndarray]:
            """The loss gradient at the final step (no local name outlives it)."""
            final = loss_grads.pop(self.steps, {})
            return run.seed_cotangents({n: final.get(n) for n in self.step.state})

        def add_loss_gradient(t: int, cotangent: dict[str, np.ndarray]) -> None:
            for name, g in loss_grads.pop(t, {}).items():
                cotangent[name] += g

        def store(n: int, where: StorageType, snapshot) -> None:
            if where == StorageType.DISK:
                path = Path(disk_dir.name) / f"state_{n}.npz"  # type: ignore[union-attr]
                np.savez(path, **snapshot)
                storage[where][n] = path
            else:
                storage[where][n] = dict(snapshot)  # arrays are never written after a step: no copy
            stats.max_snapshots = max(stats.max_snapshots, len(storage[StorageType.RAM]))

        def load(n: int, where: StorageType):
            item = storage[where][n]
            if where == StorageType.DISK:
                with np.load(item) as data:  # type: ignore[arg-type]
                    return {k: data[k] for k in data.files}
            return dict(item)  # type: ignore[arg-type]

        def transfer(action: Copy | Move) -> dict[str, np.ndarray] | None:
            """Copy or move a snapshot; return it if it goes to the working state.

            A function of its own so that no local name keeps a moved snapshot alive
            once the working state has advanced past it.
            """
            snapshot = load(action.n, action.from_storage)
            if isinstance(action, Move):
                item = storage[action.from_storage].pop(action.n)
                if action.from_storage == StorageType.DISK:
                    Path(item).unlink()  # type: ignore[arg-type]
            if action.to_storage == StorageType.WORK:
                return snapshot
            store(action.n, action.to_storage, snapshot)
            return None

        try:
            observe(0, work)
            actions = self._actions(bytes_per_state, per_record)
            # Reusing two adjoint buffers per field saves an allocation per step; under
            # checkpointing the idle one would sit beside the snapshots during recomputation.
            run.reuse_adjoint_buffers = stats.schedule == "store all"
            # Recorded states go back to the rollout for its next call only under store-all
            # (checkpointing frees recomputed states as it goes) and a loss that keeps none.
            recycle = stats.schedule == "store all" and not loss.keeps_state
            # A state that no tape records (the adjoints read no state value, e.g. a linear
            # stencil differentiated only w.r.t. its state), no snapshot keeps and the loss
            # does not keep is dead once the next step has read it, and the step after
            # writes over it: the 1-D upwind rollout at 10^6 cells x 100 steps, differentiated
            # w.r.t. d0 only, wrote a fresh 8 MB buffer per step before (109 -> 86 ms). A
            # state buffer enters a tape only under its own name, so names decide.
            reuse_states = not loss.keeps_state
            recorded = {n for k in run.ops for n in run.tape_fields(k)}
            unrecorded = [n for n in self.step.state if n not in recorded]
            if recycle:
                run.track_buffers()
            for action in actions:
                if isinstance(action, Forward):
                    if position != action.n0:
                        raise RuntimeError(f"checkpoint schedule out of sync: at {position}, asked for {action}")
                    if action.write_ics:
                        store(action.n0, action.storage, work)
                    free: list[np.ndarray] = []
                    record = action.write_adj_deps
                    dead = (unrecorded if record else self.step.state) if reuse_states else ()
                    for t in range(action.n0, action.n1):
                        previous = work
                        work, tape = run.forward_step(t, work, record, into=free, released=free)
                        stats.forward_steps += 1
                        if record:
                            tapes[t] = tape
                            if any(tape):
                                recorded_now += 1
                                if recorded_now > stats.max_recorded_steps:
                                    stats.max_recorded_steps = recorded_now
                        if t + 1 in observed:
                            observe(t + 1, work)
                        # the first state of a forward run is the only one a snapshot can
                        # hold (stored as the run starts, or restored to start it)
                        if dead and t > action.n0:
                            free.extend([previous[n] for n in dead])
                    position = action.n1
                elif isinstance(action, EndForward):
                    forward_done = True
                    work = {}  # the final state is not read by the reverse sweep (let it go first)
                    cot = first_cotangent()
                elif isinstance(action, Reverse):
                    # The state after the last recomputed step is never read again: let it go
                    # (the schedule reloads a snapshot before it advances the forward again).
                    work = {}
                    t = action.n1 - 1
                    while t >= action.n0:
                        # two steps in one pass where no loss gradient joins between them
                        fused = (run.reverse_pair(t, tapes[t], tapes[t - 1], cot)
                                 if t > action.n0 and t not in loss_grads else None)
                        done = 1 if fused is None else 2
                        cot = run.reverse_step(t, tapes[t], cot) if fused is None else fused
                        stats.adjoint_steps += done
                        stats.fused_pairs += done - 1
                        if action.clear_adj_deps:
                            for reversed_step in range(t - done + 1, t + 1):
                                recorded_now -= any(tapes.pop(reversed_step))
                        t -= done
                        add_loss_gradient(t + 1, cot)
                elif isinstance(action, (Copy, Move)):
                    if action.to_storage == StorageType.WORK:
                        work, position = transfer(action), action.n  # no other name may hold it
                    else:
                        transfer(action)
                elif isinstance(action, EndReverse):
                    break
        finally:
            if disk_dir is not None:
                disk_dir.cleanup()

        result: dict[str, np.ndarray | float] = {n: cot[n] for n in names if n in state}
        result.update(run.finish_gradients())
        run.recycle_adjoint_buffers(result)
        run.give_back(issued=recycle)  # the reverse sweep has dropped every tape
        return value, result

    def _resolve_wrt(self, wrt, state, constants, controls, params) -> list[str]:
        if wrt is None:
            return list(state) + list(constants) + list(controls)
        names = [wrt] if isinstance(wrt, str) else list(wrt)
        known = set(state) | set(constants) | set(controls) | set(params)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise WrtError(
                f"wrt names {', '.join(repr(u) for u in unknown)}, not an input of this rollout "
                f"(inputs: {', '.join(sorted(known))})"
            )
        return names

    def objective(
        self, loss: Loss | Callable, wrt: str | Sequence[str], **fixed: object
    ) -> Callable[[Mapping[str, object]], tuple[float, dict[str, np.ndarray | float]]]:
        """``f(x) -> (value, grads)`` over the inputs in ``wrt``, the others fixed: for optimisers."""
        names = [wrt] if isinstance(wrt, str) else list(wrt)

        def value_and_grad(x: Mapping[str, object]) -> tuple[float, dict[str, np.ndarray | float]]:
            return self.value_and_grad(loss, wrt=names, **fixed, **x)

        return value_and_grad


class _Run:
    """One call's working context: fields kept padded between steps, and the sweeps.

    Every field the rollout handles lives in an array padded with the step's widest
    halo (per axis, the largest over its operators); each operator gets a view with
    its own halo. Kernels fill the ghost cells themselves, so states pass from one
    step to the next with no copy, and time-constant fields are padded once per call.
    """

    def __init__(self, rollout: Rollout, ops: list[CompiledStencil], state, constants, controls, params):
        self.rollout, self.ops, self.params = rollout, ops, params
        step = rollout.step
        halos = [k.halo for k in ops if isinstance(k, CompiledStencil)] or [((0, 0),) * step.ndim]
        self.halo = tuple(
            (max(h[axis][0] for h in halos), max(h[axis][1] for h in halos)) for axis in range(step.ndim)
        )
        arrays = {**state, **constants, **{n: c[0] for n, c in controls.items()}}
        shapes = []
        for k in ops:  # the same typed errors as a direct call, before any kernel runs
            if isinstance(k, CompiledStencil) and any(n in arrays for n in k.inputs):
                shapes.append(k.validate({n: arrays[n] for n in k.inputs if n in arrays}))
        known = shapes or [(np.shape(a), np.asarray(a).dtype) for a in arrays.values()][:1]
        grid, dtype = known[0]
        for other in known[1:]:
            if other != (grid, dtype):
                raise ShapeError(f"rollout: operators see different grids or dtypes: {known}")
        self.grid_shape, self.dtype = grid, dtype
        self.padded_shape = tuple(n + lo + hi for n, (lo, hi) in zip(grid, self.halo))
        self.layout_bytes = int(np.prod(self.padded_shape)) * np.dtype(dtype).itemsize
        # buffers kept by the rollout from its last call, and (once a sweep asks for it
        # with track_buffers) those this call hands out
        self.spare = rollout._take_buffers(self.padded_shape, dtype)
        self.issued: list[np.ndarray] | None = None
        self._inside = tuple(slice(lo, lo + n) for n, (lo, _) in zip(grid, self.halo))
        self.state_in = state
        self._padded_inputs: list[np.ndarray] = []
        self.constants = {n: self.pad(a, call_input=True) for n, a in constants.items()}
        self.controls = controls
        self._control_pad = {n: self.empty() for n in controls}
        self._views: dict[int, tuple[slice, ...] | None] = {}
        self._runners: dict[int, tuple] = {}  # see _forward_runner
        self.state_names = step.state
        self._pair_plan: tuple | None = None  # see reverse_pair
        self._adjoint_runners: dict[tuple[int, bool], tuple] = {}  # see _adjoint_runner
        # the padded initial state the stability check made, for the sweep to start from
        self._initial: dict[str, np.ndarray] | None = None
        self._seeds: dict[str, np.ndarray] | None = None  # see seed_buffers

    # --- layout ---------------------------------------------------------------------------

    def empty(self, track: bool = True) -> np.ndarray:
        """A padded buffer: a kept one if there is one (contents undefined).

        ``track=False`` for buffers made once per step that no sweep bounds (a step
        operator's padded results): they are never given back.
        """
        buffer = self.spare.pop() if self.spare else np.empty(self.padded_shape, self.dtype)
        if track and self.issued is not None:
            self.issued.append(buffer)
        return buffer

    def track_buffers(self) -> None:
        """Record the buffers handed out from now on, to give them back at the end.

        Only sweeps that hold a bounded number of buffers, or all of them anyway, track:
        a tracked buffer outlives its last use.
        """
        self.issued = []

    def give_back(self, issued: bool) -> None:
        """Return the unused kept buffers, and (``issued``) every one this call handed out.

        Only for buffers that nothing outside the rollout references: results are
        copies, gradients have buffers of their own, and the loss kept no state.
        """
        buffers = self.spare + (self.issued + self._padded_inputs if issued and self.issued is not None else [])
        self.spare, self.issued = [], None
        self.rollout._return_buffers(self.padded_shape, self.dtype, buffers)

    def zeros(self) -> np.ndarray:
        return np.zeros(self.grid_shape, self.dtype)

    def pad(self, array: np.ndarray, call_input: bool = False, into: list[np.ndarray] | None = None) -> np.ndarray:
        """``array`` copied into the grid cells of a padded buffer (ghost cells undefined).

        ``call_input``: the padded initial state or a time-constant field, made once per
        call and given back with the tracked buffers: without them, each call faulted in
        two fresh grid arrays (on this VM up to 6 ms each at 10^6 cells). ``into``: free
        buffers to take it from first (see :meth:`forward_step`).
        """
        padded = into.pop() if into else self.empty(track=False)
        if call_input:
            self._padded_inputs.append(padded)
        copy_into(padded[self._inside], array)  # in parallel on big grids (NumPy copies a view on one core)
        return padded

    def grid(self, padded: np.ndarray) -> np.ndarray:
        """The grid cells of a padded field (a view)."""
        return padded[self._inside]

    def grid_state(self, state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: self.grid(v) for n, v in state.items()}

    def view(self, padded: np.ndarray, k: CompiledStencil) -> np.ndarray:
        """``padded`` as operator ``k`` expects it: padded with ``k``'s own halo.

        ``padded`` itself where ``k``'s halo is the run's (every single-operator step):
        a view per field and step is a measurable part of a step on a small grid.
        """
        key = id(k)
        if key not in self._views:
            self._views[key] = None if tuple(k.halo) == self.halo else tuple(
                slice(big_lo - lo, size - (big_hi - hi))
                for (big_lo, big_hi), (lo, hi), size in zip(self.halo, k.halo, self.padded_shape)
            )
        index = self._views[key]
        return padded if index is None else padded[index]

    def initial_state(self) -> dict[str, np.ndarray]:
        """The initial state, padded (the one :meth:`check_stability` padded, the first time)."""
        if self._initial is not None:
            state, self._initial = self._initial, None
            return state
        return {n: self.pad(a, call_input=True) for n, a in self.state_in.items()}

    def external(self, t: int) -> dict[str, np.ndarray]:
        """Padded time-constant fields and the controls of step ``t``."""
        env = dict(self.constants)
        for n, c in self.controls.items():
            self._control_pad[n][self._inside] = c[t]
            env[n] = self._control_pad[n]
        return env

    def check_stability(self) -> None:
        # the check fills only ghost cells: the sweep starts from this padded state (one copy less)
        self._initial = self.initial_state()
        env = {**self.external(0), **self._initial}
        for k in self.ops:
            if not isinstance(k, CompiledStencil) or not k.spec.get("diagonal_fields"):
                continue
            padded = {n: self.view(env[n], k) for n in k.inputs}
            for field, low in k.min_diagonal_padded(padded, self.params).items():
                if low < 0:
                    warnings.warn(
                        f"operator {k.name!r}: the centre coefficient of {field} in {field}_new is "
                        f"{low:.3g} < 0 at t=0, i.e. a Courant (CFL) number of {1 - low:.3g} > 1; the "
                        "explicit step is not monotone and may be unstable: reduce the time step",
                        StabilityWarning,
                        stacklevel=4,
                    )

    # --- sweeps ---------------------------------------------------------------------------

    def forward_step(self, t: int, state, record: bool, into: list[np.ndarray] | None = None,
                     released: list[np.ndarray] | None = None):
        """Advance one step; return the new padded state and (if ``record``) what each vjp reads.

        ``into`` offers padded buffers that may be written over (popped as outputs need
        them, e.g. the state of two steps ago); new ones are allocated otherwise.
        ``released``, if given, receives the buffers this step wrote and no longer needs:
        outputs that a later operator of the step replaced, unless the tape holds them.
        Without that, a step of two stencils kept one buffer per step alive until the
        sweep ended.
        """
        env = {**(self.external(t) if self.controls else self.constants), **state}
        tape = []
        written: list[np.ndarray] = []
        for i, k in enumerate(self.ops):
            if not isinstance(k, CompiledStencil):  # a step operator on grid arrays (e.g. a linear solve)
                results, memo = k.step_forward({n: self.grid(env[n]) for n in k.inputs},
                                               {p: self.params[p] for p in k.params})
                if record:
                    tape.append({"__memo__": memo, **{n: env[n] for n in self.tape_fields(k)}})
                if self.rollout.check_finite:
                    self._non_finite(t, k.name, {n: np.asarray(v) for n, v in results.items()}, padded=False)
                padded = {n: self.pad(v, into=into) for n, v in results.items()}
                written.extend(padded.values())
                env.update(padded)
                continue
            outs = [into.pop() if into else self.empty() for _ in k.outputs]
            run, own_halo, recorded = self._forward_runner(i, k)
            if own_halo:  # the run's layout is the operator's: no views
                bad = run([env[n] for n in k.inputs], outs)
            else:
                bad = run([self.view(env[n], k) for n in k.inputs], [self.view(v, k) for v in outs])
            if bad and self.rollout.check_finite:  # counted by the kernel: no extra pass
                self._non_finite(t, k.name, dict(zip(k.outputs, outs)))
            if record:  # external fields are available again in the reverse sweep: never stored
                tape.append({n: env[n] for n in recorded})
            written.extend(outs)
            env.update(zip(k.outputs, outs))
        new_state = {n: env[n] for n in self.state_names}
        if released is not None and len(written) > len(new_state):  # else every output is state
            live = {id(a) for a in new_state.values()} | {id(a) for entry in tape for a in entry.values()}
            released.extend(b for b in written if id(b) not in live)
        return new_state, tape

    def _forward_runner(self, i: int, k: CompiledStencil):
        """Operator ``i``'s :meth:`~CompiledStencil.forward_runner` for this run, whether it takes
        the run's buffers as they are (its halo is the run's: no views), and its
        :meth:`tape_fields`."""
        entry = self._runners.get(i)
        if entry is None:
            entry = self._runners[i] = (k.forward_runner(k.padded_shape(self.grid_shape), self.params),
                                        tuple(k.halo) == self.halo, self.tape_fields(k))
        return entry

    def tape_fields(self, k) -> tuple[str, ...]:
        """The fields operator ``k``'s tape records: what its vjp reads (a step operator's: its
        inputs), less the time-constant fields and controls, which the reverse sweep has anyway."""
        reads = k.needs if isinstance(k, CompiledStencil) else k.inputs
        return tuple(n for n in reads if n not in self.constants and n not in self.controls)

    def _non_finite(self, t: int, operator: str, outs: Mapping[str, np.ndarray], padded: bool = True) -> None:
        """Raise for the first output of ``operator`` at step ``t`` that holds NaN or inf."""
        for name, value in outs.items():
            if not all_finite(self.grid(value) if padded else value):
                kind = "state field" if name in self.rollout.step.state else "field"
                raise SimulationError(
                    f"{kind} {name!r} became NaN or infinite at step {t + 1} of {self.rollout.steps} "
                    f"(operator {operator!r})"
                )

    def start_gradients(self, names: Sequence[str]) -> None:
        self.wanted_params = {p: 0.0 for p in names if p in self.params}
        self.wanted_controls = {n: np.zeros(self.controls[n].shape, self.dtype) for n in names if n in self.controls}
        # time-constant fields: one padded accumulator per operator reading them, folded once at the end
        stencils = [(i, k) for i, k in enumerate(self.ops) if isinstance(k, CompiledStencil)]
        self.constant_acc = {
            (i, n): np.zeros(k.padded_shape(self.grid_shape), self.dtype)
            for i, k in stencils for n in k.wrt_fields if n in self.constants
        }
        self._scratch = {
            (i, n): np.empty(k.padded_shape(self.grid_shape), self.dtype)
            for i, k in stencils for n in k.wrt_fields if n in self.controls
        }
        self.wanted_constants = {n for n in names if n in self.constants}
        self._adjoint_pairs: dict[tuple[int, str], list[np.ndarray]] = {}
        self.reuse_adjoint_buffers = False
        #: id(cotangent) -> (cotangent, the padded buffer whose grid cells it is, that buffer's halo)
        self._cotangent_padding: dict[int, tuple[np.ndarray, np.ndarray, tuple]] = {}
        self.plain_acc: dict[str, np.ndarray] = {}  # constant-field gradients from step operators
        k = self.ops[0]
        #: the operator whose adjoints run two steps at a time (``reverse_pair``), if any
        self.pair_operator = k if (
            config.fuse_adjoint_steps
            and len(self.ops) == 1
            and isinstance(k, CompiledStencil)
            and k.spec.get("has_periodic_pair", False)
            and set(k.outputs) == set(self.rollout.step.state)
            and not self.controls
            and not any(p in self.wanted_params for p in k.wrt_params)
        ) else None

    def reverse_step(self, t: int, tape, cot: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Adjoint of step ``t``: state cotangents after the step -> before it."""
        env_cot = cot  # consumed: each output cotangent is popped once used
        env = self.external(t)
        for i in reversed(range(len(self.ops))):
            k, recorded = self.ops[i], tape[i]
            out_cot = {n: env_cot.pop(n) for n in k.outputs if n in env_cot}
            if not out_cot:
                continue  # nothing downstream depends on this operator
            if not isinstance(k, CompiledStencil):
                self._reverse_operator(t, k, recorded, env, out_cot, env_cot)
                continue
            bars = {n: out_cot[n] if n in out_cot else self.zeros() for n in k.outputs}
            padded_bars = self._padded_cotangents(bars, k)
            padded = {n: self.view(recorded[n] if n in recorded else env[n], k) for n in k.needs}
            if k.wrt_fields and k.spec["has_adjoint_kernel"]:
                adj, add = self._adjoint_targets(i, k)  # in k.wrt_fields order
                run, inputs, cotangents = self._adjoint_runner(i, k, padded_bars is not None, add)
                unfolded = run([padded[n] for n in inputs],
                               [(bars if padded_bars is None else padded_bars)[c] for c in cotangents],
                               list(adj.values()))
                for n, buf in adj.items():
                    if add.get(n):
                        continue
                    value = k.fold_halo(n, buf) if unfolded else k.grid_cells(buf)
                    if n in self.wanted_controls:
                        self.wanted_controls[n][t] += value
                    elif n in self.constants or n in self.controls:
                        continue  # compiled with more adjoints than asked for
                    elif n in env_cot:
                        env_cot[n] += value
                    else:
                        env_cot[n] = value
                        self._cotangent_padding[id(value)] = (value, buf, k.halo)
            if k.wrt_params:
                for p, v in k.param_gradients_padded(bars, padded, self.params).items():
                    if p in self.wanted_params:
                        self.wanted_params[p] += v
        return self._state_cotangents(env_cot)

    def reverse_pair(self, t: int, tape, early_tape, cot: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """Adjoints of steps ``t`` and ``t - 1`` in one pass (``adjoint_periodic_pair``), or None.

        None, having changed nothing, where the rollout does not pair steps (see
        ``pair_operator``) or the cotangents are not grid cells of this run's padded
        buffers; the caller then runs :meth:`reverse_step`. Bitwise the same result.
        """
        k = self.pair_operator
        if k is None:
            return None
        padded_bars = self._padded_cotangents(cot, k)
        if padded_bars is None:
            return None
        adj, add = self._adjoint_targets(0, k)  # in k.wrt_fields order
        if self._pair_plan is None:
            self._pair_plan = self._plan_pair(k, add)
        run, cotangents, late, early, outputs = self._pair_plan
        late_tape, early_tape = tape[0], early_tape[0]
        run([padded_bars[c] for c in cotangents], [late_tape[n] if value is None else value for n, value in late],
            [early_tape[n] for n in early], list(adj.values()))
        result = {}
        for n in outputs:
            result[n] = value = k.grid_cells(adj[n])
            self._cotangent_padding[id(value)] = (value, adj[n], k.halo)
        return self._state_cotangents(result)

    def _plan_pair(self, k: CompiledStencil, add: Mapping[str, bool]) -> tuple:
        """What :meth:`reverse_pair` looks up once per sweep: the bound fused adjoint (the only
        operator: its layout is the run's, no views; ``add``: which fields accumulate, the
        same on every call), its cotangents' order, its inputs (None for those on the tape,
        else the time-constant field), the early step's taped inputs, and its outputs."""
        recorded = self.tape_fields(k)
        inputs = k.spec["adjoint_inputs"]  # time-constant ones are not on the tape (no controls here)
        late = tuple((n, None if n in recorded else self.constants[n]) for n in inputs)
        early = tuple(n for n in inputs if n in k.outputs)
        run = k.adjoint_pair_runner(self.padded_shape, self.dtype, self.params, add)
        return run, tuple(k.spec["adjoint_cotangents"]), late, early, tuple(k.outputs)

    def _adjoint_runner(self, i: int, k: CompiledStencil, periodic: bool, add: Mapping[str, bool]) -> tuple:
        """Operator ``i``'s :meth:`~CompiledStencil.adjoint_runner` for this run (``periodic``: the
        fold-free kernel, on padded cotangents; ``add``: which fields accumulate, the same on
        every call), with the orders of its inputs and cotangents."""
        entry = self._adjoint_runners.get((i, periodic))
        if entry is None:
            entry = self._adjoint_runners[(i, periodic)] = (
                k.adjoint_runner(k.padded_shape(self.grid_shape), self.params, add, periodic),
                tuple(k.spec["adjoint_inputs"]), tuple(k.spec["adjoint_cotangents"]),
            )
        return entry

    def _adjoint_targets(self, i: int, k: CompiledStencil) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
        """Padded arrays operator ``i``'s adjoint writes, per field it differentiates, and which accumulate."""
        adj, add = {}, {}
        for n in k.wrt_fields:
            if (i, n) in self.constant_acc:
                adj[n], add[n] = self.constant_acc[(i, n)], True
            elif (i, n) in self._scratch:
                adj[n] = self._scratch[(i, n)]
            elif self.reuse_adjoint_buffers:
                adj[n] = self._alternate((i, n), k)
            else:
                adj[n] = np.empty(k.padded_shape(self.grid_shape), self.dtype)
        return adj, add

    def _state_cotangents(self, env_cot: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The state fields' cotangents (zero where none arrived); forget the padding of consumed ones."""
        result = {n: env_cot[n] if n in env_cot else self.zeros() for n in self.rollout.step.state}
        live = {id(v) for v in result.values()}  # forget (and free) the padding of consumed cotangents
        self._cotangent_padding = {i: e for i, e in self._cotangent_padding.items() if i in live}
        return result

    def seed_buffers(self) -> dict[str, np.ndarray]:
        """Where the final state's cotangents go: grid cells of padded buffers, per state field.

        Where the last operator to write a state field has a periodic adjoint, its
        cotangent lives in the grid cells of a padded buffer of that operator's halo,
        so the first reverse step runs the fold-free periodic adjoint like every later
        one. The buffer is a kept one where the layouts agree. The loss writes its
        gradient there (:meth:`~dpgen.losses.Loss.evaluate` with ``out``): a new array
        per call cost the 1-D upwind rollout at 10^6 cells 6 ms in fresh pages.
        """
        if self._seeds is None:
            self._seeds = {}
            seen: set[str] = set()
            for k in reversed(self.ops):
                names = [n for n in k.outputs if n in self.rollout.step.state and n not in seen]
                seen.update(k.outputs)
                if not names or not isinstance(k, CompiledStencil) or not k.spec["has_periodic_adjoint"]:
                    continue
                shape = k.padded_shape(self.grid_shape)
                for n in names:
                    buffer = self.empty() if shape == self.padded_shape else np.empty(shape, self.dtype)
                    cells = k.grid_cells(buffer)
                    self._cotangent_padding[id(cells)] = (cells, buffer, k.halo)
                    self._seeds[n] = cells
        return self._seeds

    def seed_cotangents(self, grads: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """The final state's cotangents (``None``: zero), laid out for the first adjoint to read them.

        In the buffers of :meth:`seed_buffers` (copied there unless the loss wrote them
        there), else as given.
        """
        cot = dict(grads)
        for n, cells in self.seed_buffers().items():
            if n not in cot:
                continue
            if cot[n] is None:
                cells[...] = 0.0
            elif cot[n] is not cells:
                copy_into(cells, cot[n])
            cot[n] = cells
        self._seeds = {}  # the sweep frees each buffer once it has read it
        return {n: self.zeros() if g is None else g for n, g in cot.items()}

    def _padded_cotangents(self, bars: Mapping[str, np.ndarray], k: CompiledStencil) -> dict[str, np.ndarray] | None:
        """The padded buffers of this run whose grid cells are ``bars``, as ``k`` pads them; else None.

        An operator's adjoint writes a state cotangent into a padded buffer of its own,
        and the grid cells of that buffer are the cotangent the next (earlier) operator
        reads: a periodic stencil's ``adjoint_periodic`` then reads it padded, filling
        the ghost cells, which hold nothing anyone reads any more.
        """
        if not k.spec["has_periodic_adjoint"]:
            return None
        found = {}
        for n, bar in bars.items():
            entry = self._cotangent_padding.get(id(bar))
            if entry is None or entry[0] is not bar or entry[2] != k.halo:
                return None  # not a buffer of this run, or padded by an operator with another halo
            found[n] = entry[1]
        return found

    def _alternate(self, key: tuple[int, str], k: CompiledStencil) -> np.ndarray:
        """One of two padded adjoint buffers of operator input ``key``, in turn.

        What an operator's adjoint writes at reverse step ``t`` is read during step ``t``
        (by an earlier operator) or ``t - 1`` (as the state cotangent) at the latest, and
        at ``t - 1`` the other buffer is written: no adjoint buffer is allocated per step.
        """
        pair = self._adjoint_pairs.get(key)
        if pair is None:
            shape = k.padded_shape(self.grid_shape)
            # kept buffers where the layouts agree (see recycle_adjoint_buffers)
            pair = self._adjoint_pairs[key] = [
                self.empty(track=False) if shape == self.padded_shape else np.empty(shape, self.dtype)
                for _ in range(2)
            ]
        pair.reverse()
        return pair[0]

    def recycle_adjoint_buffers(self, results: Mapping[str, object]) -> None:
        """Keep, for the next call, the adjoint buffers that no array in ``results`` lies in.

        Of the two buffers per field (:meth:`_alternate`) one holds the initial state's
        gradient, which the caller gets; the other is free once the sweep is done (a
        new one per call cost the 1-D upwind rollout at 10^6 cells some ms in fresh pages).
        """
        returned = [r for r in results.values() if isinstance(r, np.ndarray)]
        for pair in self._adjoint_pairs.values():
            self.spare.extend(b for b in pair if b.shape == self.padded_shape
                              and not any(np.may_share_memory(b, r) for r in returned))
        self._adjoint_pairs = {}

    def _reverse_operator(self, t, k, recorded, env, out_cot, env_cot) -> None:
        """Reverse of a step operator: its vjp on grid arrays, routed like a stencil's."""
        fields = {n: self.grid(recorded[n] if n in recorded else env[n]) for n in k.inputs}
        grads = k.step_vjp(out_cot, fields, recorded["__memo__"], {p: self.params[p] for p in k.params})
        for n, value in grads.items():
            if n in self.params:
                if n in self.wanted_params:
                    self.wanted_params[n] += value
            elif n in self.wanted_controls:
                self.wanted_controls[n][t] += value
            elif n in self.constants:
                if n in self.wanted_constants:
                    acc = self.plain_acc.get(n)
                    self.plain_acc[n] = value.copy() if acc is None else np.add(acc, value, out=acc)
            elif n in self.controls:
                continue
            elif n in env_cot:
                env_cot[n] += value
            else:
                env_cot[n] = value

    def finish_gradients(self) -> dict[str, np.ndarray | float]:
        grads: dict[str, np.ndarray | float] = {}
        for (i, n), acc in self.constant_acc.items():
            folded = self.ops[i].fold_halo(n, acc)
            grads[n] = folded if n not in grads else grads[n] + folded  # type: ignore[operator]
        for n, acc in self.plain_acc.items():
            grads[n] = acc if n not in grads else grads[n] + acc  # type: ignore[operator]
        for n in self.wanted_constants - set(grads):
            grads[n] = self.zeros()  # read only by operators the loss does not depend on
        grads.update(self.wanted_controls)
        grads.update(self.wanted_params)
        return grads


__all__ = ["Rollout", "RolloutStats", "Step", "parse_bytes"]
