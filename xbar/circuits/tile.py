"""Circuit models for the tiles: exact and fast IR-drop solves as `AbstractCircuit`s.

`Crossbar(circuit=ExactCircuit(Wires(r_row_ohm=..., ...)))` (or
`AnalogLinear.from_weights(..., circuit=...)`) makes every tile read its column
currents through the wires: G+ and G- are two physical arrays, each solved with
its own IR drop, and the differential current is their difference. Both
circuits hold their resistances as one `Wires` field (every resistance
defaults to 0 ohm, so say which wires you mean).

Read noise under wire resistance: each cell's conductance deviation `s_ij`
changes its own current by `dI_ij/dg * s_ij` at the solved cell voltage
(`I_ij = I(g_ij, u_ij - w_ij)`), and that change reaches column k's terminal
with the share `T[k, i, j]` that the circuit lets through (`_transfer`: by
reciprocity, the voltage across the cell when column k's terminal is driven
at 1 V, one more solve per tile with one right-hand side per column). The
variance `var_k = sum_ij (T[k, i, j] dI_ij/dg s_ij)^2` is exact to first
order: it matches the Jacobian of the exact solve to 1e-9 (float64) and
Monte Carlo with exact solves within sampling error at 1-20 ohm
(tests/test_physics_irdrop.py). `noise_transfer=False` keeps the cheap form
`T[k, i, j] = [k == j]` (a cell's noise reaches its own column in full), which
over-estimates the variance by a relative amount of order `N^2 r_wire g_mean`
(N cells per line): measured +1.4 %, +6.2 % and +24 % on 16 x 16 tiles
(g ~ U(1, 100) uS) at 1, 5 and 20 ohm per segment, and +4.1 %, +19 % and
+74 % on 32 x 32 tiles. See the read-noise and circuit-solver sections of
`docs/methods.md`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from xbar.circuits.ideal import AbstractCircuit, safe_sqrt
from xbar.circuits.line_relaxation import solve_lines
from xbar.circuits.lines import Wires
from xbar.circuits.nodal import RESULTS, solve_crossbar


def _cast(wires: Wires, dtype) -> Wires:
    return jax.tree.map(lambda x: jnp.asarray(x, dtype), wires)


def _transposed(wires: Wires) -> Wires:
    """The wires of the tile turned so that its columns are rows (see `_transfer`)."""
    return Wires(r_row_ohm=wires.r_col_ohm, r_col_ohm=wires.r_row_ohm,
                 r_driver_ohm=wires.r_sense_ohm, r_sense_ohm=wires.r_driver_ohm,
                 r_access_ohm=wires.r_access_ohm)


def _transfer(solve, g1, wires):
    """Share `T[j, i, k]` of a unit current injected across cell (i, k) (from
    its row node to its column node) that reaches column j's terminal, `(C, R, C)`.

    By reciprocity it is the voltage across cell (i, k) when column j's
    terminal is driven at 1 V and every other source is at 0 V: the adjoint of
    the read. That circuit is the tile turned by a half turn and transposed
    (cell (i, k) at (C-1-k, R-1-i), rows and columns, drivers and sense
    amplifiers swapped), read with the unit vectors as inputs: one solve with
    C right-hand sides (`solve(g, v, wires, None) -> (u, w, i_col, ok)`, ohmic
    cells of conductance g). No wires:
    `T[j, i, k] = [j == k]`.
    """
    g_t = g1[::-1, ::-1].T  # (C, R)
    n_c = g_t.shape[0]
    u, w, _, ok = solve(g_t, jnp.eye(n_c, dtype=g1.dtype), _transposed(wires), None)
    d = (u - w)[::-1, ::-1, ::-1]  # (C_j, C_k, R_i)
    return jnp.swapaxes(d, 1, 2), ok


def _tile_stats(solve, device, pos, neg, v, t_s, wires, noise_transfer):
    """Vmap `solve(g, v_tile, wires, cell_current) -> (u, w, i_col, ok)` over
    G+/G- and all tiles; `ok` False makes the tile's currents NaN.

    Read noise: each cell's current deviation `d_ik` (its conductance
    std times dI/dg at its solved voltage) reaches column j's terminal with
    the share `T[j, i, k]` (`_transfer`), so `var_j = sum_ik (T[j, i, k] d_ik)^2`
    (exact to first order); with `noise_transfer` False, `T = [j == k]`.
    """
    g_p, s_p = device.read_stats(pos, t_s)
    g_n, s_n = device.read_stats(neg, t_s)
    dtype = g_p.dtype
    v = jnp.asarray(v, dtype)
    g = jnp.stack([g_p, g_n])  # (2, tr, tc, R, C)
    s = jnp.stack([s_p, s_n])
    vt = jnp.moveaxis(v, -2, 0)  # (tr, *batch, R)
    wires = _cast(wires, dtype)
    r_acc = wires.r_access_ohm
    cell = None if device.linear_iv else device.current

    def per_tile(g1, s1, v1):
        u, w, i_col, ok = solve(g1, v1, wires, cell)
        i_col = jnp.where(ok, i_col, jnp.nan)
        dv = u - w  # (*batch, R, C)
        if device.linear_iv:
            d = dv * jnp.broadcast_to(s1 / (1.0 + g1 * r_acc) ** 2, dv.shape)
        else:
            gb = jnp.broadcast_to(g1, dv.shape)
            d = jax.jvp(lambda gg: device.current(gg, dv), (gb,),
                        (jnp.broadcast_to(s1, dv.shape),))[1]
        if not noise_transfer:
            return i_col, jnp.sum(d * d, axis=-2)
        if device.linear_iv:  # the linear circuit: one transfer for every input
            t, ok_t = _transfer(solve, g1, wires)
            var = jnp.einsum("...ik,jik->...j", d * d, t * t)
        else:  # linearised at each input's operating point
            gd = jax.jvp(lambda vv: device.current(jnp.broadcast_to(g1, vv.shape), vv),
                         (dv,), (jnp.ones_like(dv),))[1]
            flat = gd.reshape((-1,) + g1.shape)
            lin = eqx.tree_at(lambda x: x.r_access_ohm, wires, jnp.zeros((), dtype))
            t, ok_t = jax.vmap(lambda gg: _transfer(solve, gg, lin))(flat)
            t = t.reshape(dv.shape[:-2] + t.shape[1:])
            var = jnp.einsum("...ik,...jik->...j", d * d, t * t)
            ok_t = jnp.all(ok_t)
        return i_col, jnp.where(ok_t, var, jnp.nan)

    f = jax.vmap(per_tile, in_axes=(0, 0, None))  # G+ / G-
    f = jax.vmap(f, in_axes=(1, 1, None), out_axes=1)  # tile columns
    f = jax.vmap(f, in_axes=(1, 1, 0), out_axes=1)  # tile rows
    i_col, var = f(g, s, vt)  # (2, tr, tc, *batch, C)
    mean = i_col[0] - i_col[1]
    var = var[0] + var[1]
    nb = v.ndim - 2

    def to_out(a):  # (tr, tc, *batch, C) -> (*batch, tr, tc, C)
        return jnp.moveaxis(a, (0, 1), (nb, nb + 1))

    # safe_sqrt: zero inputs or noise-free cells give zero variance, where the
    # gradient of a plain sqrt is NaN.
    return to_out(mean), safe_sqrt(to_out(var))


class ExactCircuit(AbstractCircuit):
    """Tiles read through resistive wires, solved exactly (`solve_crossbar`).

    Args:
        wires: the wire, driver, sense and access resistances (array fields, a
            sweep may vmap over them; each defaults to 0 ohm).
        rtol: solver tolerance on node voltages relative to the largest input
            (static; None: 1e-11 in float64, 2e-6 in float32).
        max_steps: CG iteration limit (static).
        throw: raise when a tile's solve fails (static, default). With False,
            the currents of a tile whose solve did not succeed are NaN instead,
            so a vmapped sweep records the failed points (see `RESULTS`).
        noise_transfer: propagate each cell's read noise to every column
            terminal through the solved circuit (static, default True): exact
            to first order, at the cost of one more solve per tile with one
            right-hand side per column (per input vector for non-linear cells).
            False: each cell's noise current reaches its own column in full,
            which over-estimates the variance by about `N^2 r_wire g_mean`
            (see the module docstring); use it only where that is small.

    Non-linear devices (`device.linear_iv == False`) are solved by Newton.
    """

    wires: Wires
    rtol: float | None = eqx.field(static=True, default=None)
    max_steps: int = eqx.field(static=True, default=2000)
    throw: bool = eqx.field(static=True, default=True)
    noise_transfer: bool = eqx.field(static=True, default=True)

    def current_stats(self, device, pos, neg, v, t_s):
        def solve_tile(g1, v1, wires, cell):
            sol = solve_crossbar(g1, v1, wires, cell_current=cell, rtol=self.rtol,
                                 max_steps=self.max_steps, throw=self.throw)
            return sol.u, sol.w, sol.i_col, sol.result == RESULTS.successful

        return _tile_stats(solve_tile, device, pos, neg, v, t_s, self.wires,
                           self.noise_transfer)


class FastCircuit(AbstractCircuit):
    """Tiles read through resistive wires, solved approximately by `n_sweeps`
    line-relaxation sweeps (`solve_lines`). A fixed number of sweeps has no
    convergence test, so it cannot fail and has no `throw`.

    The error of a fixed number of sweeps grows quickly with the array size
    and the wire resistance (2 sweeps: 0.3 % of the largest column current on
    128 x 128 at 1 ohm, 6 % on 256 x 256, cells 1-100 uS): measure it against
    `ExactCircuit` on the arrays at hand and choose the sweeps from that, as
    `experiments/ir_drop.py` does per point.

    Args:
        wires: as for `ExactCircuit`.
        n_sweeps: number of row+column sweeps (static, >= 1); the transfer
            of the read noise is solved with the same sweeps.
        noise_transfer: as for `ExactCircuit`.
    """

    wires: Wires
    n_sweeps: int = eqx.field(static=True, default=2)
    noise_transfer: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if not isinstance(self.n_sweeps, int) or self.n_sweeps < 1:
            raise ValueError(
                f"n_sweeps must be an int in [1, inf); got n_sweeps={self.n_sweeps}")

    def current_stats(self, device, pos, neg, v, t_s):
        def solve_tile(g1, v1, wires, cell):
            u, w, i_col = solve_lines(g1, v1, wires, n_sweeps=self.n_sweeps,
                                      cell_current=cell)
            return u, w, i_col, jnp.asarray(True)

        return _tile_stats(solve_tile, device, pos, neg, v, t_s, self.wires,
                           self.noise_transfer)
