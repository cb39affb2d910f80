"""How a layer's cells are programmed to their targets: one shot with the
device's programming noise, or write-verify with its pulse physics.

Each policy is a final module with one method, `program(device, g_pos,
g_neg, key=, circuit=)`, returning the programmed `Crossbar`. Cells start
from fresh devices (`device.init`: device-to-device draws).

The gradient rule of programming (the same for every device and policy, see
`straight_through`): the programmed conductance has the value the device
produced, its derivative with respect to the target is that of the target
clipped to the window (1 inside, 0 outside: straight through nearest-level
quantization, noise and verify loops), and its derivative with respect to
the device's parameters is the device's own expression evaluated at the
realised target (programming-noise scale, level positions, window), so a
card parameter can be designed by gradient.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, AbstractDeviceState, check_range
from xbar.array.crossbar import Crossbar
from xbar.circuits.ideal import AbstractCircuit, IdealCircuit
from xbar.mapping.write_verify import write_verify


def straight_through(
    device: AbstractDevice, state: AbstractDeviceState, g_target
) -> AbstractDeviceState:
    """`state` (programmed from `stop_gradient(g_target)`) whose conductance
    passes the target's gradient straight through: value `state.g`,
    derivative 1 inside the window (bounds included) and 0 outside with
    respect to the target, plus whatever `state.g` carries with respect to the
    device's parameters. The term goes on every field the state builds its
    conductance from (`AbstractDeviceState.with_conductance_shift`: `g`, and
    the non-volatile `w` of volatile devices)."""
    t = jnp.broadcast_to(g_target, state.g.shape)
    # A mask, not jnp.clip: clip's derivative is 1/2 at a bound, and targets
    # sit exactly on g_min (an idle cell, a zero digit) or g_max (full scale).
    inside = (t >= device.g_min) & (t <= device.g_max)
    ste = jnp.where(inside, t - jax.lax.stop_gradient(t), 0.0)
    return state.with_conductance_shift(ste)


def _without_neg(xb: Crossbar) -> Crossbar:
    """A single-device scheme's crossbar: the G- array has conductance 0 (no
    device, no current, no noise)."""
    neg = eqx.tree_at(lambda s: s.g, xb.neg, jnp.zeros_like(xb.neg.g))
    return Crossbar(xb.device, xb.pos, neg, xb.circuit)


class AbstractProgramming(eqx.Module):
    """A programming policy."""

    @abc.abstractmethod
    def program_cells(
        self, device: AbstractDevice, g_target, *, key: PRNGKeyArray
    ) -> AbstractDeviceState:
        """Fresh cells (any shape) programmed to `g_target` (S), which the
        caller passes without gradient (`program` adds the straight-through
        path)."""

    def program_straight_through(
        self, device: AbstractDevice, g_target, *, key: PRNGKeyArray
    ) -> AbstractDeviceState:
        """`program_cells` under the gradient rule of the module docstring."""
        state = self.program_cells(device, jax.lax.stop_gradient(g_target), key=key)
        return straight_through(device, state, g_target)

    def program(
        self,
        device: AbstractDevice,
        g_pos: Float[Array, "tr tc R C"],
        g_neg: Float[Array, "tr tc R C"] | None,
        *,
        key: PRNGKeyArray,
        circuit: AbstractCircuit | None = None,
    ) -> Crossbar:
        """Program a pair of target arrays; `g_neg=None` (single-device
        schemes) leaves the G- array empty."""
        circuit = IdealCircuit() if circuit is None else circuit
        k_p, k_n = jax.random.split(key)
        pos = self.program_straight_through(device, g_pos, key=k_p)
        neg = self.program_straight_through(
            device, g_pos if g_neg is None else g_neg, key=k_n
        )
        xb = Crossbar(device, pos, neg, circuit)
        return xb if g_neg is not None else _without_neg(xb)


class OneShot(AbstractProgramming):
    """One programming operation per cell, with the device's programming
    noise (`device.program`)."""

    def program_cells(self, device, g_target, *, key):
        k_init, k_prog = jax.random.split(key)
        return device.program(
            device.init(g_target.shape, key=k_init), g_target, key=k_prog
        )


class WriteVerify(AbstractProgramming):
    """Program-and-verify with the device's own pulse response (`write_verify`):
    read every cell, pulse those farther than `tol` from the target, repeat.

    Args:
        tol_fraction: accepted |read - target| as a fraction of the window
            `g_max - g_min`, in (0, 1].
        max_pulses: pulse budget per cell, integer >= 1.
        max_burst: most pulses per round and cell, integer >= 1.
    """

    tol_fraction: float = 0.01
    max_pulses: int = eqx.field(static=True, default=100)
    max_burst: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        check_range("tol_fraction", self.tol_fraction, 0.0, 1.0, lo_open=True)
        for name in ("max_pulses", "max_burst"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {name}={v!r}")

    def program_cells(self, device, g_target, *, key):
        # The verify loop is a while_loop (no reverse-mode derivative): the
        # device enters it without gradient; `program` passes the target's
        # gradient straight through, and no card parameter gets one here.
        device = jax.tree.map(
            lambda x: jax.lax.stop_gradient(x) if eqx.is_array(x) else x, device
        )
        k_init, k_wv = jax.random.split(key)
        state = device.init(g_target.shape, key=k_init)
        tol = self.tol_fraction * (device.g_max - device.g_min)
        return write_verify(
            device,
            state,
            g_target,
            key=k_wv,
            tol=tol,
            max_pulses=self.max_pulses,
            max_burst=self.max_burst,
        ).state
