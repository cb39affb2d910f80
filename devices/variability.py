"""Device-to-device window spread, stuck-at faults and endurance, shared by
every family (the per-cell fields and the static switches that add them).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.params import concrete, param

# The per-cell fields live at the end of each state
# class: `g_lo`, `g_hi` (the cell's window as fabricated; None: the device's
# nominal [g_min, g_max]), `cycles` (full-swing write cycles since
# fabrication; None: not counted) and `stuck` (+1 stuck at the cell's upper
# bound, -1 at its lower bound, 0 healthy; None: no faults).

# Smallest per-cell window, as a fraction of the nominal span: a draw of the
# window spread (or a closure) never collapses a cell to a point.
MIN_WINDOW = 0.01


def draw_window(shape, key: PRNGKeyArray, g_min, g_max, g_ref, sigma_lo, sigma_hi):
    """Per-cell window `(g_lo, g_hi)` drawn at fabrication (aihwkit's
    `b_max = w_max (1 + w_max_dtod xi)`, `b_min = w_min (1 + w_min_dtod xi)`
    with the weight zero at conductance `g_ref`):

        g_hi = g_ref + (g_max - g_ref) |1 + sigma_hi xi_1|
        g_lo = g_ref - (g_ref - g_min) |1 + sigma_lo xi_2|

    then `g_lo >= 0` and `g_hi >= g_lo + MIN_WINDOW (g_max - g_min)`.
    """
    k1, k2 = jax.random.split(key)
    xi1 = jax.random.normal(k1, shape, jnp.float32)
    xi2 = jax.random.normal(k2, shape, jnp.float32)
    hi = g_ref + (g_max - g_ref) * jnp.abs(1.0 + sigma_hi * xi1)
    lo = jnp.maximum(g_ref - (g_ref - g_min) * jnp.abs(1.0 + sigma_lo * xi2), 0.0)
    return lo, jnp.maximum(hi, lo + MIN_WINDOW * (g_max - g_min))


def closure_factor(cycles, n_cycles, beta):
    """Endurance window closure `(1 + N / n_cycles)^-beta` after `N` cycles:
    1 when new, `2^-beta` at `N = n_cycles`, a power law in N beyond."""
    return jnp.exp(-beta * jnp.log1p(cycles / n_cycles))


def cell_window(state, g_min, g_max, g_ref, n_cycles, beta):
    """Every cell's bounds now, `(lo, hi)`: its fabricated window (the
    nominal `[g_min, g_max]` for states without `g_lo`), closed towards
    `g_ref` by `closure_factor` of its `cycles` (states that count them),
    never below `MIN_WINDOW` of the nominal span."""
    lo = getattr(state, "g_lo", None)
    hi = getattr(state, "g_hi", None)
    if lo is None or hi is None:
        lo, hi = g_min, g_max
    cycles = getattr(state, "cycles", None)
    if cycles is not None:
        f = closure_factor(cycles, n_cycles, beta)
        lo = g_ref - (g_ref - lo) * f
        hi = jnp.maximum(g_ref + (hi - g_ref) * f, lo + MIN_WINDOW * (g_max - g_min))
    return lo, hi


def draw_stuck(shape, key: PRNGKeyArray, p_on, p_off) -> Array:
    """Per-cell stuck-at map: +1 (stuck at the upper bound) with probability
    `p_on`, -1 (lower bound) with `p_off`, else 0."""
    u = jax.random.uniform(key, shape, jnp.float32)
    return jnp.where(u < p_on, 1.0,
                     jnp.where(u < p_on + p_off, -1.0, 0.0)).astype(jnp.float32)


def pin_stuck(g, stuck, lo, hi):
    """`g` with stuck cells held at their bound (`stuck` None: unchanged)."""
    if stuck is None:
        return g
    return jnp.where(stuck > 0, hi, jnp.where(stuck < 0, lo, g))


def add_cycles(state, d_cycles):
    """`state.cycles + d_cycles` for healthy cells (stuck cells do not
    switch, so they do not wear); None for states that do not count."""
    cycles = getattr(state, "cycles", None)
    if cycles is None:
        return None
    stuck = getattr(state, "stuck", None)
    d = jnp.broadcast_to(jnp.asarray(d_cycles, jnp.float32), cycles.shape)
    if stuck is not None:
        d = jnp.where(stuck == 0, d, 0.0)
    return cycles + d


def check_switches(module) -> None:
    """Raise a ValueError naming the static switch when a variability
    parameter is nonzero but its switch (which adds the per-cell fields to
    the state) is off: `faults` for `p_stuck_on`/`p_stuck_off`,
    `window_d2d` for `sigma_gmin_d2d`/`sigma_gmax_d2d`."""
    rules = (("faults", ("p_stuck_on", "p_stuck_off")),
             ("window_d2d", ("sigma_gmin_d2d", "sigma_gmax_d2d")))
    for switch, names in rules:
        if getattr(module, switch, True):
            continue
        for name in names:
            v = concrete(getattr(module, name, None))
            if v is not None and np.any(v != 0):
                raise ValueError(
                    f"{name} > 0 needs {switch}=True (a static switch that adds "
                    f"the per-cell fields to the state); got {name}={v}, "
                    f"{switch}=False"
                )
    on = concrete(getattr(module, "p_stuck_on", None))
    off = concrete(getattr(module, "p_stuck_off", None))
    if on is not None and off is not None and np.any(on + off > 1.0):
        raise ValueError(
            "p_stuck_on + p_stuck_off must be in [0, 1]; "
            f"got p_stuck_on={on}, p_stuck_off={off}"
        )


class VariabilityFields(eqx.Module):
    """The device-to-device window spread, stuck-at faults and endurance
    closure that every family carries (docs/devices.md, "Variability"). A
    base class of each family's device; its fields are keyword-only, so they
    never shift a family's own positional fields. What a cycle is and where a
    window spreads and closes to is the family's own (`window_ref`, its
    docstring).

    Args:
        p_stuck_on, p_stuck_off: probabilities that `init` makes a cell stuck
            at its upper / lower bound (stuck cells ignore programming and
            pulses), each in [0, 1] with sum <= 1; > 0 needs `faults=True`.
        sigma_gmin_d2d, sigma_gmax_d2d: device-to-device spread of the
            window's lower and upper edges, relative to their distance from
            the weight zero, in [0, 1); > 0 needs `window_d2d=True`.
        endurance_cycles: full-swing write cycles after which the window has
            closed by `2^-endurance_beta`, > 0.
        endurance_beta: exponent of the closure `(1 + N / endurance_cycles)
            ^ -endurance_beta`, >= 0.
        faults, window_d2d, endurance: static switches that add the stuck-at
            map, the per-cell window and the cycle count to the state.
    """

    p_stuck_on: Float[Array, ""] = param(0.0, ge=0.0, le=1.0, kw_only=True)
    p_stuck_off: Float[Array, ""] = param(0.0, ge=0.0, le=1.0, kw_only=True)
    sigma_gmin_d2d: Float[Array, ""] = param(0.0, ge=0.0, lt=1.0, kw_only=True)
    sigma_gmax_d2d: Float[Array, ""] = param(0.0, ge=0.0, lt=1.0, kw_only=True)
    endurance_cycles: Float[Array, ""] = param(
        1e6, gt=0.0, unit="cycles", kw_only=True
    )
    endurance_beta: Float[Array, ""] = param(1.0, ge=0.0, kw_only=True)
    faults: bool = eqx.field(static=True, default=False, kw_only=True)
    window_d2d: bool = eqx.field(static=True, default=False, kw_only=True)
    endurance: bool = eqx.field(static=True, default=False, kw_only=True)

    def __check_init__(self):
        check_switches(self)
