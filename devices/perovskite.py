"""Halide-perovskite synapses: ion migration with a volatile and a non-volatile part."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .base import (
    AbstractDevice,
    AbstractDeviceState,
    as_param,
    check_bounds,
    check_range,
    concrete,
)
from .cards import from_card
from .memristor import nl_step


class PerovskiteState(AbstractDeviceState):
    """State of an array of perovskite cells.

    Attributes:
        g: conductance read now, clip(w + v, g_min, g_max) (S), where the
            volatile conductance is
            `v = (g_max - g_min)(vol_step q_e + opt_vol_step q_o)`.
        w: non-volatile conductance (ion redistribution that stays) (S).
        q_e, q_o: volatile electrical / optical pulse counts, decaying as
            exp(-dt / tau) (pulse units, so n up and n down pulses cancel exactly).
        a_ltp, a_ltd: per-device nonlinearity (device-to-device variation).
    """

    g: Float[Array, "*cells"]
    w: Float[Array, "*cells"]
    q_e: Float[Array, "*cells"]
    q_o: Float[Array, "*cells"]
    a_ltp: Float[Array, "*cells"]
    a_ltd: Float[Array, "*cells"]


def decay(v, dt_s, tau_s):
    """Exponential relaxation of a volatile component, v exp(-dt / tau).

    E-VOL with beta = 1 (the only Markovian case: relaxing by dt1 then dt2
    equals relaxing by dt1 + dt2).
    """
    return v * jnp.exp(-jnp.asarray(dt_s, jnp.float32) / tau_s)


def paired_pulse_facilitation(dt_s, c1, tau_s):
    """PPF(dt) = 1 + C1 exp(-dt / tau): the second response over the first."""
    return 1.0 + c1 * jnp.exp(-jnp.asarray(dt_s, jnp.float32) / tau_s)


def _check_a(name, value):
    a = concrete(value)
    if a is not None and (not jnp.all(jnp.isfinite(a)) or (a == 0).any()):
        raise ValueError(
            f"{name} must be a finite nonzero number (|a| large is linear); "
            f"got {name}={a}"
        )


class Perovskite(AbstractDevice):
    """Halide-perovskite synapse with a non-volatile and a volatile component.

    The non-volatile conductance `w` moves along the NeuroSim curves (E-NL):
    `n > 0` electrical pulses climb the LTP curve (`a_ltp`, `p_max_ltp`), `n < 0`
    descend the LTD curve, with C2C noise `sigma_c2c (g_max - g_min) sqrt|n|`.
    Every pulse also adds a volatile conductance `vol_step (g_max - g_min) n`
    that decays as `v exp(-dt / tau_s)` under `relax` (E-VOL with beta = 1):
    ions pushed by the field drift back. A read sees `g = clip(w + v)`.

    Paired-pulse facilitation follows: a second pulse `dt` after the first finds
    `v0 exp(-dt/tau)` left, so the second response over the first is
    `1 + C1 exp(-dt / tau)` with `C1 = vol_step / (vol_step + dw1 / span)`.

    Light pulses (`illuminate`) potentiate: each moves `opt_step` LTP-pulse
    equivalents up the curve and adds `opt_vol_step (g_max - g_min)` of
    volatile (photo-generated) conductance.

    Args:
        g_min, g_max: conductance bounds (S).
        p_max_ltp, p_max_ltd, a_ltp, a_ltd: E-NL pulse response (a nonzero).
        sigma_c2c, sigma_d2d, sigma_read, sigma_prog: as in `RRAM`.
        vol_step: volatile conductance per pulse, fraction of the range, >= 0.
        tau_s: volatile decay time constant (s), > 0.
        opt_step: non-volatile LTP-pulse equivalents per light pulse, >= 0.
        opt_vol_step: volatile conductance per light pulse, fraction, >= 0.

    References: see the cards `perovskite_*`.
    """

    g_min: Float[Array, ""] = eqx.field(converter=as_param)
    g_max: Float[Array, ""] = eqx.field(converter=as_param)
    p_max_ltp: Float[Array, ""] = eqx.field(converter=as_param)
    p_max_ltd: Float[Array, ""] = eqx.field(converter=as_param)
    a_ltp: Float[Array, ""] = eqx.field(converter=as_param)
    a_ltd: Float[Array, ""] = eqx.field(converter=as_param)
    sigma_c2c: Float[Array, ""] = eqx.field(converter=as_param)
    sigma_d2d: Float[Array, ""] = eqx.field(converter=as_param)
    sigma_read: Float[Array, ""] = eqx.field(converter=as_param)
    sigma_prog: Float[Array, ""] = eqx.field(converter=as_param)
    vol_step: Float[Array, ""] = eqx.field(converter=as_param)
    tau_s: Float[Array, ""] = eqx.field(converter=as_param)
    opt_step: Float[Array, ""] = eqx.field(converter=as_param, default=0.0)
    opt_vol_step: Float[Array, ""] = eqx.field(converter=as_param, default=0.0)

    def __check_init__(self):
        check_bounds(self.g_min, self.g_max)
        check_range("p_max_ltp", self.p_max_ltp, 0.0, lo_open=True, unit="pulses")
        check_range("p_max_ltd", self.p_max_ltd, 0.0, lo_open=True, unit="pulses")
        _check_a("a_ltp", self.a_ltp)
        _check_a("a_ltd", self.a_ltd)
        check_range("sigma_c2c", self.sigma_c2c, 0.0)
        check_range("sigma_d2d", self.sigma_d2d, 0.0, 1.0, hi_open=True)
        check_range("sigma_read", self.sigma_read, 0.0)
        check_range("sigma_prog", self.sigma_prog, 0.0)
        check_range("vol_step", self.vol_step, 0.0, 1.0)
        check_range("tau_s", self.tau_s, 0.0, lo_open=True, unit="s")
        check_range("opt_step", self.opt_step, 0.0)
        check_range("opt_vol_step", self.opt_vol_step, 0.0, 1.0)

    @classmethod
    def from_card(cls, name: str = "perovskite_mapbi3_poddar", **overrides):
        """A Perovskite with the numbers of card `name`, fields overridable."""
        return from_card(cls, name, overrides)

    def init(self, shape, *, key: PRNGKeyArray) -> PerovskiteState:
        k1, k2 = jax.random.split(key)
        xi1 = jax.random.normal(k1, shape, jnp.float32)
        xi2 = jax.random.normal(k2, shape, jnp.float32)
        g = jnp.full(shape, self.g_min, jnp.float32)
        return PerovskiteState(
            g=g, w=g, q_e=jnp.zeros(shape, jnp.float32),
            q_o=jnp.zeros(shape, jnp.float32),
            a_ltp=self.a_ltp * jnp.abs(1.0 + self.sigma_d2d * xi1),
            a_ltd=self.a_ltd * jnp.abs(1.0 + self.sigma_d2d * xi2),
        )

    def volatile(self, state) -> Float[Array, "*cells"]:
        """The volatile conductance v (S) of every cell."""
        q = self.vol_step * state.q_e + self.opt_vol_step * state.q_o
        return (self.g_max - self.g_min) * q

    def _with(self, state, w, q_e, q_o):
        state = PerovskiteState(g=state.g, w=w, q_e=q_e, q_o=q_o,
                                a_ltp=state.a_ltp, a_ltd=state.a_ltd)
        g = jnp.clip(w + self.volatile(state), self.g_min, self.g_max)
        return eqx.tree_at(lambda s: s.g, state, g)

    def program(self, state, g_target, *, key: PRNGKeyArray) -> PerovskiteState:
        g_t = jnp.clip(jnp.asarray(g_target, jnp.float32), self.g_min, self.g_max)
        g_t = jnp.broadcast_to(g_t, state.g.shape)
        noise = self.sigma_prog * (self.g_max - self.g_min)
        w = g_t + noise * jax.random.normal(key, g_t.shape, jnp.float32)
        w = jnp.clip(w, self.g_min, self.g_max)
        z = jnp.zeros_like(w)
        return self._with(state, w, z, z)

    def _move(self, state, n, key):
        """Non-volatile E-NL move by n pulse-equivalents (+ LTP, - LTD), with C2C."""
        w0 = jnp.clip(state.w, self.g_min, self.g_max)
        up = n > 0
        p_max = jnp.where(up, self.p_max_ltp, self.p_max_ltd)
        a = jnp.where(up, state.a_ltp, state.a_ltd)
        w = nl_step(w0, n, p_max, a, self.g_min, self.g_max)
        c2c = self.sigma_c2c * (self.g_max - self.g_min) * jnp.sqrt(jnp.abs(n))
        w = w + c2c * jax.random.normal(key, w.shape, jnp.float32)
        return jnp.where(n == 0, state.w, jnp.clip(w, self.g_min, self.g_max))

    def update(self, state, pulses, *, key: PRNGKeyArray) -> PerovskiteState:
        n = jnp.broadcast_to(jnp.asarray(pulses, jnp.float32), state.g.shape)
        w = self._move(state, n, key)
        return self._with(state, w, state.q_e + n, state.q_o)

    def illuminate(self, state, light_pulses, *, key: PRNGKeyArray) -> PerovskiteState:
        """Apply `light_pulses` (>= 0) optical pulses: potentiation only."""
        m = jnp.broadcast_to(
            jnp.maximum(jnp.asarray(light_pulses, jnp.float32), 0.0), state.g.shape
        )
        w = self._move(state, self.opt_step * m, key)
        return self._with(state, w, state.q_e, state.q_o + m)

    def relax(self, state, dt_s) -> PerovskiteState:
        return self._with(state, state.w, decay(state.q_e, dt_s, self.tau_s),
                          decay(state.q_o, dt_s, self.tau_s))

    def read_stats(self, state, t_s=0.0):
        del t_s
        return state.g, self.sigma_read * jnp.abs(state.g)
