"""Circuit models for the tiles: exact and fast IR-drop solves as `AbstractCircuit`s.

`Crossbar(circuit=ExactCircuit(r_row_ohm=..., ...))` (or
`AnalogLinear.from_weights(..., circuit=...)`) makes every tile read its column
currents through the wires: G+ and G- are two physical arrays, each solved with
its own IR drop, and the differential current is their difference.

Read noise under wire resistance: each cell's conductance deviation `s_ij` is
propagated to first order with the ideal-circuit formula evaluated at the
solved cell voltage, `var_j = sum_i (dI_ij/dg * s_ij)^2` with
`I_ij = I(g_ij, u_ij - w_ij)`. This treats a perturbation of cell (i, j)'s
current as reaching its own column terminal in full. The neglected part, the
share that leaks through neighbouring cells into other lines, is of order
`N r_wire g_cell` relative to the term kept (the wires are the low-impedance
path), so the approximation is of the same order as the IR drop itself is
small; the exact first-order variance would need one adjoint solve per column
per input vector, the cost of the whole MVM again for every column.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from devices.base import check_range
from xbar.circuits.ideal import AbstractCircuit
from xbar.circuits.line_relaxation import relax_crossbar
from xbar.circuits.nodal import Wires, solve_crossbar


def _as_r(x):
    return jnp.asarray(x, jnp.float32)


def _wires(c, dtype) -> Wires:
    return Wires(*(jnp.asarray(x, dtype) for x in (
        c.r_row_ohm, c.r_col_ohm, c.r_driver_ohm, c.r_sense_ohm, c.r_access_ohm)))


def _check(c):
    for name in ("r_row_ohm", "r_col_ohm", "r_driver_ohm", "r_sense_ohm",
                 "r_access_ohm"):
        check_range(name, getattr(c, name), 0.0, unit="ohm")


def _tile_stats(solve_tile, device, pos, neg, v, t_s, r_acc):
    """Vmap `solve_tile(g, v_tile) -> (u, w, i_col)` over G+/G- and all tiles."""
    g_p, s_p = device.read_stats(pos, t_s)
    g_n, s_n = device.read_stats(neg, t_s)
    dtype = g_p.dtype
    v = jnp.asarray(v, dtype)
    g = jnp.stack([g_p, g_n])  # (2, tr, tc, R, C)
    s = jnp.stack([s_p, s_n])
    vt = jnp.moveaxis(v, -2, 0)  # (tr, *batch, R)
    r_acc = jnp.asarray(r_acc, dtype)

    def per_tile(g1, s1, v1):
        u, w, i_col = solve_tile(g1, v1)
        dv = u - w  # (*batch, R, C)
        if device.linear_iv:
            d = dv * jnp.broadcast_to(s1 / (1.0 + g1 * r_acc) ** 2, dv.shape)
        else:
            gb = jnp.broadcast_to(g1, dv.shape)
            d = jax.jvp(lambda gg: device.current(gg, dv), (gb,),
                        (jnp.broadcast_to(s1, dv.shape),))[1]
        return i_col, jnp.sum(d * d, axis=-2)

    f = jax.vmap(per_tile, in_axes=(0, 0, None))  # G+ / G-
    f = jax.vmap(f, in_axes=(1, 1, None), out_axes=1)  # tile columns
    f = jax.vmap(f, in_axes=(1, 1, 0), out_axes=1)  # tile rows
    i_col, var = f(g, s, vt)  # (2, tr, tc, *batch, C)
    mean = i_col[0] - i_col[1]
    var = var[0] + var[1]
    nb = v.ndim - 2

    def to_out(a):  # (tr, tc, *batch, C) -> (*batch, tr, tc, C)
        return jnp.moveaxis(a, (0, 1), (nb, nb + 1))

    return to_out(mean), jnp.sqrt(to_out(var))


class ExactCircuit(AbstractCircuit):
    """Tiles read through resistive wires, solved exactly (`solve_crossbar`).

    Args:
        r_row_ohm, r_col_ohm: row / column wire resistance per cell pitch (ohm).
        r_driver_ohm, r_sense_ohm: driver and sense-amplifier resistance (ohm).
        r_access_ohm: 1T1R access resistance in series with each cell (ohm).
        rtol: solver tolerance on node voltages relative to the largest input
            (static; None: 1e-11 in float64, 2e-6 in float32).
        max_steps: CG iteration limit (static).

    Every resistance is an array field (a sweep may vmap over it); all >= 0.
    Non-linear devices (`device.linear_iv == False`) are solved by Newton.
    """

    r_row_ohm: jax.Array = eqx.field(converter=_as_r, default=1.0)
    r_col_ohm: jax.Array = eqx.field(converter=_as_r, default=1.0)
    r_driver_ohm: jax.Array = eqx.field(converter=_as_r, default=0.0)
    r_sense_ohm: jax.Array = eqx.field(converter=_as_r, default=0.0)
    r_access_ohm: jax.Array = eqx.field(converter=_as_r, default=0.0)
    rtol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=2000)

    def __check_init__(self):
        _check(self)

    def current_stats(self, device, pos, neg, v, t_s):
        cell = None if device.linear_iv else device.current

        def solve_tile(g1, v1):
            sol = solve_crossbar(g1, v1, _wires(self, g1.dtype), cell_current=cell,
                                 rtol=self.rtol, max_steps=self.max_steps)
            return sol.u, sol.w, sol.i_col

        return _tile_stats(solve_tile, device, pos, neg, v, t_s, self.r_access_ohm)


class FastCircuit(AbstractCircuit):
    """Tiles read through resistive wires, solved approximately by `n_sweeps`
    line-relaxation sweeps (`relax_crossbar`); same fields as `ExactCircuit`.

    Args:
        n_sweeps: number of row+column sweeps (static, >= 1).
    """

    r_row_ohm: jax.Array = eqx.field(converter=_as_r, default=1.0)
    r_col_ohm: jax.Array = eqx.field(converter=_as_r, default=1.0)
    r_driver_ohm: jax.Array = eqx.field(converter=_as_r, default=0.0)
    r_sense_ohm: jax.Array = eqx.field(converter=_as_r, default=0.0)
    r_access_ohm: jax.Array = eqx.field(converter=_as_r, default=0.0)
    n_sweeps: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        _check(self)
        if not isinstance(self.n_sweeps, int) or self.n_sweeps < 1:
            raise ValueError(
                f"n_sweeps must be an int in [1, inf); got n_sweeps={self.n_sweeps}")

    def current_stats(self, device, pos, neg, v, t_s):
        cell = None if device.linear_iv else device.current

        def solve_tile(g1, v1):
            return relax_crossbar(g1, v1, _wires(self, g1.dtype),
                                  n_sweeps=self.n_sweeps, cell_current=cell)

        return _tile_stats(solve_tile, device, pos, neg, v, t_s, self.r_access_ohm)
