"""Digital-to-analog and analog-to-digital converters at the array's edges."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from devices.base import as_param, check_range, concrete
from xbar.circuits.ideal import PRECISION


def _as_bits(x):
    return None if x is None else jnp.asarray(x, jnp.float32)


def _check_bits(name: str, bits) -> None:
    b = concrete(bits)
    if b is None:
        return
    if (
        not np.all(np.isfinite(b))
        or np.any(b < 2)
        or np.any(b > 24)
        or np.any(b != np.round(b))
    ):
        raise ValueError(
            f"{name} must be an integer in [2, 24] (sign + magnitude) or None for "
            f"an ideal converter; got {name}={b}"
        )


def _window_bits(x) -> Array:
    if x is None:
        raise ValueError(
            "PulseWidthDAC bits must be an integer in [2, 24] (it sets the time "
            "slots of the read window); got bits=None"
        )
    return jnp.asarray(x, jnp.float32)


def _cycle_bits(x) -> int:
    if not isinstance(x, int | np.integer) or not 2 <= x <= 24:
        raise ValueError(
            "BitSerialDAC bits must be a Python integer in [2, 24] (it sets the "
            f"number of cycles); got bits={x!r}"
        )
    return int(x)


def magnitude_levels(bits: ArrayLike) -> Array:
    """`2^(bits-1) - 1`: the largest integer magnitude of a signed converter of
    `bits` bits including the sign (a 4-bit converter has codes -7..7)."""
    return jnp.asarray(2.0 ** (jnp.asarray(bits, jnp.float32) - 1.0) - 1.0, jnp.float32)


def round_ste(x: Array) -> Array:
    """Round to the nearest integer with a straight-through gradient."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def clip_unit(u: Array, bound: ArrayLike = 1.0) -> Array:
    """`clip(u, -bound, bound)` whose derivative is 1 inside the range and on
    its bounds and 0 beyond (`jnp.clip`'s is 1/2 on a bound, where the
    largest input of an abs-max-scaled vector always sits)."""
    return jnp.where(jnp.abs(u) <= bound, u, jnp.sign(u) * bound)


def quantize_signed(u: Array, bits: ArrayLike) -> Array:
    """Clip `u` to [-1, 1] and round to the 2^bits - 1 levels symmetric about 0.

    The step is 1 / (2^(bits-1) - 1); zero and +-1 are levels. The gradient is
    straight-through inside the range and zero where clipped.
    """
    n = magnitude_levels(bits)
    return round_ste(clip_unit(u) * n) / n


def _levels(u: Array, bits) -> Array:
    """`u` clipped to [-1, 1] and, with `bits`, rounded to the signed levels."""
    return clip_unit(u) if bits is None else quantize_signed(u, bits)


class AbstractDAC(eqx.Module):
    """Row driver: a normalized input in [-1, 1] becomes one or more read pulses.

    Each encoding is a final subclass that owns its part of the math: the
    per-cycle drive levels (`planes`), how the digital side recombines the
    cycles' conversions (`combine`), and the row-drive figures the energy
    model prices (`drive_energy_fraction`, `window_slots`, `conversions`).
    `__call__` gives the equivalent amplitude in volts (the shift-added
    voltage), which is what `xbar.step` and the spiking loop drive.
    """

    v_read: eqx.AbstractVar[Float[Array, ""]]

    def __check_init__(self):
        check_range("v_read", self.v_read, 0.0, lo_open=True, unit="V")

    @property
    def n_cycles(self) -> int:
        """Read cycles (array reads and conversions) per input vector."""
        return 1

    @abc.abstractmethod
    def planes(self, u: Float[Array, "*rows"]) -> Float[Array, " cycles *rows"]:
        """Normalized drive level of every row in every read cycle, in [-1, 1]."""

    def combine(self, d: Float[Array, " cycles *cols"]) -> Float[Array, "*cols"]:
        """The digital recombination of the cycles' conversions (one cycle: as is)."""
        return d[0]

    def __call__(self, u: Float[Array, "*rows"]) -> Float[Array, "*rows"]:
        """Equivalent voltages (V) for normalized inputs `u` (clipped to [-1, 1])."""
        return self.combine(self.planes(u)) * self.v_read

    def drive_energy_fraction(
        self, u: Float[Array, "*rows"]
    ) -> Float[Array, " cycles *rows"]:
        """Per cycle, the fraction of `v_read^2 t_window` a row's cell sees
        (0 for an idle row): `q(u)^2` for amplitude pulses."""
        q = jnp.abs(self.planes(u))
        return q * q

    def window_slots(self) -> Float[Array, ""] | None:
        """Length of the read window in pulse time slots (pulse-width
        encodings), or None for one read pulse of the energy model's `t_read_s`."""
        return None

    @property
    def conversions_per_drive(self) -> float:
        """Multi-bit DAC conversions per driven row and cycle (0: 1-bit driver)."""
        return 1.0


class DAC(AbstractDAC):
    """Amplitude encoding: one read at voltage `q(u) v_read`.

    Args:
        bits: resolution including the sign (an 8-bit DAC has levels
            -127..127 / 127), integer in [2, 24], or None for an unquantized
            driver. An array leaf, so a sweep can vmap over it.
        v_read: full-scale read voltage (V), > 0: input 1 drives `v_read`.
    """

    bits: Float[Array, ""] | None = eqx.field(converter=_as_bits, default=8)
    v_read: Float[Array, ""] = eqx.field(converter=as_param, default=0.2)

    def __check_init__(self):
        _check_bits("DAC bits", self.bits)

    def planes(self, u):
        return _levels(u, self.bits)[None]


class PulseWidthDAC(AbstractDAC):
    """Pulse-width encoding: one read at `+-v_read` for a fraction `|q(u)|` of
    a window of `2^(bits-1) - 1` time slots.

    For ohmic cells the integrated column charge equals the amplitude
    encoding's, so the currents are the same time-averaged ones; the
    encodings differ in energy (`V^2 G t |u|` instead of `(u V)^2 G t`) and
    latency (the window), see `xbar.analysis.energy`.

    Args:
        bits: resolution including the sign, integer in [2, 24].
        v_read: pulse voltage (V), > 0.
    """

    bits: Float[Array, ""] = eqx.field(converter=_window_bits, default=8)
    v_read: Float[Array, ""] = eqx.field(converter=as_param, default=0.2)

    def __check_init__(self):
        _check_bits("DAC bits", self.bits)

    def planes(self, u):
        return quantize_signed(u, self.bits)[None]

    def drive_energy_fraction(self, u):
        return jnp.abs(self.planes(u))  # full V for a fraction |u| of the window

    def window_slots(self):
        return magnitude_levels(self.bits)


class BitSerialDAC(AbstractDAC):
    """Bit-serial encoding: the magnitude `|q(u)| (2^(bits-1) - 1)` is sent one
    bit per cycle at `+-v_read` (`bits - 1` cycles, least significant first);
    every cycle's column currents are converted and the digital side
    shift-adds them (`plane_weights`).

    Args:
        bits: resolution including the sign, a Python integer in [2, 24]
            (static: it sets the number of cycles).
        v_read: pulse voltage (V), > 0.
    """

    bits: int = eqx.field(static=True, default=8, converter=_cycle_bits)
    v_read: Float[Array, ""] = eqx.field(converter=as_param, default=0.2)

    @property
    def n_cycles(self) -> int:
        return int(self.bits) - 1

    def magnitude_levels(self) -> Float[Array, ""]:
        return magnitude_levels(self.bits)

    def planes(self, u):
        """`sign(u) * bit_c(|q(u)| n)` in {-1, 0, 1}, c = 0 (LSB) .. bits - 2."""
        n = self.magnitude_levels()
        q = quantize_signed(u, self.bits)
        m = jnp.round(jnp.abs(q) * n)
        c = jnp.arange(self.n_cycles, dtype=jnp.float32).reshape((-1,) + (1,) * u.ndim)
        bit = jnp.mod(jnp.floor(m[None] / 2.0**c), 2.0)
        # Straight through: every plane carries the gradient of q(u); the
        # plane weights sum to 1, so `combine(planes)` has the gradient of q.
        return jax.lax.stop_gradient(jnp.sign(u)[None] * bit) + (
            q - jax.lax.stop_gradient(q)
        )[None]

    def plane_weights(self) -> Float[Array, " cycles"]:
        """Shift-add weights `2^c / (2^(bits-1) - 1)` of the cycles."""
        c = jnp.arange(self.n_cycles, dtype=jnp.float32)
        return 2.0**c / self.magnitude_levels()

    def combine(self, d):
        return jnp.tensordot(self.plane_weights(), d, axes=1, precision=PRECISION)

    @property
    def conversions_per_drive(self) -> float:
        return 0.0


class TwoPhaseDAC(AbstractDAC):
    """Sign-split inputs for row drivers that only drive non-negative voltages:
    the positive parts `max(q(u), 0)` in one read cycle, the magnitudes of the
    negative parts in a second, each at amplitude `|q| v_read`; the digital
    side subtracts the second cycle's conversions from the first.

    Args:
        bits: resolution including the sign, integer in [2, 24] (each phase
            drives `2^(bits-1) - 1` magnitude levels), or None for unquantized.
        v_read: full-scale read voltage (V), > 0.
    """

    bits: Float[Array, ""] | None = eqx.field(converter=_as_bits, default=8)
    v_read: Float[Array, ""] = eqx.field(converter=as_param, default=0.2)

    def __check_init__(self):
        _check_bits("DAC bits", self.bits)

    @property
    def n_cycles(self) -> int:
        return 2

    def planes(self, u):
        q = clip_unit(u) if self.bits is None else quantize_signed(u, self.bits)
        return jnp.stack([jnp.maximum(q, 0.0), jnp.maximum(-q, 0.0)])

    def combine(self, d):
        return d[0] - d[1]


class ADC(eqx.Module):
    """Column converter: a current becomes a number, clipped at +-`i_max`.

    Non-idealities (all off by default):

    - input-referred noise: `N(0, noise_lsb)` LSBs added to the input of every
      conversion (drawn only when a key is passed, like the cells' read noise);
    - INL/DNL: a fixed transfer function, the code transition thresholds
      `thresholds` (in units of full scale), drawn once per converter by
      `ADC.with_nonlinearity`; the output is the ideal level of the code whose
      thresholds bracket the input;
    - sharing: one converter serves `share` columns one after another, which
      multiplies the conversion latency by `share` (see `xbar.energy`); it
      does not change the values.

    Args:
        bits: resolution including the sign, integer in [2, 24] (a 4-bit ADC
            has the 15 codes -7..7), or None for no quantization (then only
            the clipping at `i_max` acts).
        i_max: full-scale current (A), > 0, or None for an ideal converter
            (no clipping; `bits` must then be None). Any shape that broadcasts
            against the column currents (per tile or per column).
        noise_lsb: input-referred noise std in LSBs, >= 0, or None for none
            (no draw at all; 0.0 draws zeros, for sweeps that include 0).
        thresholds: code transition thresholds (fraction of full scale), shape
            `(2^bits - 2,)`, increasing, or None for the ideal mid-point ones.
        share: columns per converter, integer >= 1.
    """

    bits: Float[Array, ""] | None = eqx.field(converter=_as_bits, default=8)
    i_max: Float[Array, ...] | None = eqx.field(
        converter=lambda x: None if x is None else as_param(x), default=None
    )
    noise_lsb: Float[Array, ""] | None = eqx.field(
        converter=lambda x: None if x is None else as_param(x), default=None
    )
    thresholds: Float[Array, " codes"] | None = eqx.field(
        converter=lambda x: None if x is None else jnp.asarray(x, jnp.float32),
        default=None,
    )
    share: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        _check_bits("ADC bits", self.bits)
        if self.noise_lsb is not None:
            check_range("ADC noise_lsb", self.noise_lsb, 0.0, unit="LSB")
        if not isinstance(self.share, int | np.integer) or self.share < 1:
            raise ValueError(
                f"ADC share must be an integer >= 1; got share={self.share!r}"
            )
        if self.thresholds is not None:
            b = concrete(self.bits)
            t = concrete(self.thresholds)
            if b is None and self.bits is None:
                raise ValueError("ADC thresholds need bits (an integer in [2, 24])")
            if b is not None and t is not None:
                n_codes = int(2 ** int(b) - 2)
                if t.shape[-1:] != (n_codes,):
                    raise ValueError(
                        f"ADC thresholds must have shape ({n_codes},) for bits={int(b)}"
                        f"; got {t.shape}"
                    )
                if np.any(np.diff(t, axis=-1) < 0):
                    raise ValueError("ADC thresholds must be non-decreasing")
        if self.i_max is None:
            if self.bits is not None:
                raise ValueError(
                    "ADC i_max must be a current > 0 A when bits is set; got "
                    "i_max=None (calibrate it with xbar.calibrate_adc)"
                )
        else:
            check_range("ADC i_max", self.i_max, 0.0, lo_open=True, unit="A")

    @classmethod
    def with_nonlinearity(
        cls,
        bits: int,
        i_max,
        *,
        key: PRNGKeyArray,
        inl_lsb: float = 0.0,
        dnl_lsb: float = 0.0,
        **kwargs,
    ) -> ADC:
        """An ADC whose transfer function deviates from the ideal staircase.

        Every code width is `1 + dnl_lsb * xi_k` LSB (xi_k standard normal,
        drawn once from `key`; widths clipped at 0, i.e. a missing code), the
        staircase is rescaled to keep its end points (end-point INL), and a
        bow `inl_lsb * (1 - t^2)` LSB is added to every threshold `t`, so the
        INL at mid-scale is `inl_lsb` plus the accumulated DNL.

        Args:
            bits: resolution including sign (concrete integer in [2, 24]).
            i_max: full-scale current (A).
            key: draws the converter's DNL (a fixed property of one converter).
            inl_lsb: amplitude of the bow-shaped INL (LSB).
            dnl_lsb: std of the code widths' DNL (LSB), >= 0.
        """
        _check_bits("ADC bits", bits)
        check_range("ADC dnl_lsb", dnl_lsb, 0.0, unit="LSB")
        n = 2 ** (int(bits) - 1) - 1
        lsb = 1.0 / n
        n_codes = 2 * n  # transitions between the 2n + 1 levels
        widths = jnp.maximum(
            1.0 + dnl_lsb * jax.random.normal(key, (n_codes - 1,)), 0.0
        )
        # Ideal thresholds at (k + 1/2) LSB from -1: first at -1 + lsb/2.
        edges = jnp.concatenate([jnp.zeros(1), jnp.cumsum(widths)])
        edges = edges / edges[-1] * (n_codes - 1)  # end points fixed
        t = (-1.0 + 0.5 * lsb) + edges * lsb
        t = t + inl_lsb * lsb * (1.0 - t * t)
        return cls(bits=bits, i_max=i_max, thresholds=jnp.sort(t), **kwargs)

    @property
    def lsb(self):
        """Full-scale fraction of one LSB, `1 / (2^(bits-1) - 1)`."""
        bits = self.bits
        if bits is None:
            raise ValueError("an ADC without bits (bits=None) has no LSB")
        return 1.0 / magnitude_levels(bits)

    def __call__(
        self, i: Float[Array, "*cols"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*cols"]:
        """The current the digital side sees (A): clipped and quantized.

        `key` draws the input-referred noise (none without a key).
        """
        if self.i_max is None:
            return i
        i_max = self.i_max
        if i_max.ndim != i.ndim:  # per-tile / per-column full scale
            i_max = jnp.broadcast_to(i_max, jnp.broadcast_shapes(i_max.shape, i.shape))
        if self.bits is None:
            return clip_unit(i, i_max)
        u = i / i_max
        if key is not None and self.noise_lsb is not None:
            u = u + self.noise_lsb * self.lsb * jax.random.normal(key, u.shape, u.dtype)
        if self.thresholds is None:
            return quantize_signed(u, self.bits) * i_max
        n = magnitude_levels(self.bits)
        code = jnp.searchsorted(self.thresholds, jax.lax.stop_gradient(u), side="right")
        q = code.astype(jnp.float32) / n - 1.0
        # Straight-through: value of the non-ideal level, gradient of the clip.
        uc = clip_unit(u)
        return (uc + jax.lax.stop_gradient(q - uc)) * i_max
