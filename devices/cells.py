"""Per-cell bookkeeping shared by the device families: programming noise
around a target, the cells' write clocks (`age_s`), the select of a pulse
write, and relaxation (exponential decay, Arrhenius acceleration).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PRNGKeyArray

from devices.params import concrete


def noisy_target(g_target, shape, g_min, g_max, sigma, key: PRNGKeyArray):
    """`g_target` clipped to `[g_min, g_max]` and broadcast to `shape`, plus
    Gaussian programming error of std `sigma` (S), clipped again: one-shot
    programming of a cell whose write lands anywhere near the target."""
    g_t = jnp.clip(jnp.asarray(g_target, jnp.float32), g_min, g_max)
    g_t = jnp.broadcast_to(g_t, shape)
    g = g_t + sigma * jax.random.normal(key, g_t.shape, jnp.float32)
    return jnp.clip(g, g_min, g_max)


# `age_s` of a cell that has not been pulsed since it was programmed: its age
# is then the caller's time since programming (`t_s` of a read), see `cell_age`.
AGE_FROM_PROGRAMMING = 1e30


def check_time(t_s) -> Array:
    """`t_s` as a float32 array; a concrete negative time raises a ValueError
    (a read before the cells were programmed is meaningless)."""
    v = concrete(t_s)
    if v is not None and (np.any(v < 0) or not np.all(np.isfinite(v))):
        raise ValueError(
            f"t_s must be a finite time >= 0 s since programming; got t_s={v}"
        )
    return jnp.asarray(t_s, jnp.float32)


def cell_age(state, t_s):
    """Seconds since each cell's last write when read at `t_s` seconds after
    the array was programmed.

    A cell pulsed after programming (on-chip learning, a spiking run) restarts
    its clock: its `age_s` counts from that write and grows under `relax`.
    Cells never pulsed since programming carry `AGE_FROM_PROGRAMMING`, so
    their age is `t_s` itself. States without `age_s` (built by hand) read
    `t_s` for every cell.
    """
    t = check_time(t_s)
    age = getattr(state, "age_s", None)
    return t if age is None else jnp.minimum(t, age)


def fresh_age(shape) -> Array:
    """`age_s` of cells that have not been pulsed since programming."""
    return jnp.full(shape, AGE_FROM_PROGRAMMING, jnp.float32)


def written(old, new, n):
    """Per-cell select for a pulse write: `new` where `n != 0`, else `old`."""
    return jnp.where(n == 0, old, new)


def after_write(state, n, key: PRNGKeyArray, *, new_xi=None):
    """`(age_s, xi_slow)` after a pulse write of `n` pulses per cell: written
    cells restart their clock (age 0) and draw a new slow read deviation; the
    others keep theirs. (The draw is made even where a device's slow read
    part is 0: skipping it on concrete zeros would make a jitted call, where
    the parameters are traced, draw differently from an eager one.)
    `new_xi`: the new deviations, if the caller drew them (e.g. with the C2C
    noise from one `devices.rng.normal_pair` call); `key` is then unused."""
    age = getattr(state, "age_s", None)
    xi = getattr(state, "xi_slow", None)
    shape = state.g.shape
    # States without a clock (devices whose reads do not depend on time) keep
    # none.
    age = None if age is None else written(age, 0.0, n)
    if new_xi is None:
        new_xi = jax.random.normal(key, shape, jnp.float32)
    xi = new_xi if xi is None else written(xi, new_xi, n)
    return age, xi



def decay(v, dt_s, tau_s):
    """Exponential relaxation of a volatile component, v exp(-dt / tau).

    E-VOL with beta = 1 (the only Markovian case: relaxing by dt1 then dt2
    equals relaxing by dt1 + dt2).
    """
    return v * jnp.exp(-jnp.asarray(dt_s, jnp.float32) / tau_s)


# Boltzmann constant (eV/K) and the room temperature the cards' time
# constants refer to unless a card says otherwise (K).
BOLTZMANN_EV_PER_K = 8.617333262e-5
ROOM_TEMPERATURE_K = 300.0


def arrhenius_factor(ea_ev, temperature_k, t_ref_k):
    """How much faster a thermally activated process runs at `temperature_k`
    than at `t_ref_k`: `exp(Ea / k_B (1 / T_ref - 1 / T))` (1 at T = T_ref,
    and for Ea = 0).

    A cell held at T for `t` seconds has relaxed as far as one held at T_ref
    for `factor * t` seconds (time-temperature equivalence of an Arrhenius
    rate), so a model written for T_ref takes `factor * t` as its time, and a
    volatile time constant becomes `tau / factor`.
    """
    return jnp.exp(ea_ev / BOLTZMANN_EV_PER_K * (1.0 / t_ref_k - 1.0 / temperature_k))


def decay2(q, q2, dt_s, tau_s, tau2_s, factor):
    """`(q exp(-f dt / tau), q2 exp(-f dt / tau2))`: the two components of a
    double-exponential volatile part relaxing for `dt_s` at Arrhenius factor
    `f` (both Markovian, so relaxing by dt1 then dt2 equals dt1 + dt2)."""
    dt = factor * jnp.asarray(dt_s, jnp.float32)
    return q * jnp.exp(-dt / tau_s), q2 * jnp.exp(-dt / tau2_s)
