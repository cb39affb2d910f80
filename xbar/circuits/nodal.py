"""Crossbar circuits with wire resistance, sneak paths and non-linear cells.

The circuit of one `R x C` tile. Every crosspoint `(i, j)` has a row-wire node
`u[i, j]` and a column-wire node `w[i, j]`, joined by the cell. Row `i` is a
chain of wire segments of resistance `r_row_ohm`; its driver (voltage `v_row[i]`,
resistance `r_driver_ohm`) feeds the chain at the `j = 0` end through one more
segment, so the port resistance is `r_driver_ohm + r_row_ohm`. Column `j` is a
chain of segments `r_col_ohm`, read at the `i = R - 1` end through one more
segment and the sense resistance `r_sense_ohm` into a terminal held at
`v_col[j]` (a virtual ground, 0 V, for a read). A row or column may float
(`row_driven` / `col_driven` False): that is how passive-array sneak paths
through unselected lines arise. 1T1R arrays add an access resistance
`r_access_ohm` in series with every (linear) cell.

Kirchhoff's current law at the `2 R C` nodes is a symmetric positive definite
system with tridiagonal row and column blocks (grounded sources, positive
conductances). It is never formed: the operator is applied matrix-free and
solved by conjugate gradients preconditioned with exact tridiagonal solves
along every row and every column (block-Jacobi line relaxation; see the
circuit-solver section of `docs/methods.md`).
Non-linear cells (`cell_current`) add Newton's method on top, each step the
same preconditioned CG with the cells' differential conductances.

Gradients are implicit: the linear solve is a `jax.lax.custom_linear_solve`
(its transpose is itself, the operator being symmetric); the Newton solution
is followed by one more Newton step taken through `custom_linear_solve` with a
fixed Jacobian, whose derivative is exactly the implicit-function-theorem
derivative `-J^-1 dF/dp` at the converged point.

The solution carries a result code (`RESULTS`, as in lineax): converged, CG or
Newton at its iteration limit, iterates not finite, a singular circuit (a line
floating without any conducting cell, or no source at all), or invalid input
(a negative or non-finite conductance, a non-finite voltage). With
`throw=True` (the default) anything but success raises (via `eqx.error_if`);
with `throw=False` the code is returned, so a vmapped sweep records its failed
points instead of dying. `solve_crossbar` is compiled (`eqx.filter_jit`): an
eager call costs what a jitted one does once its shapes have been seen.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from devices.base import concrete
from xbar.circuits.lines import (
    Wires,
    network,
    network_matvec,
    operators,
    precondition,
    tri_mv,
)

CellCurrent = Callable[[Array, Array], Array]  # (g, v) -> I, elementwise


class RESULTS(eqx.Enumeration):
    """Outcome of a crossbar solve (as `lineax.RESULTS`); `Solution.result`.

    Compare with `==` (`sol.result == RESULTS.successful` is a bool array, one
    per vmapped solve). Invalid and singular circuits are not solved: their
    `Solution` arrays are NaN. The other failures keep the last iterate.
    """

    successful = ""
    max_steps_reached = (
        "crossbar solve did not converge (CG or Newton reached its iteration limit): "
        "increase max_steps/max_newton or rtol, or check for a singular circuit")
    breakdown = (
        "crossbar solve did not converge: the iterates are not finite (a non-linear "
        "cell overflowing, or a nearly singular circuit)")
    singular = (
        "singular circuit: a floating row or column has no conducting cell "
        "(floating island), or no line is connected to a source")
    invalid_input = (
        "invalid input: cell conductance g must be finite and >= 0 (a negative "
        "resistance makes the circuit ill-posed), and voltages finite")


class Solution(eqx.Module):
    """Node voltages (V), column and row currents (A), residual and result code.

    `u`, `w`: row- and column-wire node voltages, `(*batch, R, C)`.
    `i_col`: current from each column into its terminal, `(*batch, C)` (zero for
    floating columns). `i_row`: current from each driver into its row, `(*batch, R)`.
    `residual`: largest Kirchhoff current error at any node (A), per batch entry.
    `iterations`: CG iterations (the most of any Newton step).
    `result`: a `RESULTS` item, one for the whole batch of vectors.
    """

    u: Array
    w: Array
    i_col: Array
    i_row: Array
    residual: Array
    iterations: Array
    result: RESULTS


def _vdot(a, b):
    return sum(jnp.sum(x * y) for x, y in zip(a, b))


def _pcg(matvec, precond, b, x0, tol, max_steps, active):
    """Preconditioned CG on the whole batch at once. Stops when the largest
    preconditioned residual (a voltage, V) is below `tol_v`, or below `rtol`
    of its initial value (`tol = (tol_v, rtol)`: the second for the tangent
    and adjoint solves of derivatives, whose scale is not the voltages'); does
    no step when `active` is False (an invalid circuit is not iterated on)."""

    def amax(z):
        return jnp.maximum(jnp.max(jnp.abs(z[0])), jnp.max(jnp.abs(z[1])))

    r0 = jax.tree.map(jnp.subtract, b, matvec(x0))
    z0 = precond(r0)
    state = (x0, r0, z0, z0, _vdot(r0, z0), amax(z0), jnp.asarray(0))
    tol_v = jnp.maximum(tol[0], tol[1] * state[5])

    def cond(s):
        return (s[5] > tol_v) & (s[6] < max_steps) & active

    def body(s):
        x, r, z, p, rz, _, k = s
        ap = matvec(p)
        pap = _vdot(p, ap)
        alpha = jnp.where(pap > 0, rz / jnp.where(pap > 0, pap, 1.0), 0.0)
        x = jax.tree.map(lambda a, q: a + alpha * q, x, p)
        r = jax.tree.map(lambda a, q: a - alpha * q, r, ap)
        z = precond(r)
        rz_new = _vdot(r, z)
        beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        p = jax.tree.map(lambda a, q: a + beta * q, z, p)
        return x, r, z, p, rz_new, amax(z), k + 1

    x, _, _, _, _, err, k = jax.lax.while_loop(cond, body, state)
    # A NaN residual stops the loop as if converged: make the breakdown visible.
    x = jax.tree.map(lambda a: jnp.where(jnp.isnan(err), jnp.nan, a), x)
    return x, k


def _default_rtol(dtype) -> float:
    return 1e-11 if dtype == jnp.float64 else 2e-6


def _linear_solve(net, gc, rhs, x0, tol, max_steps, active):
    """x = A(gc)^-1 rhs with implicit derivatives through gc and rhs.

    The right-hand side crosses `custom_linear_solve` as one flat vector: as a
    (row, column) pair, its JVP hands the solve a symbolic-zero tangent for the
    half that does not depend on the differentiated inputs (the columns, when
    only `v_row` is), and fails ("Error interpreting argument to
    custom_linear_solve as a JAX value", jax 0.10.2).
    """
    rows, cols = operators(net, gc)
    shapes = [a.shape for a in rhs]
    split = rhs[0].size

    def flat(x):
        return jnp.concatenate([a.reshape(-1) for a in x])

    def unflat(f):
        return tuple(a.reshape(sh) for a, sh in zip(jnp.split(f, [split]), shapes))

    def mv(x):
        return network_matvec(rows, cols, gc, x)

    def solve(_, b):  # the operator is symmetric: one solve for both directions
        x, k = _pcg(mv, lambda z: precondition(rows, cols, z), unflat(b), x0, tol,
                    max_steps, active)
        return flat(x), k

    x, k = jax.lax.custom_linear_solve(
        lambda f: flat(mv(unflat(f))), flat(rhs), solve, transpose_solve=solve,
        symmetric=True, has_aux=True)
    return unflat(x), k


def solve_crossbar(
    g: Float[Array, "R C"],
    v_row: Float[Array, "*batch R"],
    wires: Wires,
    *,
    v_col: Float[Array, " C"] | None = None,
    row_driven: Bool[Array, " R"] | None = None,
    col_driven: Bool[Array, " C"] | None = None,
    cell_current: CellCurrent | None = None,
    rtol: float | None = None,
    max_steps: int = 2000,
    max_newton: int = 30,
    throw: bool = True,
) -> Solution:
    """Exact DC solution of one crossbar tile for a batch of row-voltage vectors.

    Compiled once per shape and static option (`eqx.filter_jit`): calling it
    eagerly costs what a jitted call does. Works under `jit`, `vmap` and `grad`.

    Args:
        g: cell conductances (S), `(R, C)`, >= 0. For non-linear cells the
            parameter passed to `cell_current`.
        v_row: driver voltages (V), `(*batch, R)`; ignored on floating rows.
        wires: wire, driver, sense and access resistances.
        v_col: column terminal voltages (V), `(C,)`; default 0 (virtual ground).
        row_driven, col_driven: which lines are connected to their driver /
            terminal (default all); the others float.
        cell_current: elementwise `(g, v) -> I` of a non-linear cell, with
            positive differential conductance; None for ohmic cells `I = g v`.
            Requires `r_access_ohm == 0`. A plain function is a static argument
            (pass the same function object to reuse the compilation); an
            equinox bound method (`device.current`) is traced through.
        rtol: convergence tolerance on node voltages relative to the largest
            applied voltage; default 1e-11 in float64, 2e-6 in float32.
        max_steps: CG iteration limit per linear solve (static).
        max_newton: Newton iteration limit (static).
        throw: raise unless the result is `RESULTS.successful` (static). With
            False, check `Solution.result` instead; usable inside jit and vmap.

    Returns:
        A `Solution`, batch axes leading.

    Raises:
        ValueError: on shape mismatch, or for `cell_current` with access resistance.
        EqxRuntimeError (from `eqx.error_if`), only with `throw=True`: on a
            negative or non-finite cell conductance, a floating island, or an
            unconverged solve, with the message of its `RESULTS` item.
    """
    g = jnp.asarray(g)
    if g.ndim != 2:
        raise ValueError(f"g must be (R, C); got shape {g.shape}")
    v_row = jnp.asarray(v_row)
    if v_row.shape[-1:] != g.shape[:1]:
        raise ValueError(f"v_row must be (..., {g.shape[0]}); got shape {v_row.shape}")
    if cell_current is not None:
        ra = concrete(wires.r_access_ohm)
        if ra is not None and np.any(ra > 0):
            raise ValueError(
                "r_access_ohm must be 0 with a non-linear cell_current; "
                f"got r_access_ohm={ra} ohm"
            )
    v_col, row_driven, col_driven = (
        None if a is None else jnp.asarray(a) for a in (v_col, row_driven, col_driven))
    return _solve(g, v_row, wires, v_col, row_driven, col_driven, cell_current,
                  rtol, max_steps, max_newton, throw)


@eqx.filter_jit
def _solve(g, v_row, wires, v_col, row_driven, col_driven, cell_current, rtol,
           max_steps, max_newton, throw) -> Solution:
    dtype = g.dtype
    n_r, n_c = g.shape
    v_row = v_row.astype(dtype)
    batch = v_row.shape[:-1]
    vb = v_row.reshape((-1, n_r)).T  # (R, B)
    nb = vb.shape[1]
    v_col = jnp.zeros((n_c,), dtype) if v_col is None else v_col.astype(dtype)
    row_driven = (jnp.ones((n_r,), bool) if row_driven is None
                  else row_driven.astype(bool))
    col_driven = (jnp.ones((n_c,), bool) if col_driven is None
                  else col_driven.astype(bool))
    r_acc = jnp.asarray(wires.r_access_ohm, dtype)
    rtol = _default_rtol(dtype) if rtol is None else rtol

    # Circuits that cannot be solved are flagged before any solve and not
    # iterated on (a vmapped sweep does not spend max_steps on them).
    invalid = (jnp.any(g < 0) | ~jnp.all(jnp.isfinite(g))
               | ~jnp.all(jnp.isfinite(vb)) | ~jnp.all(jnp.isfinite(v_col)))
    row_iso = ~row_driven & (jnp.sum(g, axis=1) <= 0)
    col_iso = ~col_driven & (jnp.sum(g, axis=0) <= 0)
    singular = (jnp.any(row_iso) | jnp.any(col_iso)
                | (~jnp.any(row_driven) & ~jnp.any(col_driven)))
    active = ~invalid & ~singular

    net = network(wires, row_driven, col_driven, dtype)
    v_scale = jnp.maximum(jnp.maximum(jnp.max(jnp.abs(vb)), jnp.max(jnp.abs(v_col))),
                          jnp.finfo(dtype).tiny)
    tol_v = rtol * v_scale
    tol = (tol_v, rtol)
    gc_lin = g / (1.0 + g * r_acc)  # ohmic cell with its access resistance in series

    def cell_i(gg, dv):
        """Cell currents (R, C, B) for voltages dv across them."""
        if cell_current is None:
            return gc_lin[..., None] * dv
        return cell_current(gg[..., None], dv)

    def didv(gg, dv):
        return jax.jvp(lambda vv: cell_i(gg, vv), (dv,), (jnp.ones_like(dv),))[1]

    wires_only = operators(net, jnp.zeros_like(g))

    def core(vb):
        nb = vb.shape[1]
        b_u = jnp.zeros((n_r, n_c, nb), dtype).at[:, 0, :].set(net.g_in[:, None] * vb)
        b_w = jnp.zeros((n_c, n_r, nb), dtype).at[:, -1, :].set(
            jnp.broadcast_to((net.g_out * v_col)[:, None], (n_c, nb)))
        # Initial guess: the ideal circuit (rows at their drive, columns at terminal).
        x0 = (jnp.broadcast_to(jnp.where(row_driven[:, None], vb, 0.0)[:, None, :],
                               (n_r, n_c, nb)),
              jnp.broadcast_to(v_col[:, None, None], (n_c, n_r, nb)))

        def residual(gg, x):
            """Kirchhoff current error at every node: wires + cells - sources."""
            u, wt = x
            i_cell = cell_i(gg, u - jnp.swapaxes(wt, 0, 1))
            fu = tri_mv(wires_only[0], u) + i_cell - b_u
            fw = tri_mv(wires_only[1], wt) - jnp.swapaxes(i_cell, 0, 1) - b_w
            return fu, fw

        if cell_current is None:
            x, iters = _linear_solve(net, gc_lin, (b_u, b_w), x0, tol, max_steps,
                                     active)
            return x, iters, jnp.asarray(0.0, dtype)
        # Newton on a single vector (nb == 1): the Jacobian differs per vector.
        gs = jax.lax.stop_gradient(g)

        def jac(x):
            u, wt = x
            return didv(gs, u - jnp.swapaxes(wt, 0, 1))[..., 0]

        def cond(s):
            return (s[2] > tol_v) & (s[3] < max_newton) & active

        def body(s):
            x, k_cg, _, k = s
            dx, kk = _newton_step(net, jac(x), residual(gs, x), tol, max_steps,
                                  active)
            x = jax.tree.map(jnp.subtract, x, dx)
            step = jnp.maximum(jnp.max(jnp.abs(dx[0])), jnp.max(jnp.abs(dx[1])))
            return x, jnp.maximum(k_cg, kk), step, k + 1

        s = (jax.lax.stop_gradient(x0), jnp.asarray(0), jnp.asarray(jnp.inf, dtype),
             jnp.asarray(0))
        x_star, iters, step, _ = jax.lax.while_loop(cond, body, s)
        x_star = jax.lax.stop_gradient(x_star)
        # One more Newton step with a frozen Jacobian, differentiable in (g, v):
        # its derivative is the implicit-function derivative -J^-1 dF/dp.
        gd = jax.lax.stop_gradient(jac(x_star))
        f = residual(g, x_star)
        dx, kk = _linear_solve(net, gd, f, jax.tree.map(jnp.zeros_like, f), tol,
                               max_steps, active)
        x = jax.tree.map(jnp.subtract, x_star, dx)
        return x, jnp.maximum(iters, kk), step

    def finish(vb):
        x, iters, step = core(vb)
        u, wt = x
        w = jnp.swapaxes(wt, 0, 1)
        # CG's and Newton's own stopping tests (voltage units). A residual
        # recomputed from scratch is not used here: in float32 its rounding
        # (eps * wire current, amplified by the line resistance) exceeds
        # the tolerance on large arrays although the iterates converged.
        nonfinite = ~jnp.all(jnp.isfinite(u)) | ~jnp.all(jnp.isfinite(w))
        unconverged = (iters >= max_steps) | (step > tol_v)
        return u, w, iters, nonfinite, unconverged

    if cell_current is None:
        u, w, iters, nonfinite, unconverged = finish(vb)
    else:
        u, w, iters, nonfinite, unconverged = jax.vmap(
            finish, in_axes=1, out_axes=(2, 2, 0, 0, 0))(vb[:, None, :])
        u, w = (a[..., 0, :] for a in (u, w))
        iters, nonfinite, unconverged = (
            f(a) for f, a in ((jnp.max, iters), (jnp.any, nonfinite),
                              (jnp.any, unconverged)))
    result = RESULTS.where(unconverged, RESULTS.max_steps_reached, RESULTS.successful)
    result = RESULTS.where(nonfinite, RESULTS.breakdown, result)
    result = RESULTS.where(singular, RESULTS.singular, result)
    result = RESULTS.where(invalid, RESULTS.invalid_input, result)
    if throw:
        u = result.error_if(u, result != RESULTS.successful)
    # Circuits that were not solved have no solution.
    u, w = (jnp.where(active, a, jnp.nan) for a in (u, w))
    i_cell = cell_i(g, u - w)
    # Kirchhoff residual per node (A), an independent recomputation.
    fu = tri_mv(wires_only[0], u) + i_cell
    fu = fu.at[:, 0, :].add(-net.g_in[:, None] * vb)
    wt = jnp.swapaxes(w, 0, 1)
    fw = tri_mv(wires_only[1], wt) - jnp.swapaxes(i_cell, 0, 1)
    fw = fw.at[:, -1, :].add(-jnp.broadcast_to((net.g_out * v_col)[:, None], (n_c, nb)))
    kcl = jnp.maximum(jnp.max(jnp.abs(fu), axis=(0, 1)),
                      jnp.max(jnp.abs(fw), axis=(0, 1)))  # (B,)
    i_col = jnp.where(col_driven[:, None], jnp.sum(i_cell, axis=0), 0.0)  # (C, B)
    i_row = jnp.where(row_driven[:, None], net.g_in[:, None] * (vb - u[:, 0, :]), 0.0)

    def out(a, tail):
        return jnp.moveaxis(a, -1, 0).reshape(batch + tail)

    return Solution(
        u=out(u, (n_r, n_c)),
        w=out(w, (n_r, n_c)),
        i_col=out(i_col, (n_c,)),
        i_row=out(i_row, (n_r,)),
        residual=kcl.reshape(batch),
        iterations=iters,
        result=result,
    )


def _newton_step(net, gd, f, tol, max_steps, active):
    rows, cols = operators(net, gd)
    x0 = jax.tree.map(jnp.zeros_like, f)
    return _pcg(lambda x: network_matvec(rows, cols, gd, x),
                lambda z: precondition(rows, cols, z), f, x0, tol, max_steps, active)
