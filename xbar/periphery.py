"""Digital-to-analog and analog-to-digital converters at the array's edges."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from devices.base import as_param, check_range, concrete


def _as_bits(x):
    return None if x is None else jnp.asarray(x, jnp.float32)


def _check_bits(name: str, bits) -> None:
    b = concrete(bits)
    if b is None:
        return
    if not np.all(np.isfinite(b)) or np.any(b < 2) or np.any(b > 24) or np.any(b != np.round(b)):
        raise ValueError(
            f"{name} must be an integer in [2, 24] (sign + magnitude) or None for "
            f"an ideal converter; got {name}={b}"
        )


def round_ste(x: Array) -> Array:
    """Round to the nearest integer with a straight-through gradient."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def quantize_signed(u: Array, bits: Array) -> Array:
    """Clip `u` to [-1, 1] and round to the 2^bits - 1 levels symmetric about 0.

    The step is 1 / (2^(bits-1) - 1); zero and +-1 are levels. The gradient is
    straight-through inside the range and zero where clipped.
    """
    n = 2.0 ** (bits - 1.0) - 1.0
    return round_ste(jnp.clip(u, -1.0, 1.0) * n) / n


class DAC(eqx.Module):
    """Row driver: a normalized input in [-1, 1] becomes a voltage pulse amplitude.

    Args:
        bits: resolution including sign, integer in [2, 24], or None for an
            unquantized driver. An array leaf, so a sweep can vmap over it.
        v_read: full-scale read voltage (V), > 0: input 1 drives `v_read`.
    """

    bits: Float[Array, ""] | None = eqx.field(converter=_as_bits, default=8)
    v_read: Float[Array, ""] = eqx.field(converter=as_param, default=0.2)

    def __check_init__(self):
        _check_bits("DAC bits", self.bits)
        check_range("v_read", self.v_read, 0.0, lo_open=True, unit="V")

    def __call__(self, u: Float[Array, "*rows"]) -> Float[Array, "*rows"]:
        """Voltages (V) for normalized inputs `u` (clipped to [-1, 1])."""
        if self.bits is None:
            return jnp.clip(u, -1.0, 1.0) * self.v_read
        return quantize_signed(u, self.bits) * self.v_read


class ADC(eqx.Module):
    """Column converter: a current becomes a number, clipped at +-`i_max`.

    Args:
        bits: resolution including sign, integer in [2, 24], or None for no
            quantization (then only the clipping at `i_max` acts).
        i_max: full-scale current (A), > 0, or None for an ideal converter
            (no clipping; `bits` must then be None). Any shape that broadcasts
            against the column currents (per tile or per column).
    """

    bits: Float[Array, ""] | None = eqx.field(converter=_as_bits, default=8)
    i_max: Float[Array, "..."] | None = eqx.field(
        converter=lambda x: None if x is None else as_param(x), default=None
    )

    def __check_init__(self):
        _check_bits("ADC bits", self.bits)
        if self.i_max is None:
            if self.bits is not None:
                raise ValueError(
                    "ADC i_max must be a current > 0 A when bits is set; got "
                    "i_max=None (calibrate it with xbar.calibrate_adc)"
                )
        else:
            check_range("ADC i_max", self.i_max, 0.0, lo_open=True, unit="A")

    def __call__(self, i: Float[Array, "*cols"]) -> Float[Array, "*cols"]:
        """The current the digital side sees (A): clipped and quantized."""
        if self.i_max is None:
            return i
        if self.bits is None:
            return jnp.clip(i, -self.i_max, self.i_max)
        return quantize_signed(i / self.i_max, self.bits) * self.i_max
