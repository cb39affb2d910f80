"""The NeuroSim nonlinear pulse response (E-NL) shared by RRAM, Perovskite and
the SET branch of PCM: the curve, its inverse, the closed-form step, one pulse
update with cycle-to-cycle noise, and the base class of the devices whose
parameters are the NeuroSim set (conductance range, pulses per curve,
nonlinearity, noise levels). Equations and sources: docs/devices.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .base import AbstractDevice, Scalar, param


def nl_curve(p, p_max, a, g_min, g_max):
    """NeuroSim pulse response G(P) = B (1 - exp(-P/A)) + G_min, A = a P_max.

    B = (G_max - G_min) / (1 - exp(-P_max/A)), so G(0) = G_min and
    G(P_max) = G_max. `a > 0` saturates (concave), `a < 0` is convex.
    """
    big_a = a * p_max
    b = (g_max - g_min) / -jnp.expm1(-p_max / big_a)
    return b * -jnp.expm1(-p / big_a) + g_min


def nl_step(g, n, p_max, a, g_min, g_max):
    """Conductance after `n` pulses along the curve of `nl_curve` from `g`.

    `G(P + n) = c - (c - G(P)) e^{-n/A}` with `c = B + G_min`, so the step
    needs no inversion of the curve: `g + (c - g)(1 - e^{-n/A})` (equal to
    `nl_curve(nl_curve_inverse(g) + n)`, with two transcendental functions
    instead of four).
    """
    big_a = a * p_max
    c = (g_max - g_min) / -jnp.expm1(-p_max / big_a) + g_min
    return g + (c - g) * -jnp.expm1(-n / big_a)


def nl_curve_inverse(g, p_max, a, g_min, g_max):
    """Pulse number P at which the curve of `nl_curve` reaches `g`."""
    big_a = a * p_max
    b = (g_max - g_min) / -jnp.expm1(-p_max / big_a)
    return -big_a * jnp.log1p(-(g - g_min) / b)


def nl_pulse_update(g, n, p_max, a, g_min, g_max, sigma_c2c, key: PRNGKeyArray,
                    *, xi=None):
    """A write of `n` pulses along the E-NL curve, with cycle-to-cycle noise.

    From `g` clipped to the range, `nl_step` moves `n` pulses along the curve
    of `p_max`, `a` (pass the LTP or LTD values per cell: `n > 0` potentiates,
    `n < 0` depresses), then adds `N(0, sigma_c2c (g_max - g_min) sqrt|n|)`
    and clips to `[g_min, g_max]`. Cells with `n == 0` keep `g` unchanged.
    `xi`: the standard normal draws of the C2C noise, if the caller drew them
    (e.g. with another draw from one `devices.rng.normal_pair` call); `key`
    is then unused.
    """
    g0 = jnp.clip(g, g_min, g_max)
    g_new = nl_step(g0, n, p_max, a, g_min, g_max)
    c2c = sigma_c2c * (g_max - g_min) * jnp.sqrt(jnp.abs(n))
    if xi is None:
        xi = jax.random.normal(key, g_new.shape, jnp.float32)
    g_new = g_new + c2c * xi
    return jnp.where(n == 0, g, jnp.clip(g_new, g_min, g_max))


class AbstractNLDevice(AbstractDevice):
    """A device whose non-volatile conductance follows the E-NL curves.

    Holds the NeuroSim parameter set with its valid ranges (checked at
    construction); subclasses add their own fields after these ten and build
    the device operations from `draw_nonlinearity` and `nl_move`.

    Args:
        g_min, g_max: conductance bounds (S), 0 <= g_min < g_max.
        p_max_ltp, p_max_ltd: pulses spanning the full range (> 0).
        a_ltp, a_ltd: nonlinearity, nonzero; |a| large is linear (NeuroSim's
            lookup maps the NL label to `a`, e.g. NL 2.4 -> 0.499).
        sigma_c2c: cycle-to-cycle std per sqrt(pulse), fraction of the range.
        sigma_d2d: relative device-to-device std of `a`, in [0, 1).
        sigma_read: relative std of one read, >= 0.
        sigma_prog: programming error std, fraction of the range, >= 0.
    """

    g_min: Scalar = param()
    g_max: Scalar = param()
    p_max_ltp: Scalar = param(gt=0.0, unit="pulses")
    p_max_ltd: Scalar = param(gt=0.0, unit="pulses")
    a_ltp: Scalar = param(nonzero=True)
    a_ltd: Scalar = param(nonzero=True)
    sigma_c2c: Scalar = param(ge=0.0)
    sigma_d2d: Scalar = param(ge=0.0, lt=1.0)
    sigma_read: Scalar = param(ge=0.0)
    sigma_prog: Scalar = param(ge=0.0)

    def draw_nonlinearity(
        self, shape, key: PRNGKeyArray
    ) -> tuple[Float[Array, "*cells"], Float[Array, "*cells"]]:
        """Per-cell `(a_ltp, a_ltd)`, each `a |1 + sigma_d2d xi|` (device-to-device).

        `|1 + sigma xi|` keeps each cell's curvature sign (sigma_d2d < 1).
        """
        k1, k2 = jax.random.split(key)
        xi1 = jax.random.normal(k1, shape, jnp.float32)
        xi2 = jax.random.normal(k2, shape, jnp.float32)
        return (self.a_ltp * jnp.abs(1.0 + self.sigma_d2d * xi1),
                self.a_ltd * jnp.abs(1.0 + self.sigma_d2d * xi2))

    def nl_move(self, g, n, a_ltp, a_ltd, key: PRNGKeyArray, window=None, *,
                xi=None):
        """`n` pulses from `g` (+ up the LTP curve, - down the LTD curve) with
        the cells' own `a_ltp`, `a_ltd`: `nl_pulse_update` with this device's
        range, pulse counts and C2C noise. `window` = per-cell `(lo, hi)`
        (device-to-device window, endurance closure) replaces the nominal
        range: each cell's curves then span its own window."""
        up = n > 0
        p_max = jnp.where(up, self.p_max_ltp, self.p_max_ltd)
        a = jnp.where(up, a_ltp, a_ltd)
        lo, hi = (self.g_min, self.g_max) if window is None else window
        return nl_pulse_update(g, n, p_max, a, lo, hi, self.sigma_c2c, key, xi=xi)

    def nl_cycles(self, n):
        """Full-swing write cycles of a write of `n` pulses: each LTP pulse
        is `1 / (2 p_max_ltp)` of a cycle, each LTD pulse `1 / (2 p_max_ltd)`
        (a full potentiation then a full depression is one cycle)."""
        return jnp.abs(n) / (2.0 * jnp.where(n > 0, self.p_max_ltp, self.p_max_ltd))
