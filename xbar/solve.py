"""Column currents of a crossbar from its cells' conductances and row voltages.

`ideal_currents` is the circuit without wires: each column current is the sum
of its cells' currents at the row voltages (Kirchhoff, no IR drop). Read noise
is added to the currents: for ohmic cells with independent per-read
conductance noise of std `s_ij`, each column current is Gaussian with mean
`sum_i v_i g_ij` and variance `sum_i v_i^2 s_ij^2`, so one extra product gives
the exact distribution without drawing a rows x cols array per input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, AbstractDeviceState


def ideal_currents(
    device: AbstractDevice,
    pos: AbstractDeviceState,
    neg: AbstractDeviceState,
    v: Float[Array, "*tiles rows"],
    t_s,
    *,
    key: PRNGKeyArray | None,
) -> Float[Array, "*tiles cols"]:
    """Differential column currents `I+ - I-` (A) of every tile.

    Args:
        device: the cell model of both arrays.
        pos, neg: states of the G+ and G- arrays, leaves shaped
            `(*tiles, rows, cols)`.
        v: row voltages (V), shaped `(*tiles, rows)` (broadcast over columns).
        t_s: time since programming (s) at which the cells are read.
        key: PRNG key for read noise; None reads the noise-free mean.

    Returns:
        Column currents shaped `(*tiles, cols)`.
    """
    g_p, s_p = device.read_stats(pos, t_s)
    g_n, s_n = device.read_stats(neg, t_s)
    if device.linear_iv:
        i = jnp.einsum("...r,...rc->...c", v, g_p - g_n)
        if key is None:
            return i
        var = jnp.einsum("...r,...rc->...c", v * v, s_p * s_p + s_n * s_n)
        return i + jnp.sqrt(var) * jax.random.normal(key, i.shape, i.dtype)
    # Non-ohmic cells: read every cell once and sum its I-V currents.
    if key is not None:
        k_p, k_n = jax.random.split(key)
        g_p = g_p + s_p * jax.random.normal(k_p, g_p.shape, g_p.dtype)
        g_n = g_n + s_n * jax.random.normal(k_n, g_n.shape, g_n.dtype)
    vv = v[..., :, None]
    return jnp.sum(device.current(g_p, vv) - device.current(g_n, vv), axis=-2)
