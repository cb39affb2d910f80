"""Phase-change memory: the drift reference (aihwkit's PCMLikeNoiseModel, E-PCM)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .base import (
    ROOM_TEMPERATURE_K,
    AbstractDevice,
    AbstractDeviceState,
    Scalar,
    add_cycles,
    after_write,
    arrhenius_factor,
    cell_age,
    fresh_age,
    param,
    pin_stuck,
    written,
)
from .cards import from_card
from .nonlinear import nl_pulse_update
from .rng import normal, normal_pair
from .variability import VariabilityFields

G_REF_PCM = 25e-6  # S: the g_max the aihwkit polynomials were fitted at


class PCMState(AbstractDeviceState):
    """State of an array of PCM cells.

    Attributes:
        g: conductance right after programming, g_p (S); drift acts on reads.
        nu: per-cell drift exponent, drawn when the cell was programmed.
        q_s: relative 1/f read-noise amplitude `Q_s(g_p / g_max)`, set by the
            programmed conductance (stored so a read costs one exp per cell).
        xi_slow: standard normal draw of the accumulated 1/f deviation, drawn
            at the cell's last write (aihwkit draws it once per drift
            evaluation): every read at one time sees the same deviation.
        age_s: seconds since the cell's last pulse write, advanced by `relax`
            (`AGE_FROM_PROGRAMMING` when not pulsed since programming).
        g_lo, g_hi: the cell's window as fabricated (`window_d2d`; None:
            the nominal range).
        cycles: full-swing write cycles since fabrication (`endurance`).
        stuck: stuck-at map, +1 at the upper bound, -1 at the lower, 0
            healthy (`faults`).
    """

    g: Float[Array, "*cells"]
    nu: Float[Array, "*cells"]
    q_s: Float[Array, "*cells"]
    xi_slow: Float[Array, "*cells"] | None = None
    age_s: Float[Array, "*cells"] | None = None
    g_lo: Float[Array, "*cells"] | None = None
    g_hi: Float[Array, "*cells"] | None = None
    cycles: Float[Array, "*cells"] | None = None
    stuck: Float[Array, "*cells"] | None = None


def pcm_prog_sigma(g_hat, c0, c1, c2, g_max):
    """Programming-noise std (S): (c0 + c1 g^ + c2 g^2) [uS] x g_max / 25 uS."""
    return (c0 + c1 * g_hat + c2 * g_hat * g_hat) * 1e-6 * (g_max / G_REF_PCM)


def pcm_nu_stats(g_hat):
    """Mean and std of the drift exponent at normalized target g^ (E-PCM step 2).

    mu = clip(-0.0155 ln g^ + 0.0244, 0.049, 0.1),
    sigma = clip(-0.0125 ln g^ - 0.0059, 0.008, 0.045), g^ clamped >= 1e-7.
    """
    return _nu_stats_from_log(_log_g_hat(g_hat))


def _log_g_hat(g_hat):
    return jnp.log(jnp.maximum(g_hat, 1e-7))


def _nu_stats_from_log(lg):
    mu = jnp.clip(-0.0155 * lg + 0.0244, 0.049, 0.1)
    sig = jnp.clip(-0.0125 * lg - 0.0059, 0.008, 0.045)
    return mu, sig


def _q_s_from_log(lg):
    # exp(0.65 ln g^) = g^^0.65; the 1e-7 clamp of ln is inside the 1e-3 floor
    # (1e-7^0.65 = 2.8e-5), so this equals pcm_q_s for g^ >= 0.
    return jnp.minimum(0.0088 / jnp.maximum(jnp.exp(0.65 * lg), 1e-3), 0.2)


def pcm_q_s(g_hat):
    """Relative 1/f read-noise amplitude Q_s = min(0.0088 / max(g^^0.65, 1e-3), 0.2)."""
    # The power of a floor below the 1e-3 one (1e-7^0.65 = 2.8e-5), so the value
    # is the same and the gradient at g^ = 0 is 0 instead of NaN (0 x inf).
    g_safe = jnp.maximum(jnp.abs(g_hat), 1e-7)
    return jnp.minimum(0.0088 / jnp.maximum(g_safe**0.65, 1e-3), 0.2)


class PCM(AbstractDevice, VariabilityFields):
    """Statistical PCM model of Nandakumar et al. / Joshi et al. (aihwkit E-PCM).

    1. Programming: `g_p = g_T + sigma_prog(g^_T) xi`, sigma_prog a quadratic in
       `g^ = g / g_max` fitted at g_max = 25 uS and scaled by g_max / 25 uS.
    2. Drift exponent per cell, drawn at programming: `nu = |N(mu(g^), s(g^))|`.
    3. Drift at `t` s after programming: `g_d = g_p ((t + t0) / t0)^-nu`.
    4. Read noise of one read (1/f, accumulated): std
       `|g_d| Q_s(g^_p) sqrt(ln((t + t0 + t_read) / (2 t_read)))`.

    aihwkit clips reads at 0; here a read is Gaussian (mean, std) so that a
    crossbar can add it to column currents exactly, and conductances are kept
    in `[g_min, g_max]` at programming.

    Pulse updates follow the gradual SET / abrupt RESET of PCM: `n > 0` SET
    pulses climb the E-NL curve (nonlinearity `a_set`, `p_max_set` pulses),
    `n < 0` RESETs the cell to `g_min`; each write redraws the drift exponent.
    With `gradual_reset=True`, `n < 0` pulses instead walk down an E-NL curve
    of `p_max_reset` pulses and nonlinearity `a_reset` (partial-RESET
    pulses), with the same C2C noise.

    Args:
        g_min, g_max: conductance bounds (S).
        t0_s: drift reference time t0 (s), > 0.
        t_read_s: read duration (s), > 0.
        prog_c0, prog_c1, prog_c2: programming-noise polynomial (uS at 25 uS).
        sigma_prog_scale, sigma_read_scale, sigma_nu_scale: multipliers of the
            programming noise, read noise and spread of nu (aihwkit's
            prog_noise_scale, read_noise_scale; 0 turns each off), >= 0.
        drift_scale: multiplier of the drift exponent (aihwkit's drift_scale;
            0 means no drift at all), >= 0.
        sigma_read_fast: white noise of each read, relative to the read
            conductance, >= 0.
        p_max_reset, a_reset: partial-RESET pulse response (E-NL, used when
            `gradual_reset`); a_reset < 0 gives the usual convex descent.
        gradual_reset: whether RESET pulses are gradual (static).
        temperature_k: device temperature (K), in [200, 500]; the default
            (300 K) is the reference, where nothing changes.
        t_ref_k: temperature of the drift data (K), in [200, 500].
        ea_ev: activation energy of the structural relaxation (eV), in
            [0, 3]: drift at T runs `arrhenius_factor` times faster (see
            `thermal_drift`); 0 means drift does not depend on T.
        nu_temp_coeff: relative change of the drift exponent per kelvin
            (1/K), in [-0.02, 0.02].
        p_max_set, a_set: SET pulse response (E-NL); sigma_c2c: SET C2C noise
            per sqrt(pulse), fraction of the range.
        p_stuck_on, p_stuck_off, faults, sigma_gmin_d2d, sigma_gmax_d2d,
            endurance_cycles, endurance_beta, window_d2d, endurance:
            stuck-at faults, device-to-device window and endurance closure,
            as every family (docs/devices.md, "Variability"). PCM's window
            spreads about and closes towards g_min (aihwkit's PCM preset:
            weights in [0, w_max], w_min_dtod = 0); a SET pulse is
            `1 / (2 p_max_set)` of a cycle, an abrupt RESET half a cycle.

    References:
        V. Joshi et al., "Accurate deep neural network inference using
        computational phase-change memory", Nat. Commun. 11, 2473 (2020),
        doi 10.1038/s41467-020-16108-9; aihwkit `inference/noise/pcm.py`.
    """

    g_min: Scalar = param()
    g_max: Scalar = param()
    t0_s: Scalar = param(gt=0.0, unit="s")
    t_read_s: Scalar = param(gt=0.0, unit="s")
    prog_c0: Scalar = param()
    prog_c1: Scalar = param()
    prog_c2: Scalar = param()
    p_max_set: Scalar = param(gt=0.0, unit="pulses")
    a_set: Scalar = param(nonzero=True)
    sigma_c2c: Scalar = param(ge=0.0)
    sigma_prog_scale: Scalar = param(1.0, ge=0.0)
    sigma_read_scale: Scalar = param(1.0, ge=0.0)
    sigma_nu_scale: Scalar = param(1.0, ge=0.0)
    drift_scale: Scalar = param(1.0, ge=0.0)
    sigma_read_fast: Scalar = param(0.0, ge=0.0)
    p_max_reset: Scalar = param(100.0, gt=0.0, unit="pulses")
    a_reset: Scalar = param(-1.0, nonzero=True)
    gradual_reset: bool = eqx.field(static=True, default=False)

    def window_ref(self):
        """PCM is unipolar: its window spreads about and closes towards g_min."""
        return self.g_min
    temperature_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    t_ref_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    ea_ev: Scalar = param(0.0, ge=0.0, le=3.0, unit="eV")
    nu_temp_coeff: Scalar = param(0.0, ge=-0.02, le=0.02, unit="1/K")

    @classmethod
    def from_card(cls, name: str = "pcm_joshi2020", **overrides) -> PCM:
        """A PCM with the numbers of card `name`, any field overridden by keyword."""
        return from_card(cls, name, overrides)

    # -- state ---------------------------------------------------------------

    def init(self, shape, *, key: PRNGKeyArray) -> PCMState:
        g_lo, g_hi, stuck, cycles = self.draw_cells(shape, key)
        g = jnp.full(shape, self.g_min, jnp.float32)
        if g_lo is not None or stuck is not None:
            cells = PCMState(g=g, nu=g, q_s=g, g_lo=g_lo, g_hi=g_hi, stuck=stuck)
            lo, hi = self.window(cells)
            g = pin_stuck(jnp.broadcast_to(lo, shape), stuck, lo, hi)
        g_hat = g / self.g_max
        mu, _ = pcm_nu_stats(g_hat)
        z = jnp.zeros(shape, jnp.float32)
        return PCMState(g=g, nu=self.drift_scale * mu, q_s=pcm_q_s(g_hat),
                        xi_slow=z, age_s=fresh_age(shape), g_lo=g_lo, g_hi=g_hi,
                        cycles=cycles, stuck=stuck)

    def draw_nu(self, g_hat, key: PRNGKeyArray, *, log_g_hat=None, xi=None):
        """Drift exponents `drift_scale |N(mu(g^), sigma(g^))|` for normalized
        targets g^ (`drift_scale = 0`: no drift at all, as in aihwkit);
        `xi`: the standard normal draws, if the caller drew them."""
        lg = _log_g_hat(g_hat) if log_g_hat is None else log_g_hat
        mu, sig = _nu_stats_from_log(lg)
        if xi is None:
            xi = jax.random.normal(key, lg.shape, jnp.float32)
        return self.drift_scale * jnp.abs(mu + self.sigma_nu_scale * sig * xi)

    def program(self, state: PCMState, g_target, *, key: PRNGKeyArray) -> PCMState:
        k_prog, k_nu, k_slow = jax.random.split(key, 3)
        lo, hi = self.window(state)  # nominal range, or each cell's own
        g_t = jnp.broadcast_to(
            jnp.clip(jnp.asarray(g_target, jnp.float32), lo, hi),
            state.g.shape,
        )
        g_hat_t = g_t / self.g_max
        sig = self.sigma_prog_scale * pcm_prog_sigma(
            g_hat_t, self.prog_c0, self.prog_c1, self.prog_c2, self.g_max
        )
        g = g_t + sig * jax.random.normal(k_prog, g_t.shape, jnp.float32)
        g = pin_stuck(jnp.maximum(g, 0.0), state.stuck, lo, hi)
        return PCMState(g=g, nu=self.draw_nu(g_hat_t, k_nu),
                        q_s=pcm_q_s(g / self.g_max),
                        xi_slow=jax.random.normal(k_slow, g.shape, jnp.float32),
                        age_s=fresh_age(g.shape), g_lo=state.g_lo,
                        g_hi=state.g_hi, stuck=state.stuck,
                        cycles=add_cycles(state,
                                          jnp.abs(g - state.g) / (2.0 * (hi - lo))))

    def update(self, state: PCMState, pulses, *, key: PRNGKeyArray) -> PCMState:
        k_pair, k_slow = jax.random.split(key)
        n = jnp.broadcast_to(jnp.asarray(pulses, jnp.float32), state.g.shape)
        cycles = add_cycles(state, self.pulse_cycles(n))
        if cycles is not None:  # the window closes with this write's wear
            state = eqx.tree_at(lambda s: s.cycles, state, cycles)
        lo, hi = self.window(state)
        # Three independent normals per cell (C2C, drift exponent, slow
        # deviation) from two unrolled hashes (devices.rng), cheaper than
        # three jax.random draws.
        z_c2c, z_nu = normal_pair(k_pair, n.shape)
        z_slow = normal(k_slow, n.shape)
        # SET pulses climb the E-NL curve; a RESET (n < 0) drops to g_min, or
        # walks down the partial-RESET curve (gradual_reset).
        if self.gradual_reset:
            up = n > 0
            g = nl_pulse_update(
                state.g, n, jnp.where(up, self.p_max_set, self.p_max_reset),
                jnp.where(up, self.a_set, self.a_reset), lo, hi,
                self.sigma_c2c, k_pair, xi=z_c2c)
        else:
            g = self._abrupt(state.g, n, k_pair, lo, hi, xi=z_c2c)
        g = pin_stuck(g, state.stuck, lo, hi)
        lg = _log_g_hat(g / self.g_max)  # one log for nu and Q_s
        nu = written(state.nu, self.draw_nu(None, k_pair, log_g_hat=lg, xi=z_nu), n)
        q_s = written(state.q_s, _q_s_from_log(lg), n)
        age, xi = after_write(state, n, k_slow, new_xi=z_slow)
        return PCMState(g=g, nu=nu, q_s=q_s, xi_slow=xi, age_s=age,
                        g_lo=state.g_lo, g_hi=state.g_hi, cycles=state.cycles,
                        stuck=state.stuck)

    def _abrupt(self, g0, n, key, lo=None, hi=None, xi=None):
        lo = self.g_min if lo is None else lo
        hi = self.g_max if hi is None else hi
        g = nl_pulse_update(g0, jnp.maximum(n, 0.0), self.p_max_set, self.a_set,
                            lo, hi, self.sigma_c2c, key, xi=xi)
        return jnp.where(n < 0, lo, g)

    def pulse_cycles(self, n):
        """Full-swing write cycles of a write of `n` pulses: a SET pulse is
        `1 / (2 p_max_set)` of a cycle; a RESET is half a cycle (abrupt) or
        `1 / (2 p_max_reset)` per pulse (`gradual_reset`)."""
        if self.gradual_reset:
            down = jnp.abs(n) / (2.0 * self.p_max_reset)
        else:
            down = jnp.where(n < 0, 0.5, 0.0)
        return jnp.where(n > 0, n / (2.0 * self.p_max_set), down)

    def drift_factor(self, state: PCMState, t_s):
        """((t + t0) / t0)^-nu for every cell, `t` its age when read `t_s`
        seconds after programming (`cell_age`)."""
        t, nu = self.thermal_drift(state, cell_age(state, t_s))
        return jnp.exp(-nu * jnp.log1p(t / self.t0_s))

    def thermal_drift(self, state: PCMState, t):
        """`(t_eq, nu_T)`: the drift time and exponents at `temperature_k`.

        Structural relaxation is thermally activated: `t` seconds at T drift
        as far as `arrhenius_factor(ea_ev, T, t_ref_k) t` at the reference
        temperature (the card's drift data), and the exponent scales as
        `nu (1 + nu_temp_coeff (T - t_ref_k))` (floored at 0). Both are the
        identity at T = t_ref_k. The cell is taken to have been at T since its
        last write.
        """
        af = arrhenius_factor(self.ea_ev, self.temperature_k, self.t_ref_k)
        k = jnp.maximum(1.0 + self.nu_temp_coeff * (self.temperature_k - self.t_ref_k),
                        0.0)
        return af * t, state.nu * k

    def read_parts(self, state: PCMState, t_s=0.0):
        t = cell_age(state, t_s)
        t_eq, nu = self.thermal_drift(state, t)
        g_d = state.g * jnp.exp(-nu * jnp.log1p(t_eq / self.t0_s))
        log_term = jnp.log((t + self.t0_s + self.t_read_s) / (2.0 * self.t_read_s))
        abs_g = jnp.abs(g_d)
        slow = self.sigma_read_scale * abs_g * state.q_s * jnp.sqrt(log_term)
        return g_d, slow, self.sigma_read_fast * abs_g


def drift_compensation(read_at_t0, read_at_t):
    """Global drift compensation factor (aihwkit GlobalDriftCompensation).

    `sum |read_at_t0| / sum |read_at_t|`: the ratio of a reference read (e.g.
    the column currents for an all-ones input, or the conductances) taken right
    after programming to the same read at inference time. Multiply the outputs
    read at time t by it. Returns a scalar.
    """
    return jnp.sum(jnp.abs(read_at_t0)) / jnp.sum(jnp.abs(read_at_t))
