"""Filamentary RRAM with the NeuroSim nonlinear pulse response."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .base import (
    ROOM_TEMPERATURE_K,
    AbstractDeviceState,
    Scalar,
    add_cycles,
    after_write,
    arrhenius_factor,
    cell_age,
    concrete,
    fresh_age,
    option,
    param,
)
from .cards import from_card
from .iv import AbstractIV, LinearIV
from .nonlinear import AbstractNLDevice, nl_curve, nl_curve_inverse
from .rng import normal_pair
from .variability import VariabilityFields


class RRAMState(AbstractDeviceState):
    """State of an array of RRAM cells.

    Attributes:
        g: conductance (S).
        a_ltp: per-device LTP nonlinearity `a` (device-to-device variation).
        a_ltd: per-device LTD nonlinearity `a`.
        stuck: per-device stuck-at fault, +1 stuck at g_max (on), -1 stuck at
            g_min (off), 0 healthy (drawn at `init`; None when faults are off).
        xi_slow: standard normal draw of the slow read deviation (retention
            spread, slow read noise), drawn at the cell's last write.
        age_s: seconds since the cell's last pulse write, advanced by `relax`
            (`AGE_FROM_PROGRAMMING` when not pulsed since programming).
        g_lo, g_hi: the cell's conductance window as fabricated
            (`window_d2d`; None: the nominal `[g_min, g_max]`).
        cycles: full-swing write cycles since fabrication (`endurance`;
            None: not counted).
    """

    g: Float[Array, "*cells"]
    a_ltp: Float[Array, "*cells"]
    a_ltd: Float[Array, "*cells"]
    stuck: Float[Array, "*cells"] | None = None
    xi_slow: Float[Array, "*cells"] | None = None
    age_s: Float[Array, "*cells"] | None = None
    g_lo: Float[Array, "*cells"] | None = None
    g_hi: Float[Array, "*cells"] | None = None
    cycles: Float[Array, "*cells"] | None = None


class RRAM(AbstractNLDevice, VariabilityFields):
    """Pulse-programmed filamentary RRAM (NeuroSim nonlinear-update model).

    Potentiation moves `n` pulses up the LTP curve and depression `n` pulses
    down the LTD curve (each `G(P) = B (1 - exp(-P / (a P_max))) + G_min` with
    its own `a` and `P_max`); each write of `n` pulses adds cycle-to-cycle noise
    `N(0, sigma_c2c (g_max - g_min) sqrt(|n|))`; the result is clipped to
    `[g_min, g_max]`. Device-to-device variation draws each cell's `a` as
    `a (1 + sigma_d2d xi)` once, at `init`. A read returns
    `g (1 + sigma_read xi)` with a fresh `xi` per read (fast), plus an
    optional slow relative deviation `sigma_read_slow g xi_slow` drawn at the
    cell's last write. `program` writes a target conductance as a verified
    write to the nearest of the `p_max_ltp + 1` levels of the LTP curve, with
    a conductance-dependent residual error of std
    `span max(|sigma_prog + sum_i sigma_prog_xi x^i|, sigma_c2c)`, `x = (g - g_min)
    / span` the level's place in the window (aihwkit's ReRAM polynomial form;
    a verified write cannot end more precisely than its last pulse, whose C2C
    noise is `sigma_c2c span`). The programmed conductance is clipped at 0
    only, so cells programmed to the off state are not biased upwards.

    Optional effects, all off by default (the NeuroSim model above):

    - stuck-at faults: at `init` each cell is stuck at g_max with probability
      `p_stuck_on` and at g_min with `p_stuck_off`; stuck cells ignore
      programming and pulses.
    - retention relaxation (E-LOG, aihwkit ReRamCMONoiseModel form): a read
      `t` s after the cell's last write sees a mean
      `g + retention_m span ln(1 + t / retention_t0_s)` and a slow spread of
      std `span (sigma_retention_0 + sigma_retention_ln ln(1 + t / retention_t0_s))`
      (drawn per cell at its write; clipped at 0 only).
    - sinh I-V (`iv=SinhIV(v0)`): `I = g v0 sinh(V / v0)`, ohmic for |V| << v0
      (Yakopcic / Stanford-model form); solvers then use the elementwise I-V.

    Args:
        g_min, g_max, p_max_ltp, p_max_ltd, a_ltp, a_ltd, sigma_c2c, sigma_d2d,
            sigma_read, sigma_prog: the NeuroSim set (see `AbstractNLDevice`).
        p_stuck_on, p_stuck_off: stuck-at probabilities, each in [0, 1] with
            sum <= 1; > 0 needs `faults=True`.
        retention_m: E-LOG relaxation per ln-unit of time, fraction of the range.
        sigma_retention_0, sigma_retention_ln: retention spread at t = 0 and its growth
            per ln-unit of time, fractions of the range, >= 0.
        retention_t0_s: relaxation time scale (s), > 0.
        sigma_prog_x1 ... sigma_prog_x4: conductance dependence of the
            programming error,
            fractions of the range per power of `x` (`sigma_prog` is `c0`).
        sigma_read_slow: slow relative read deviation, >= 0.
        iv: the cell's I-V, `LinearIV()` (default) or `SinhIV(v0)`.
        faults: whether `init` draws the stuck-at map (static).
        sigma_gmin_d2d, sigma_gmax_d2d, endurance_cycles, endurance_beta,
            window_d2d, endurance: device-to-device window and endurance
            closure, as every family (docs/devices.md, "Variability"): the
            window spreads about and closes towards its middle; a pulse is
            `1 / (2 p_max)` of a cycle, a programming write the swing it
            writes over twice the cell's window.
        temperature_k: device temperature (K), in [200, 500]; the default
            (300 K) is the reference, where nothing changes.
        t_ref_k: temperature of the retention data (K), in [200, 500].
        ea_ev: activation energy of retention (eV), in [0, 3]: `t` seconds
            at T relax as far as `exp(ea_ev / k_B (1 / t_ref_k - 1 / T)) t`
            at t_ref_k (mean shift and spread); 0: no temperature dependence.

    References:
        P.-Y. Chen, X. Peng, S. Yu, "NeuroSim: a circuit-level macro model for
        benchmarking neuro-inspired architectures in online learning",
        IEEE TCAD 37(12), 3067 (2018), doi 10.1109/TCAD.2018.2789723.
    """

    retention_m: Scalar = param(0.0)
    retention_t0_s: Scalar = param(1.0, gt=0.0, unit="s")
    sigma_retention_0: Scalar = param(0.0, ge=0.0)
    sigma_retention_ln: Scalar = param(0.0, ge=0.0)
    sigma_prog_x1: Scalar = param(0.0)
    sigma_prog_x2: Scalar = param(0.0)
    sigma_prog_x3: Scalar = param(0.0)
    sigma_prog_x4: Scalar = param(0.0)
    sigma_read_slow: Scalar = param(0.0, ge=0.0)
    iv: AbstractIV = option("iv", AbstractIV, LinearIV())
    temperature_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    t_ref_k: Scalar = param(ROOM_TEMPERATURE_K, ge=200.0, le=500.0, unit="K")
    ea_ev: Scalar = param(0.0, ge=0.0, le=3.0, unit="eV")

    @property
    def linear_iv(self) -> bool:  # type: ignore[override]
        return self.iv.linear

    @classmethod
    def from_card(cls, name: str = "rram_ag_asi_jo2010", **overrides) -> RRAM:
        """An RRAM with the numbers of card `name`, any field overridden by keyword."""
        return from_card(cls, name, overrides)

    # -- state ---------------------------------------------------------------

    def init(self, shape, *, key: PRNGKeyArray) -> RRAMState:
        a_ltp, a_ltd = self.draw_nonlinearity(shape, key)
        # Fresh keys for the fault map and the window (`draw_cells`), so
        # switching them on leaves the a_ltp/a_ltd draws unchanged.
        g_lo, g_hi, stuck, cycles = self.draw_cells(shape, key)
        state = RRAMState(g=jnp.full(shape, self.g_min, jnp.float32),
                          a_ltp=a_ltp, a_ltd=a_ltd, stuck=stuck,
                          xi_slow=jnp.zeros(shape, jnp.float32),
                          age_s=fresh_age(shape), g_lo=g_lo, g_hi=g_hi,
                          cycles=cycles)
        g = jnp.broadcast_to(self.window(state)[0], shape)
        return self._pin(state, g)

    def _pin(self, state: RRAMState, g, xi_slow=None, age_s=None,
             cycles=None) -> RRAMState:
        """`state` with conductance `g` (and, if given, new slow draws, ages
        and cycle counts), stuck cells held at their (per-cell) bound."""
        state = RRAMState(
            g=g, a_ltp=state.a_ltp, a_ltd=state.a_ltd, stuck=state.stuck,
            xi_slow=state.xi_slow if xi_slow is None else xi_slow,
            age_s=state.age_s if age_s is None else age_s,
            g_lo=state.g_lo, g_hi=state.g_hi,
            cycles=state.cycles if cycles is None else cycles,
        )
        if state.stuck is not None:
            lo, hi = self.window(state)
            g = jnp.where(state.stuck > 0, hi, jnp.where(state.stuck < 0, lo, g))
            state = eqx.tree_at(lambda s: s.g, state, g)
        return state

    def prog_sigma(self, g) -> Float[Array, "*cells"]:
        """Programming-error std (S) of a verified write that ends at `g`:
        `span max(|sigma_prog + sum_i sigma_prog_xi x^i|, sigma_c2c)`,
        `x = (g - g_min) / span`."""
        span = self.g_max - self.g_min
        x = (g - self.g_min) / span
        poly = self.sigma_prog + x * (self.sigma_prog_x1 + x * (
            self.sigma_prog_x2 + x * (self.sigma_prog_x3 + x * self.sigma_prog_x4)))
        return span * jnp.maximum(jnp.abs(poly), self.sigma_c2c)

    def levels(self) -> Float[Array, " levels"]:
        """Conductances reachable from g_min by whole LTP pulses (nominal cell)."""
        n = int(np.asarray(self.p_max_ltp))
        p = jnp.arange(n + 1, dtype=jnp.float32)
        return nl_curve(p, self.p_max_ltp, self.a_ltp, self.g_min, self.g_max)

    def program(self, state: RRAMState, g_target, *, key: PRNGKeyArray) -> RRAMState:
        lo, hi = self.window(state)  # nominal range, or each cell's own
        g_t = jnp.clip(jnp.asarray(g_target, jnp.float32), lo, hi)
        # Nearest (in conductance) whole-pulse level of the cell's own LTP curve:
        # the closer of the two levels that bracket the target. Rounding the
        # pulse number instead would pick the farther level on a curved response.
        p = nl_curve_inverse(g_t, self.p_max_ltp, state.a_ltp, lo, hi)
        p_lo = jnp.clip(jnp.floor(p), 0.0, self.p_max_ltp)
        p_hi = jnp.clip(p_lo + 1.0, 0.0, self.p_max_ltp)
        g_lo = nl_curve(p_lo, self.p_max_ltp, state.a_ltp, lo, hi)
        g_hi = nl_curve(p_hi, self.p_max_ltp, state.a_ltp, lo, hi)
        g = jnp.where(g_hi - g_t < g_t - g_lo, g_hi, g_lo)
        k_prog, k_slow = jax.random.split(key)
        g = g + self.prog_sigma(g) * jax.random.normal(k_prog, g.shape, jnp.float32)
        xi = jax.random.normal(k_slow, g.shape, jnp.float32)
        g = jnp.maximum(g, 0.0)
        cycles = add_cycles(state, jnp.abs(g - state.g) / (2.0 * (hi - lo)))
        return self._pin(state, g, xi, fresh_age(g.shape), cycles)

    def update(self, state: RRAMState, pulses, *, key: PRNGKeyArray) -> RRAMState:
        n = jnp.broadcast_to(jnp.asarray(pulses, jnp.float32), state.g.shape)
        # C2C noise and the new slow deviation: two independent normals from
        # one hash per cell (devices.rng; cheaper than two jax.random draws).
        z_c2c, z_slow = normal_pair(key, state.g.shape)
        cycles = add_cycles(state, self.nl_cycles(n))
        if cycles is not None:  # the window closes with this write's wear
            state = eqx.tree_at(lambda s: s.cycles, state, cycles)
        g = self.nl_move(state.g, n, state.a_ltp, state.a_ltd, key,
                         window=self.window(state), xi=z_c2c)
        age, xi = after_write(state, n, key, new_xi=z_slow)
        return self._pin(state, g, xi, age)

    def _active(self, name: str) -> bool:
        """Whether field `name` may be nonzero (always, while traced)."""
        v = concrete(getattr(self, name))
        return v is None or bool(np.any(v))

    def read_parts(self, state: RRAMState, t_s=0.0):
        g = state.g
        t = cell_age(state, t_s)
        slow = self.sigma_read_slow * jnp.abs(g)
        if self._active("retention_m") or self._active("sigma_retention_0") \
                or self._active("sigma_retention_ln"):
            span = self.g_max - self.g_min
            # Retention is thermally activated: t s at temperature_k relax
            # as far as arrhenius_factor * t at t_ref_k (1 at T = t_ref_k).
            af = arrhenius_factor(self.ea_ev, self.temperature_k, self.t_ref_k)
            lt = jnp.log1p(af * t / self.retention_t0_s)
            g = jnp.maximum(g + self.retention_m * span * lt, 0.0)
            g = self._pin(state, g).g
            spread = span * (self.sigma_retention_0 + self.sigma_retention_ln * lt)
            # Absent cells (g = 0: the empty G- array of a single-device
            # scheme) and stuck cells have no spread.
            healthy = state.g > 0
            if state.stuck is not None:
                healthy = healthy & (state.stuck == 0)
            spread = jnp.where(healthy, spread, 0.0)
            # Both parts can be 0: a sqrt with a gradient-safe zero branch.
            var = slow * slow + spread * spread
            pos = var > 0
            slow = jnp.where(pos, jnp.sqrt(jnp.where(pos, var, 1.0)), 0.0)
        return g, slow, self.sigma_read * jnp.abs(g)

    def current(self, g, v):
        """Cell current (A) by the cell's I-V (`iv`)."""
        return self.iv.current(g, v)
