"""ADC full scale from data, as a chip sets it once at deployment."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

from devices.base import check_range
from xbar.nn.layer import AbstractAnalogLayer
from xbar.periphery.converters import ADC


@eqx.filter_jit
def _full_scale(layer: AbstractAnalogLayer, v, percentile: float, per_column: bool):
    """`(i_max, largest column scale)` from the noise-free ADC inputs of `v`,
    compiled as one function."""
    a = jnp.abs(layer.adc_inputs(v))
    flat = a.reshape((-1,) + a.shape[-3:])  # (cycles x vectors, tr, tc, used)
    valid = layer.adc_valid_columns()  # static (tc, used) mask
    if per_column:
        i_col = jnp.percentile(flat, percentile, axis=0)
        ok = jnp.broadcast_to(jnp.asarray(valid), i_col.shape)
        top = jnp.max(jnp.where(ok, i_col, 0.0))
        return jnp.where(ok & (i_col > 0), i_col, top), top
    i_max = jnp.percentile(flat[:, :, valid], percentile)
    return i_max, i_max


def calibrate_adc(
    layer: AbstractAnalogLayer,
    x: Array,
    *,
    bits: int | None = 8,
    percentile: float = 99.9,
    per_column: bool = False,
) -> AbstractAnalogLayer:
    """Set the layer's ADC full scale from representative inputs `x` (what the
    layer takes: vectors for a linear layer, images for a convolution).

    `i_max` becomes the given percentile of |ADC input current| over all
    tiles, columns, cycles and calibration vectors, read without noise.
    `per_column=True` calibrates every ADC column on its own (`i_max` shaped
    `(tiles_r, tiles_c, cols)`); a column that reads zero on every calibration
    input (a bit slice whose digits are all 0, say) gets the largest column
    full scale of the layer. The ADC's noise and sharing are kept; a drawn
    INL/DNL transfer function is dropped (its code count is tied to the old bits).
    """
    check_range("percentile", percentile, 0.0, 100.0, lo_open=True)
    v = layer.input_vectors(jnp.asarray(x, jnp.float32))
    v = v.reshape(-1, layer.in_features)
    i_max, top = _full_scale(layer, v, float(percentile), bool(per_column))
    if not float(top) > 0:
        raise ValueError("calibrate_adc: all calibration currents are zero")
    if not per_column:
        i_max = float(i_max)
    adc = ADC(
        bits=bits, i_max=i_max, noise_lsb=layer.adc.noise_lsb, share=layer.adc.share
    )
    return layer.with_adc(adc)
