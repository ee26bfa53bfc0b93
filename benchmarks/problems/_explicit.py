"""Byte counts and the bandwidth limit shared by the explicit rollouts (upwind, diffusion).

Both steps read the state ``x`` and one time-constant field ``a`` and write ``x_new``;
their adjoints read the cotangent, the state and ``a``, and update ``a_bar`` and the
cotangent. With every state stored ("store all"), the least memory traffic a
value+gradient can have is

* the stored states, written once in the forward sweep and read once in the reverse
  sweep: ``2 T N`` doubles, streamed to and from DRAM (they outgrow the cache);
* per step, the fields a kernel touches, which stay in cache: forward 3 (read ``x``,
  ``a``; write ``x_new``), reverse 6 (read ``x_bar``, ``x``, ``a``, ``a_bar``; write
  ``x_bar_new``, ``a_bar``): ``9 T N`` doubles.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..harness import DpgenImplementation

DOUBLE = 8
BYTES_NOTE = ("GB/s = minimal bytes / median time. Forward: 3 arrays per step (read the state and the "
              "coefficient, write the new state). Value+gradient: the stored states written once and read once "
              "(2 T N doubles) plus 9 arrays per step through the cache (forward 3, reverse 6). The same count "
              "for every row.")


def traffic(cells: int, steps: int) -> dict[str, int]:
    """Minimal bytes of one forward run, one value+gradient, and the stored states."""
    return {
        "forward": 3 * steps * cells * DOUBLE,
        "value_and_grad": (2 + 9) * steps * cells * DOUBLE,
        "states": steps * cells * DOUBLE,
    }


def limits(cells: int, steps: int, probe: Mapping[str, Any]) -> dict[str, Any]:
    """Time limits (seconds) from the bandwidth probe: states at the DRAM rate, per-step fields in cache."""
    dram = probe["large"]["gbs"] * 1e9
    cache = probe["cache"]["gbs"] * 1e9
    states = 2 * steps * cells * DOUBLE
    per_step = 9 * steps * cells * DOUBLE
    return {
        "forward": 3 * steps * cells * DOUBLE / cache,
        "value_and_grad": states / dram + per_step / cache,
        "explain": (f"{states / 1e6:.1f} MB of states (written once, read once) at {dram / 1e9:.1f} GB/s "
                    f"+ {per_step / 1e6:.1f} MB of per-step fields at the in-cache {cache / 1e9:.1f} GB/s"),
    }


class DpgenRollout(DpgenImplementation):
    """A dpgen ``Rollout`` of one stencil: ``run`` for the forward, ``value_and_grad`` for the rest.

    Subclasses set ``stencil()``, ``state`` (the state field), ``wrt`` and ``inputs(data)``.
    """

    state: str = ""
    wrt: tuple[str, ...] = ()

    @staticmethod
    def stencil():  # pragma: no cover - overridden
        raise NotImplementedError

    @staticmethod
    def inputs(data: Mapping[str, Any]) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        import dpgen as dp

        self.sim = dp.Rollout(dp.Step([self.stencil()]), data["T"])
        self.loss = dp.losses.L2(data["target"], field=self.state)
        self.args = self.inputs(data)

    def forward(self):
        return self.sim.run(**self.args)[self.state]

    def value_and_grad(self):
        return self.sim.value_and_grad(self.loss, wrt=self.wrt, **self.args)
