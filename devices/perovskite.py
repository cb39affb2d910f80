"""Halide-perovskite synapses: ion migration with a volatile and a non-volatile part."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .base import (
    ROOM_TEMPERATURE_K,
    Scalar,
    VolatileState,
    add_cycles,
    after_write,
    arrhenius_factor,
    check_time,
    decay,
    decay2,
    noisy_target,
    param,
    pin_stuck,
)
from .cards import from_card
from .nonlinear import AbstractNLDevice
from .rng import normal_pair
from .variability import VariabilityFields


class PerovskiteState(VolatileState):
    """State of an array of perovskite cells.

    Attributes:
        g: conductance read now, clip(w + v, g_min, g_max) (S), where the
            volatile conductance is
            `v = (g_max - g_min)(vol_step q_e + opt_vol_step q_o)`.
        w: non-volatile conductance (ion redistribution that stays) (S).
        q_e, q_o: volatile electrical / optical pulse counts, decaying as
            exp(-dt / tau) (pulse units, so n up and n down pulses cancel exactly).
        a_ltp, a_ltd: per-device nonlinearity (device-to-device variation).
        xi_slow: standard normal draw of the slow read deviation, drawn at the
            cell's last write.
        age_s: seconds since the cell's last pulse write (None: this
            model's reads do not depend on time, so `init` keeps no clock).
        g_lo, g_hi: the cell's window as fabricated (`window_d2d`; None:
            the nominal range).
        cycles: full-swing write cycles since fabrication (`endurance`).
        stuck: stuck-at map, +1 at the upper bound, -1 at the lower, 0
            healthy (`faults`).
        q_e2, q_o2: the pulse counts of the second (time constant `tau2_s`)
            volatile component (None: a state built without them, read as
            `q_e`, `q_o`).
    """

    q_e: Float[Array, "*cells"]
    q_o: Float[Array, "*cells"]
    a_ltp: Float[Array, "*cells"]
    a_ltd: Float[Array, "*cells"]
    xi_slow: Float[Array, "*cells"] | None = None
    age_s: Float[Array, "*cells"] | None = None
    g_lo: Float[Array, "*cells"] | None = None
    g_hi: Float[Array, "*cells"] | None = None
    cycles: Float[Array, "*cells"] | None = None
    stuck: Float[Array, "*cells"] | None = None
    q_e2: Float[Array, "*cells"] | None = None
    q_o2: Float[Array, "*cells"] | None = None


def paired_pulse_facilitation(dt_s, c1, tau_s):
    """PPF(dt) = 1 + C1 exp(-dt / tau): the second response over the first."""
    return 1.0 + c1 * jnp.exp(-jnp.asarray(dt_s, jnp.float32) / tau_s)


class Perovskite(AbstractNLDevice, VariabilityFields):
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
        g_min, g_max, p_max_ltp, p_max_ltd, a_ltp, a_ltd, sigma_c2c, sigma_d2d,
            sigma_read, sigma_prog: the NeuroSim set of the non-volatile part
            (see `AbstractNLDevice`).
        vol_step: volatile conductance per pulse, fraction of the range, >= 0.
        tau_s: volatile decay time constant (s), > 0.
        opt_step: non-volatile LTP-pulse equivalents per light pulse, >= 0.
        opt_vol_step: volatile conductance per light pulse, fraction, >= 0.
        sigma_read_slow: slow relative read deviation (drawn at each write,
            the same for every read until the next), >= 0; `sigma_read` is
            the fast (per-read) part.
        p_stuck_on, p_stuck_off, faults, sigma_gmin_d2d, sigma_gmax_d2d,
            endurance_cycles, endurance_beta, window_d2d, endurance:
            stuck-at faults, device-to-device window and endurance closure,
            as every family (docs/devices.md, "Variability"): the window
            spreads about and closes towards its middle; an electrical pulse
            is `1 / (2 p_max)` of a cycle, a light pulse `opt_step` of them.
        temperature_k: device temperature (K), in [200, 500]; 300 K (the
            default) is the reference, where nothing changes.
        t_ref_k: temperature at which `tau_s`, `tau2_s` hold (K).
        ea_ev: activation energy of the volatile decay (ion migration back)
            (eV), in [0, 3]: both time constants become `tau /
            arrhenius_factor(ea_ev, temperature_k, t_ref_k)`.
        frac_tau2, tau2_s: double-exponential volatile decay: a fraction
            `frac_tau2` in [0, 1] of every pulse's volatile conductance decays
            with `tau2_s` (s) instead of `tau_s`, so a pulse's volatile part
            relaxes as `(1 - f) exp(-t / tau) + f exp(-t / tau2)`; 0 (the
            default) is the single exponential.

    References: the cards `perovskite_*` and docs/devices.md.
    """

    vol_step: Scalar = param(ge=0.0, le=1.0)
    tau_s: Scalar = param(gt=0.0, unit="s")
    opt_step: Scalar = param(0.0, ge=0.0)
    opt_vol_step: Scalar = param(0.0, ge=0.0, le=1.0)
    sigma_read_slow: Scalar = param(0.0, ge=0.0)

    temperature_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    t_ref_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    ea_ev: Scalar = param(0.0, ge=0.0, le=3.0, unit="eV")
    frac_tau2: Scalar = param(0.0, ge=0.0, le=1.0)
    tau2_s: Scalar = param(1.0, gt=0.0, unit="s")

    @classmethod
    def from_card(cls, name: str = "perovskite_mapbi3_poddar", **overrides):
        """A Perovskite with the numbers of card `name`, fields overridable."""
        return from_card(cls, name, overrides)

    def init(self, shape, *, key: PRNGKeyArray) -> PerovskiteState:
        a_ltp, a_ltd = self.draw_nonlinearity(shape, key)
        g_lo, g_hi, stuck, cycles = self.draw_cells(shape, key)
        g = jnp.full(shape, self.g_min, jnp.float32)
        z = jnp.zeros(shape, jnp.float32)
        # No write clock (age_s): nothing in a read depends on the time since
        # a write; the volatile part decays under relax.
        state = PerovskiteState(g=g, w=g, q_e=z, q_o=z, a_ltp=a_ltp, a_ltd=a_ltd,
                                xi_slow=z, g_lo=g_lo, g_hi=g_hi, cycles=cycles,
                                stuck=stuck, q_e2=z, q_o2=z)
        if g_lo is None and stuck is None:
            return state
        return self._with(state, jnp.broadcast_to(self.window(state)[0], shape),
                          z, z)

    def volatile(self, state) -> Float[Array, "*cells"]:
        """The volatile conductance v (S) of every cell."""
        q = self.vol_step * state.q_e + self.opt_vol_step * state.q_o
        if state.q_e2 is not None and state.q_o2 is not None:
            # (1 - f) q + f q2: exactly q when frac_tau2 = 0.
            q2 = self.vol_step * state.q_e2 + self.opt_vol_step * state.q_o2
            q = q + self.frac_tau2 * (q2 - q)
        return (self.g_max - self.g_min) * q

    def _with(self, state: PerovskiteState, w, q_e, q_o, xi_slow=None, age_s=None,
              cycles=None, q2=None):
        # q2 = (q_e2, q_o2) of the second volatile component; None keeps the
        # state's own.
        q_e2, q_o2 = (state.q_e2, state.q_o2) if q2 is None else q2
        state = PerovskiteState(
            g=state.g, w=w, q_e=q_e, q_o=q_o, a_ltp=state.a_ltp, a_ltd=state.a_ltd,
            xi_slow=state.xi_slow if xi_slow is None else xi_slow,
            age_s=state.age_s if age_s is None else age_s,
            g_lo=state.g_lo, g_hi=state.g_hi,
            cycles=state.cycles if cycles is None else cycles, stuck=state.stuck,
            q_e2=q_e2, q_o2=q_o2)
        lo, hi = self.window(state)  # nominal range, or each cell's own
        if state.stuck is not None:  # stuck cells: w and g held at a bound
            state = eqx.tree_at(lambda s: s.w, state, pin_stuck(w, state.stuck, lo, hi))
        g = pin_stuck(jnp.clip(state.w + self.volatile(state), lo, hi),
                      state.stuck, lo, hi)
        return eqx.tree_at(lambda s: s.g, state, g)

    def program(
        self, state: PerovskiteState, g_target, *, key: PRNGKeyArray
    ) -> PerovskiteState:
        # A verified write ends no more precisely than its last pulse's C2C.
        k_prog, k_slow = jax.random.split(key)
        sigma = jnp.maximum(self.sigma_prog, self.sigma_c2c)
        lo, hi = self.window(state)
        w = noisy_target(g_target, state.g.shape, lo, hi,
                         sigma * (self.g_max - self.g_min), k_prog)
        z = jnp.zeros_like(w)
        cycles = add_cycles(state, jnp.abs(w - state.w) / (2.0 * (hi - lo)))
        return self._with(state, w, z, z,
                          jax.random.normal(k_slow, w.shape, jnp.float32),
                          cycles=cycles, q2=_q2_or_none(state, z, z))

    def _move(self, state: PerovskiteState, n, key, xi=None):
        """Non-volatile E-NL move by n pulse-equivalents (+ LTP, - LTD), with
        C2C, within each cell's window (closed by the state's cycles)."""
        return self.nl_move(state.w, n, state.a_ltp, state.a_ltd, key,
                            window=self.window(state), xi=xi)

    def _worn(self, state: PerovskiteState, n) -> PerovskiteState:
        """`state` with the wear of `n` pulse-equivalents counted (`endurance`)."""
        cycles = add_cycles(state, self.nl_cycles(n))
        if cycles is None:
            return state
        return eqx.tree_at(lambda s: s.cycles, state, cycles)

    def update(
        self, state: PerovskiteState, pulses, *, key: PRNGKeyArray
    ) -> PerovskiteState:
        n = jnp.broadcast_to(jnp.asarray(pulses, jnp.float32), state.g.shape)
        # C2C noise and the new slow deviation from one hash (devices.rng).
        z_c2c, z_slow = normal_pair(key, state.g.shape)
        state = self._worn(state, n)
        w = self._move(state, n, key, xi=z_c2c)
        age, xi = after_write(state, n, key, new_xi=z_slow)
        return self._with(state, w, state.q_e + n, state.q_o, xi, age,
                          q2=_q2_or_none(state, _add(state.q_e2, n), state.q_o2))

    def illuminate(
        self, state: PerovskiteState, light_pulses, *, key: PRNGKeyArray
    ) -> PerovskiteState:
        """Apply `light_pulses` (>= 0) optical pulses: potentiation only."""
        m = jnp.broadcast_to(
            jnp.maximum(jnp.asarray(light_pulses, jnp.float32), 0.0), state.g.shape
        )
        z_c2c, z_slow = normal_pair(key, state.g.shape)
        state = self._worn(state, self.opt_step * m)
        w = self._move(state, self.opt_step * m, key, xi=z_c2c)
        age, xi = after_write(state, m, key, new_xi=z_slow)
        return self._with(state, w, state.q_e, state.q_o + m, xi, age,
                          q2=_q2_or_none(state, state.q_e2, _add(state.q_o2, m)))

    def relax(self, state: PerovskiteState, dt_s) -> PerovskiteState:
        age = None if state.age_s is None else state.age_s + jnp.asarray(
            dt_s, jnp.float32)
        af = arrhenius_factor(self.ea_ev, self.temperature_k, self.t_ref_k)
        if state.q_e2 is None or state.q_o2 is None:
            q_e, q_o = (decay(q, af * jnp.asarray(dt_s, jnp.float32), self.tau_s)
                        for q in (state.q_e, state.q_o))
            return self._with(state, state.w, q_e, q_o, age_s=age)
        q_e, q_e2 = decay2(state.q_e, state.q_e2, dt_s, self.tau_s, self.tau2_s, af)
        q_o, q_o2 = decay2(state.q_o, state.q_o2, dt_s, self.tau_s, self.tau2_s, af)
        return self._with(state, state.w, q_e, q_o, age_s=age, q2=(q_e2, q_o2))

    def read_parts(self, state: PerovskiteState, t_s=0.0):
        check_time(t_s)
        a = jnp.abs(state.g)
        return state.g, self.sigma_read_slow * a, self.sigma_read * a


def _add(q, n):
    """`q + n`, or None for a state without that component."""
    return None if q is None else q + n


def _q2_or_none(state: PerovskiteState, q_e2, q_o2):
    """`(q_e2, q_o2)` for a state with a second volatile component, else
    `(None, None)` (a hand-built state keeps its structure)."""
    if state.q_e2 is None or state.q_o2 is None:
        return (None, None)
    return (q_e2, q_o2)
