"""The wires of a crossbar tile and the tridiagonal line operators of its
nodal equations.

Every row and every column is a chain of wire segments with the cells
hanging off it, so each line's block of the nodal matrix is tridiagonal.
`operators` builds those blocks for given cell conductances, `network_matvec`
applies the whole nodal matrix (the lines plus the cells coupling rows to
columns), and `precondition` solves every line on its own (block-Jacobi line
relaxation): the preconditioner of the exact solve (`xbar.circuits.nodal`)
and the whole of the fast one (`xbar.circuits.line_relaxation`). See
docs/methods.md, "The circuit solver".
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from devices.base import check_range

# Resistances below this (ohm) are treated as this value: a wire of exactly zero
# resistance would make the nodal matrix infinite. At 1e-6 ohm and cells up to
# 1e-3 S the cell current changes by < N * 1e-9 relative: the ideal MVM.
R_FLOOR_OHM = 1e-6


def _as_wire(x) -> Array:
    return jnp.asarray(x)


class Wires(eqx.Module):
    """Resistances (ohm) of the wires around a tile; array fields, so a sweep can
    vmap over them. Every resistance defaults to 0 ohm (no wire: the ideal
    circuit, up to the `R_FLOOR_OHM` floor), here and in the tile circuits that
    hold a `Wires`, so only the resistances you name are there.

    Args:
        r_row_ohm: one row-wire segment (between neighbouring cells), >= 0.
        r_col_ohm: one column-wire segment, >= 0.
        r_driver_ohm: row driver output resistance, >= 0.
        r_sense_ohm: column sense-amplifier input resistance, >= 0.
        r_access_ohm: series access device of a 1T1R cell (0 for passive 1R), >= 0.
    """

    r_row_ohm: Float[Array, ""] = eqx.field(converter=_as_wire, default=0.0)
    r_col_ohm: Float[Array, ""] = eqx.field(converter=_as_wire, default=0.0)
    r_driver_ohm: Float[Array, ""] = eqx.field(converter=_as_wire, default=0.0)
    r_sense_ohm: Float[Array, ""] = eqx.field(converter=_as_wire, default=0.0)
    r_access_ohm: Float[Array, ""] = eqx.field(converter=_as_wire, default=0.0)

    def __check_init__(self):
        for name in (
            "r_row_ohm",
            "r_col_ohm",
            "r_driver_ohm",
            "r_sense_ohm",
            "r_access_ohm",
        ):
            check_range(name, getattr(self, name), 0.0, unit="ohm")


# ---------------------------------------------------------------------------
# Tridiagonal line operators. Layout: rows (R, C, B) with the chain along axis 1;
# columns stored transposed as (C, R, B) so both chains are along axis 1.


class Lines(NamedTuple):
    dl: Array  # (L, N) sub-diagonal (dl[:, 0] = 0)
    d: Array  # (L, N) diagonal
    du: Array  # (L, N) super-diagonal (du[:, -1] = 0)


def chain(g_seg, g_port, g_cell_sum, n_lines, n):
    """Tridiagonal of `n_lines` chains of `n` nodes: segment conductance `g_seg`,
    a port of conductance `g_port[line]` at node `port_end` (0), plus cell diagonal."""
    dt = g_cell_sum.dtype
    j = jnp.arange(n)
    off = jnp.where(j > 0, -g_seg, 0.0).astype(dt)
    dl = jnp.broadcast_to(off, (n_lines, n))
    du = jnp.broadcast_to(jnp.roll(off, -1), (n_lines, n))
    deg = (jnp.where(j > 0, g_seg, 0.0) + jnp.where(j < n - 1, g_seg, 0.0)).astype(dt)
    port = jnp.where(j == 0, 1.0, 0.0).astype(dt)[None, :] * g_port[:, None]
    d = deg[None, :] + g_cell_sum + port
    return Lines(dl, d, du)


def tri_mv(t: Lines, x):
    """(L, N, B) tridiagonal product along axis 1."""
    z = jnp.zeros_like(x[:, :1])
    lo = jnp.concatenate([z, x[:, :-1]], axis=1)
    hi = jnp.concatenate([x[:, 1:], z], axis=1)
    return t.dl[..., None] * lo + t.d[..., None] * x + t.du[..., None] * hi


def tri_solve(t: Lines, b):
    """Solve the tridiagonal systems `t` (L lines of N nodes) for b (L, N, B).

    The Thomas algorithm as two `lax.scan`s over the chain, vectorised over
    lines and right-hand sides (no pivoting: the line matrices are diagonally
    dominant). Written out rather than `lax.linalg.tridiagonal_solve`, whose
    CPU custom call stalled inside `while_loop` bodies with several
    right-hand sides on XLA:CPU (jax 0.10.2).
    """
    dl, d, du = (jnp.moveaxis(a, 1, 0) for a in t)  # (N, L)
    bb = jnp.moveaxis(b, 1, 0)  # (N, L, B)

    def fwd(carry, k):
        cp_prev, y_prev = carry
        dl_k, d_k, du_k, b_k = k
        inv = 1.0 / (d_k - dl_k * cp_prev)
        cp = du_k * inv
        y = (b_k - dl_k[:, None] * y_prev) * inv[:, None]
        return (cp, y), (cp, y)

    init = (jnp.zeros_like(d[0]), jnp.zeros_like(bb[0]))
    _, (cp, y) = jax.lax.scan(fwd, init, (dl, d, du, bb))

    def bwd(x_next, k):
        cp_k, y_k = k
        x = y_k - cp_k[:, None] * x_next
        return x, x

    _, x = jax.lax.scan(bwd, jnp.zeros_like(bb[0]), (cp, y), reverse=True)
    return jnp.moveaxis(x, 0, 1)


class Network(NamedTuple):
    """Everything of one tile's linearised circuit except the cell conductances."""

    g_row: Array  # segment conductance (S)
    g_col: Array
    g_in: Array  # (R,) driver port conductance, 0 when floating
    g_out: Array  # (C,) sense port conductance, 0 when floating


def network(wires: Wires, row_driven, col_driven, dtype) -> Network:
    def g_of(r):
        return 1.0 / jnp.maximum(jnp.asarray(r, dtype), R_FLOOR_OHM)

    g_row, g_col = g_of(wires.r_row_ohm), g_of(wires.r_col_ohm)
    g_in = jnp.where(row_driven, g_of(wires.r_driver_ohm + wires.r_row_ohm), 0.0)
    g_out = jnp.where(col_driven, g_of(wires.r_sense_ohm + wires.r_col_ohm), 0.0)
    return Network(g_row, g_col, g_in.astype(dtype), g_out.astype(dtype))


def operators(net: Network, gc):
    """Row (R, C) and transposed column (C, R) tridiagonals for cell conductance gc."""
    r, c = gc.shape
    rows = chain(net.g_row, net.g_in, gc, r, c)
    # Columns: the port is at i = R - 1; build with reversed node order then flip.
    cols = chain(net.g_col, net.g_out, gc.T[:, ::-1], c, r)
    cols = Lines(cols.du[:, ::-1], cols.d[:, ::-1], cols.dl[:, ::-1])
    return rows, cols


def network_matvec(rows, cols, gc, x):
    u, wt = x  # u (R, C, B), wt (C, R, B)
    gcb = gc[..., None]
    w = jnp.swapaxes(wt, 0, 1)
    au = tri_mv(rows, u) - gcb * w
    aw = tri_mv(cols, wt) - jnp.swapaxes(gcb * u, 0, 1)
    return au, aw


def precondition(rows, cols, x):
    return tri_solve(rows, x[0]), tri_solve(cols, x[1])
