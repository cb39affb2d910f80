"""Ionic synapses: ECRAM, protonic resistors, Li-ion transistors, droplet interfaces."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .base import (
    ROOM_TEMPERATURE_K,
    AbstractDevice,
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
from .rng import normal_pair
from .variability import VariabilityFields


class IonicState(VolatileState):
    """State of an array of ionic cells.

    Attributes:
        g: conductance read now, clip(w + vol_step span q, g_min, g_max) (S).
        w: non-volatile conductance (intercalated ions) (S).
        q: volatile pulse count (ions that diffuse back): signed pulses applied,
            decaying as exp(-dt / tau); the volatile conductance is
            `vol_step (g_max - g_min) q`. Kept in pulse units so that n up and n
            down pulses cancel exactly.
        dx_up, dx_dn: per-device step sizes (fraction of the range per pulse).
        gamma_up, gamma_dn: per-device soft-bound strength.
        xi_slow: standard normal draw of the slow read deviation, drawn at the
            cell's last write.
        age_s: seconds since the cell's last pulse write (None: this
            model's reads do not depend on time, so `init` keeps no clock).
        g_lo, g_hi: the cell's window as fabricated (`window_d2d`; None:
            the nominal range).
        cycles: full-swing write cycles since fabrication (`endurance`).
        stuck: stuck-at map, +1 at the upper bound, -1 at the lower, 0
            healthy (`faults`).
        q2: pulse count of the second (time constant `tau2_s`) volatile
            component (None: a state built without it, read as `q`).
    """

    q: Float[Array, "*cells"]
    dx_up: Float[Array, "*cells"]
    dx_dn: Float[Array, "*cells"]
    gamma_up: Float[Array, "*cells"]
    gamma_dn: Float[Array, "*cells"]
    xi_slow: Float[Array, "*cells"] | None = None
    age_s: Float[Array, "*cells"] | None = None
    g_lo: Float[Array, "*cells"] | None = None
    g_hi: Float[Array, "*cells"] | None = None
    cycles: Float[Array, "*cells"] | None = None
    stuck: Float[Array, "*cells"] | None = None
    q2: Float[Array, "*cells"] | None = None


def linear_step_response(x0, n, dx, gamma, x_ref):
    """n pulses of aihwkit's LinearStep (E-LS) in closed form, x = normalized g.

    One up pulse moves `x` by `dx (1 - gamma (x - x_ref) / (1 - x_ref))`, one
    down pulse by `-dx (1 + gamma (x - x_ref) / x_ref)` (E-LS with the weight
    range mapped to [0, 1] and the weight zero at `x_ref`). Each is an affine
    map `x -> x* + (1 - c)(x - x*)`, so n pulses give
    `x_n = x0 + s dx (1 - gamma (x0 - x_ref) / b) expm1(|n| log1p(-c)) / (-c)`
    with `s = sign n`, `b = 1 - x_ref` (up) or `-x_ref` (down), `c = s dx gamma / b`;
    the last factor tends to |n| as gamma -> 0 (linear steps).
    """
    up = n > 0
    s = jnp.where(up, 1.0, -1.0)
    b = jnp.where(up, 1.0 - x_ref, -x_ref)
    m = jnp.abs(n)
    c = s * dx * gamma / b
    small = c < 1e-6
    c_safe = jnp.where(small, 1.0, c)
    factor = jnp.where(small, m, jnp.expm1(m * jnp.log1p(-c_safe)) / -c_safe)
    step0 = s * dx * (1.0 - gamma * (x0 - x_ref) / b)
    return x0 + step0 * factor


class IonicSynapse(AbstractDevice, VariabilityFields):
    """Electrochemical (ionic) synapse: near-linear soft-bounded steps plus an
    optional volatile part.

    Non-volatile conductance follows aihwkit's LinearStep (E-LS) in normalized
    conductance `x = (w - g_min) / (g_max - g_min)`: steps of `dx` per pulse
    shrinking towards the bounds with strength `gamma_up`, `gamma_dn`
    (`linear_step_response`), each pulse multiplied by `(1 + sigma_c2c xi)`
    (for a write of n pulses the summed noise has std `sigma_c2c |dx_total| /
    sqrt|n|`, exact for gamma = 0). Device-to-device, as aihwkit's pulsed
    devices draw it: one gain per cell shared by both directions and a small
    up/down asymmetry, `dx_up = dx |1 + sigma_d2d xi_0| (1 + sigma_updown_d2d
    xi_1)`, `dx_dn = dx |1 + sigma_d2d xi_0| (1 - sigma_updown_d2d xi_1)`
    (aihwkit's dw_min_dtod and up_down_dtod), and `gamma
    exp(sigma_gamma_d2d xi)` (log-normal, so gamma stays >= 0; aihwkit draws
    |gamma + gamma_dtod xi|).
    Volatile part (e.g. a droplet-interface bilayer whose pores close, or
    ECRAM self-discharge): each pulse adds `vol_step (g_max - g_min) n`, decaying
    as `exp(-dt / tau_s)` under `relax`. Reads see `g = clip(w + v)` with
    relative read noise `sigma_read`.

    Args:
        g_min, g_max: conductance bounds (S).
        dx: non-volatile step per pulse, fraction of the range, in [0, 1]
            (1 / number of states; 0 for a purely volatile device).
        gamma_up, gamma_dn: soft-bound strength (0 linear, 1 soft bounds), >= 0.
        x_ref: normalized conductance of the weight zero (symmetry reference),
            in (0, 1).
        sigma_c2c: relative std per pulse (aihwkit dw_min_std), >= 0.
        sigma_d2d: relative device-to-device std of the step gain (both
            directions), in [0, 1).
        sigma_updown_d2d: device-to-device std of the up/down asymmetry, in
            [0, 1).
        sigma_gamma_d2d: device-to-device log-std of gamma, >= 0.
        sigma_read: relative std of one read (fast, white), >= 0.
        sigma_read_slow: slow relative read deviation (drawn at each write,
            the same for every read until the next), >= 0.
        sigma_prog: programming error std, fraction of the range, >= 0 (a
            write ends no more precisely than one step's C2C noise,
            `sigma_c2c dx`, whichever is larger).
        vol_step: volatile step per pulse, fraction of the range, in [0, 1].
        tau_s: volatile time constant (s), > 0.
        sigma_gmin_d2d, sigma_gmax_d2d: device-to-device spread of the
            window's edges (aihwkit's w_min_dtod, w_max_dtod): relative to
            their distance from the weight zero `x_ref`, in [0, 1); need
            `window_d2d=True` (static). The soft bounds of the steps stay
            the nominal ones (aihwkit's mean_bound_reference); each cell is
            clipped to its own window.
        p_stuck_on, p_stuck_off, faults, endurance_cycles, endurance_beta,
            endurance: stuck-at faults and endurance closure, as every
            family (docs/devices.md, "Variability"); the window closes
            towards `x_ref`; a pulse is `dx / 2` of a cycle (`1 / dx`
            pulses sweep the window).
        temperature_k: device temperature (K), in [200, 500]; 300 K (the
            default) is the reference, where nothing changes.
        t_ref_k: temperature at which `tau_s`, `tau2_s` hold (K).
        ea_ev: activation energy of the volatile decay (ion back-diffusion)
            (eV), in [0, 3]: both time constants become `tau /
            arrhenius_factor(ea_ev, temperature_k, t_ref_k)`.
        frac_tau2, tau2_s: double-exponential volatile decay: a fraction
            `frac_tau2` in [0, 1] of every pulse's volatile conductance decays
            with `tau2_s` (s), so a pulse's volatile part relaxes as
            `(1 - f) exp(-t / tau) + f exp(-t / tau2)`; 0 (the default) is
            the single exponential.

    References: the cards `ionic_*` and docs/devices.md.
    """

    g_min: Scalar = param()
    g_max: Scalar = param()
    dx: Scalar = param(ge=0.0, le=1.0)
    gamma_up: Scalar = param(ge=0.0)
    gamma_dn: Scalar = param(ge=0.0)
    x_ref: Scalar = param(gt=0.0, lt=1.0)
    sigma_c2c: Scalar = param(ge=0.0)
    sigma_d2d: Scalar = param(ge=0.0, lt=1.0)
    sigma_gamma_d2d: Scalar = param(ge=0.0)
    sigma_read: Scalar = param(ge=0.0)
    sigma_prog: Scalar = param(ge=0.0)
    vol_step: Scalar = param(0.0, ge=0.0, le=1.0)
    tau_s: Scalar = param(1.0, gt=0.0, unit="s")
    sigma_updown_d2d: Scalar = param(0.0, ge=0.0, lt=1.0)
    sigma_read_slow: Scalar = param(0.0, ge=0.0)

    temperature_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    t_ref_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    ea_ev: Scalar = param(0.0, ge=0.0, le=3.0, unit="eV")
    frac_tau2: Scalar = param(0.0, ge=0.0, le=1.0)
    tau2_s: Scalar = param(1.0, gt=0.0, unit="s")

    def window_ref(self):
        """The weight zero, `g_min + x_ref (g_max - g_min)`: aihwkit's window
        spread is relative to w_max and w_min, measured from it."""
        return self.g_min + self.x_ref * (self.g_max - self.g_min)

    @classmethod
    def from_card(cls, name: str = "ionic_ecram_tang2018", **overrides):
        """An IonicSynapse with the numbers of card `name`, fields overridable."""
        return from_card(cls, name, overrides)

    def init(self, shape, *, key: PRNGKeyArray) -> IonicState:
        k = jax.random.split(key, 4)
        xi = [jax.random.normal(kk, shape, jnp.float32) for kk in k]
        g = jnp.full(shape, self.g_min, jnp.float32)
        gain = self.dx * jnp.abs(1.0 + self.sigma_d2d * xi[0])
        asym = self.sigma_updown_d2d * xi[1]
        z = jnp.zeros(shape, jnp.float32)
        g_lo, g_hi, stuck, cycles = self.draw_cells(shape, key)
        state = IonicState(
            g=g, w=g, q=z,
            dx_up=gain * jnp.abs(1.0 + asym),
            dx_dn=gain * jnp.abs(1.0 - asym),
            gamma_up=self.gamma_up * jnp.exp(self.sigma_gamma_d2d * xi[2]),
            gamma_dn=self.gamma_dn * jnp.exp(self.sigma_gamma_d2d * xi[3]),
            xi_slow=z,  # no write clock: reads do not depend on time
            g_lo=g_lo, g_hi=g_hi, cycles=cycles, stuck=stuck,
            q2=z,
        )
        if g_lo is None and stuck is None:
            return state
        return self._with(state, jnp.broadcast_to(self.window(state)[0], shape), z)

    def _with(self, state: IonicState, w, q, q2=None):
        lo, hi = self.window(state)  # nominal range, or each cell's own
        w = pin_stuck(w, state.stuck, lo, hi)
        # (1 - f) q + f q2: exactly q when frac_tau2 = 0 (or without q2).
        qv = q if q2 is None else q + self.frac_tau2 * (q2 - q)
        g = jnp.clip(w + self.vol_step * (self.g_max - self.g_min) * qv, lo, hi)
        g = pin_stuck(g, state.stuck, lo, hi)
        if q2 is None:
            return eqx.tree_at(lambda s: (s.g, s.w, s.q), state, (g, w, q))
        return eqx.tree_at(lambda s: (s.g, s.w, s.q, s.q2), state, (g, w, q, q2))

    def program(self, state: IonicState, g_target, *, key: PRNGKeyArray) -> IonicState:
        k_prog, k_slow = jax.random.split(key)
        sigma = jnp.maximum(self.sigma_prog, self.sigma_c2c * self.dx)
        lo, hi = self.window(state)
        w = noisy_target(g_target, state.g.shape, lo, hi,
                         sigma * (self.g_max - self.g_min), k_prog)
        state = self._worn(state, jnp.abs(w - state.w) / (2.0 * (hi - lo)))
        z = jnp.zeros_like(w)
        state = self._with(state, w, z, None if state.q2 is None else z)
        return _with_slow(state, jax.random.normal(k_slow, w.shape, jnp.float32),
                          state.age_s)

    def update(self, state: IonicState, pulses, *, key: PRNGKeyArray) -> IonicState:
        n = jnp.broadcast_to(jnp.asarray(pulses, jnp.float32), state.g.shape)
        span = self.g_max - self.g_min
        state = self._worn(state, jnp.abs(n) * self.dx / 2.0)
        lo, hi = self.window(state)
        x_lo, x_hi = (lo - self.g_min) / span, (hi - self.g_min) / span
        x0 = jnp.clip((state.w - self.g_min) / span, x_lo, x_hi)
        up = n > 0
        dx = jnp.where(up, state.dx_up, state.dx_dn)
        gamma = jnp.where(up, state.gamma_up, state.gamma_dn)
        x = linear_step_response(x0, n, dx, gamma, self.x_ref)
        m = jnp.maximum(jnp.abs(n), 1.0)
        noise = self.sigma_c2c * jnp.abs(x - x0) / jnp.sqrt(m)
        # C2C noise and the new slow deviation from one hash (devices.rng).
        z_c2c, z_slow = normal_pair(key, x.shape)
        x = x + noise * z_c2c
        w = self.g_min + jnp.clip(x, x_lo, x_hi) * span
        w = jnp.where(n == 0, state.w, jnp.clip(w, lo, hi))
        age, xi = after_write(state, n, key, new_xi=z_slow)
        q2 = None if state.q2 is None else state.q2 + n
        return _with_slow(self._with(state, w, state.q + n, q2), xi, age)

    def _worn(self, state: IonicState, d_cycles) -> IonicState:
        """`state` with `d_cycles` more write cycles counted (`endurance`)."""
        cycles = add_cycles(state, d_cycles)
        if cycles is None:
            return state
        return eqx.tree_at(lambda s: s.cycles, state, cycles)

    def relax(self, state: IonicState, dt_s) -> IonicState:
        af = arrhenius_factor(self.ea_ev, self.temperature_k, self.t_ref_k)
        if state.q2 is None:
            state = self._with(state, state.w, decay(
                state.q, af * jnp.asarray(dt_s, jnp.float32), self.tau_s))
        else:
            q, q2 = decay2(state.q, state.q2, dt_s, self.tau_s, self.tau2_s, af)
            state = self._with(state, state.w, q, q2)
        if state.age_s is None:
            return state
        return eqx.tree_at(lambda s: s.age_s, state,
                           state.age_s + jnp.asarray(dt_s, jnp.float32))

    def read_parts(self, state: IonicState, t_s=0.0):
        check_time(t_s)
        a = jnp.abs(state.g)
        return state.g, self.sigma_read_slow * a, self.sigma_read * a


def _with_slow(state: IonicState, xi_slow, age_s) -> IonicState:
    """`state` with new slow read draws and ages (fields that may be None)."""
    return IonicState(g=state.g, w=state.w, q=state.q, dx_up=state.dx_up,
                      dx_dn=state.dx_dn, gamma_up=state.gamma_up,
                      gamma_dn=state.gamma_dn, xi_slow=xi_slow, age_s=age_s,
                      g_lo=state.g_lo, g_hi=state.g_hi, cycles=state.cycles,
                      stuck=state.stuck, q2=state.q2)
