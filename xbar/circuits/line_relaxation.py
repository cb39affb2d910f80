"""Fast approximate crossbar solve: a fixed number of line-relaxation sweeps.

Start from the ideal circuit (every row node at its driver voltage, every
column node at its terminal voltage), then alternate exact tridiagonal solves
of all rows (column voltages frozen) and of all columns (row voltages frozen):
block Gauss-Seidel on the nodal system of `xbar.circuits.nodal` (see the
circuit-solver section of `docs/methods.md`). Each sweep costs two
batched tridiagonal solves, no convergence test, so the cost is fixed and the
derivative is the unrolled one. The error against the exact solve shrinks
geometrically with the sweeps at a rate set by `N * r_wire * g_cell`; its size
against array size and wire resistance is measured in `experiments/ir_drop.py`
and `benchmarks/solver.py`. Non-linear cells are handled by Picard iteration
on the chord conductance `I(v) / v` from the previous sweep. Compiled once
per shape and static option (`eqx.filter_jit`), like `solve_crossbar`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from xbar.circuits.lines import Wires, network, operators, tri_solve
from xbar.circuits.nodal import CellCurrent


@eqx.filter_jit
def solve_lines(
    g: Float[Array, "R C"],
    v_row: Float[Array, "*batch R"],
    wires: Wires,
    *,
    n_sweeps: int = 2,
    cell_current: CellCurrent | None = None,
) -> tuple[Float[Array, "*batch R C"], Float[Array, "*batch R C"],
           Float[Array, "*batch C"]]:
    """Approximate node voltages and column currents of a read (all rows driven,
    all columns at 0 V) after `n_sweeps` line-relaxation sweeps.

    Args:
        g, v_row, wires: as for `solve_crossbar`.
        n_sweeps: row+column sweeps (static); 0 is the ideal MVM.
        cell_current: elementwise `(g, v) -> I` of a non-linear cell, or None
            for ohmic cells (static, as for `solve_crossbar`).

    Returns:
        `(u, w, i_col)`: row- and column-node voltages (V), `(*batch, R, C)`,
        and column currents (A), `(*batch, C)`.
    """
    g = jnp.asarray(g)
    dtype = g.dtype
    n_r, n_c = g.shape
    v_row = jnp.asarray(v_row, dtype)
    batch = v_row.shape[:-1]
    vb = v_row.reshape((-1, n_r)).T  # (R, B)
    nb = vb.shape[1]
    net = network(wires, jnp.ones((n_r,), bool), jnp.ones((n_c,), bool), dtype)
    r_acc = jnp.asarray(wires.r_access_ohm, dtype)
    gc_lin = g / (1.0 + g * r_acc)
    b_u = jnp.zeros((n_r, n_c, nb), dtype).at[:, 0, :].set(net.g_in[:, None] * vb)

    def cell_i(dv):
        if cell_current is None:
            return gc_lin[..., None] * dv
        return cell_current(g[..., None], dv)

    def chord(dv):
        if cell_current is None:
            return jnp.broadcast_to(gc_lin[..., None], dv.shape)
        iv = cell_current  # narrowed to a callable for the closure below
        small = jnp.abs(dv) < 1e-9
        safe = jnp.where(small, 1.0, dv).astype(dtype)
        slope = jax.jvp(lambda x: iv(g[..., None], x), (jnp.zeros_like(dv),),
                        (jnp.ones_like(dv),))[1]
        return jnp.where(small, slope, iv(g[..., None], safe) / safe)

    u = jnp.broadcast_to(vb[:, None, :], (n_r, n_c, nb))
    w = jnp.zeros((n_r, n_c, nb), dtype)

    def sweep(_, uw):
        u, w = uw
        gk = chord(u - w)  # (R, C, B)
        # Operators need per-vector cell conductances: vmap over the batch.

        def one(gk1, u1, w1, bu1):
            rows, cols = operators(net, gk1)
            u1 = tri_solve(rows, (bu1 + gk1 * w1)[..., None])[..., 0]
            w1t = tri_solve(cols, (gk1 * u1).T[..., None])[..., 0]
            return u1, w1t.T

        if cell_current is None:
            rows, cols = operators(net, gc_lin)
            u = tri_solve(rows, b_u + gc_lin[..., None] * w)
            wt = tri_solve(cols, jnp.swapaxes(gc_lin[..., None] * u, 0, 1))
            return u, jnp.swapaxes(wt, 0, 1)
        return jax.vmap(one, in_axes=2, out_axes=2)(gk, u, w, b_u)

    u, w = jax.lax.fori_loop(0, n_sweeps, sweep, (u, w))
    i_col = jnp.sum(cell_i(u - w), axis=0)  # (C, B)

    def out(a, tail):
        return jnp.moveaxis(a, -1, 0).reshape(batch + tail)

    return out(u, (n_r, n_c)), out(w, (n_r, n_c)), out(i_col, (n_c,))
