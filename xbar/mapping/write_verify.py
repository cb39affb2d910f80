"""Programming by write-verify: pulse, read back, repeat until within tolerance."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from devices.base import AbstractDevice, AbstractDeviceState, check_range, concrete


class WriteVerifyResult(eqx.Module):
    """Outcome of `write_verify`, per cell.

    Attributes:
        state: the programmed cells.
        pulses: pulses applied to each cell (write energy counts these).
        converged: the last verify read was within tolerance.
        residual: true (noise-free) conductance minus target (S).
        iterations: program-and-verify rounds run (scalar).
    """

    state: AbstractDeviceState
    pulses: Int[Array, "*cells"]
    converged: Bool[Array, "*cells"]
    residual: Float[Array, "*cells"]
    iterations: Int[Array, ""]

    def summary(self, tol: float) -> dict:
        """Failure rate, pulse statistics and the residual error distribution."""
        r = np.abs(np.asarray(self.residual, np.float64)).ravel()
        p = np.asarray(self.pulses).ravel()
        return {
            "cells": int(r.size),
            "converged_fraction": float(np.mean(np.asarray(self.converged))),
            "within_tol_fraction": float(np.mean(r <= tol)),
            "pulses_mean": float(p.mean()),
            "pulses_max": int(p.max()),
            "pulses_total": int(p.sum()),
            "residual_abs_percentiles_S": {
                str(q): float(np.percentile(r, q)) for q in (50, 90, 99, 100)
            },
            "iterations": int(self.iterations),
        }


def nominal_step(device: AbstractDevice) -> Float[Array, ""]:
    """Conductance change of one pulse at mid-range for a linear response:
    `(g_max - g_min) / n_states` or `/ p_max_ltp` (NeuroSim devices)."""
    for name in ("n_states", "p_max_ltp"):
        n = getattr(device, name, None)
        if n is not None:
            return (device.g_max - device.g_min) / n
    raise ValueError(
        f"g_per_pulse is needed for {type(device).__name__} (no n_states or p_max_ltp)"
    )


def write_verify(
    device: AbstractDevice,
    state: AbstractDeviceState,
    g_target: Float[Array, "*cells"],
    *,
    key: PRNGKeyArray,
    tol,
    max_pulses: int = 100,
    max_burst: int = 1,
    g_per_pulse=None,
    t_read_s=0.0,
) -> WriteVerifyResult:
    """Iterative program-and-verify with the device's own pulse response.

    Every round reads all cells once (`device.read`, with read noise); cells
    whose read is farther than `tol` from the target and that have pulses left
    get `sign(err) * clip(round(|err| / g_per_pulse), 1, max_burst)` pulses
    (`device.update`, with its nonlinearity and cycle-to-cycle noise). The loop
    is one `lax.while_loop` over rounds; cells are masked, not looped over.

    Args:
        device, state: the cells (any shape) and their current state.
        g_target: target conductances (S), broadcast to the cells.
        key: PRNG key for the verify reads and the pulses' noise.
        tol: accepted |read - target| (S), > 0.
        max_pulses: pulse budget per cell, >= 1 (failed cells stop there).
        max_burst: most pulses per round and cell, >= 1.
        g_per_pulse: assumed conductance change per pulse (S), default
            `nominal_step(device)`.
        t_read_s: time since programming of the verify reads.
    """
    check_range("tol", tol, 0.0, lo_open=True, unit="S")
    for name, v in (("max_pulses", max_pulses), ("max_burst", max_burst)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {name}={v!r}")
    step = nominal_step(device) if g_per_pulse is None else jnp.asarray(g_per_pulse)
    if concrete(step) is not None:
        check_range("g_per_pulse", step, 0.0, lo_open=True, unit="S")
    target = jnp.broadcast_to(jnp.asarray(g_target, jnp.float32), state.g.shape)
    tol = jnp.asarray(tol, jnp.float32)

    def verify(st, k):
        err = target - device.read(st, t_read_s, key=k)
        return err, jnp.abs(err) <= tol

    def cond(c):
        _, pulses, ok, it, _ = c
        return jnp.any(~ok & (pulses < max_pulses)) & (it < max_pulses)

    def body(c):
        st, pulses, ok, it, err = c
        k_upd, k_read = jax.random.split(jax.random.fold_in(key, it))
        left = (max_pulses - pulses).astype(jnp.float32)
        n = jnp.clip(jnp.round(jnp.abs(err) / step), 1.0, jnp.minimum(max_burst, left))
        n = jnp.where(ok | (left <= 0), 0.0, jnp.sign(err) * n)
        st = device.update(st, n, key=k_upd)
        pulses = pulses + jnp.abs(n).astype(jnp.int32)
        err, ok = verify(st, k_read)
        return st, pulses, ok, it + 1, err

    k0, key = jax.random.split(key)
    err0, ok0 = verify(state, k0)
    init = (
        state,
        jnp.zeros(state.g.shape, jnp.int32),
        ok0,
        jnp.asarray(0, jnp.int32),
        err0,
    )
    st, pulses, ok, it, _ = jax.lax.while_loop(cond, body, init)
    g_true, _ = device.read_stats(st, t_read_s)
    return WriteVerifyResult(st, pulses, ok, g_true - target, it)
