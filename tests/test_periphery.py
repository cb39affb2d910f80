"""DAC and ADC: quantization levels, clipping, ideal passthrough, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EPS32

import xbar

# Dense sweep well past full scale on both sides; includes exact level points.
U = jnp.linspace(-1.5, 1.5, 30001, dtype=jnp.float32)


def _levels(bits):
    """The 2^bits - 1 signed levels k / (2^(bits-1) - 1), k = -n..n, in float64."""
    n = 2 ** (bits - 1) - 1
    return np.arange(-n, n + 1) / n


def test_dac_3_bits_gives_seven_levels():
    v_read = 0.3
    out = np.unique(np.asarray(xbar.DAC(bits=3, v_read=v_read)(U), np.float64))
    expected = np.array([-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1]) * v_read
    assert out.shape == (7,)
    # float32 round + divide + multiply: 2 eps relative to full scale.
    np.testing.assert_allclose(out, expected, rtol=0, atol=2 * EPS32 * v_read)


def test_adc_3_bits_gives_seven_levels():
    i_max = 2e-6
    out = np.unique(np.asarray(xbar.ADC(bits=3, i_max=i_max)(U * i_max), np.float64))
    expected = np.array([-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1]) * i_max
    assert out.shape == (7,)
    # float32 divide, round, divide, multiply: 3 eps relative to full scale.
    np.testing.assert_allclose(out, expected, rtol=0, atol=3 * EPS32 * i_max)


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_quantizer_rounds_to_nearest_level(bits):
    levels = _levels(bits)
    q = np.asarray(xbar.quantize_signed(U, jnp.float32(bits)), np.float64)
    u = np.clip(np.asarray(U, np.float64), -1, 1)
    assert np.unique(q).size == 2**bits - 1
    # Every output is a level and the nearest one to the clipped input. Ties and
    # float32 rounding: 2 eps of full scale.
    nearest = levels[np.abs(u[:, None] - levels[None, :]).argmin(axis=1)]
    assert np.all(np.abs(q - u) <= np.abs(nearest - u) + 2 * EPS32)
    assert np.all(np.abs(q[:, None] - levels[None, :]).min(axis=1) <= 2 * EPS32)


def test_clipping_beyond_full_scale():
    v_read, i_max = 0.2, 5e-6
    big = jnp.asarray([-100.0, -1.5, -1.0 - 1e-3, 1.0 + 1e-3, 1.5, 100.0])
    sign = np.sign(np.asarray(big))
    # Clipped values are exactly +-1 times full scale (clip is exact; 1 * x is
    # exact, and quantizing 1 gives n / n = 1 exactly).
    for dac in (xbar.DAC(bits=None, v_read=v_read), xbar.DAC(bits=4, v_read=v_read)):
        np.testing.assert_array_equal(np.asarray(dac(big)), sign * np.float32(v_read))
    for adc in (xbar.ADC(bits=None, i_max=i_max), xbar.ADC(bits=6, i_max=i_max)):
        out = np.asarray(adc(big * i_max), np.float64)
        # ADC divides by i_max and multiplies back: 1 eps relative.
        np.testing.assert_allclose(out, sign * i_max, rtol=EPS32, atol=0)


def test_ideal_converters_pass_through():
    u = jnp.linspace(-1.0, 1.0, 101, dtype=jnp.float32)
    # DAC(bits=None) is u * v_read: one float32 product, so bitwise equal to the
    # same product in NumPy float32.
    dac = xbar.DAC(bits=None, v_read=0.25)
    np.testing.assert_array_equal(np.asarray(dac(u)), np.asarray(u) * np.float32(0.25))
    # ADC() without i_max is the identity, even far beyond any full scale.
    i = jnp.asarray([-3.0, -1e-9, 0.0, 2e-12, 7.5], jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(xbar.ADC(bits=None, i_max=None)(i)), np.asarray(i)
    )
    # ADC(bits=None, i_max) only clips: inside the range it is the identity.
    adc = xbar.ADC(bits=None, i_max=1.0)
    np.testing.assert_array_equal(np.asarray(adc(u)), np.asarray(u))


@pytest.mark.parametrize("bits", [3, 8])
def test_straight_through_gradient(bits):
    u = jnp.linspace(-1.4, 1.4, 281, dtype=jnp.float32)
    grad = jax.vmap(jax.grad(lambda x: xbar.quantize_signed(x, jnp.float32(bits))))(u)
    grad = np.asarray(grad)
    inside = np.abs(np.asarray(u)) < 1 - 1e-6
    outside = np.abs(np.asarray(u)) > 1 + 1e-6
    assert inside.sum() > 100 and outside.sum() > 50
    # Straight-through: d(round(x))/dx is taken as 1, so exactly 1 inside
    # (x * n / n in float32 may be 1 - 1 ulp: allow 2 eps) and exactly 0 where
    # clipped.
    np.testing.assert_allclose(grad[inside], 1.0, rtol=0, atol=2 * EPS32)
    np.testing.assert_array_equal(grad[outside], 0.0)


def test_converter_gradient_through_dac():
    # The DAC's gradient is v_read inside the range (chain rule on u * v_read).
    dac = xbar.DAC(bits=6, v_read=0.2)
    g = jax.vmap(jax.grad(lambda x: dac(x)))(jnp.asarray([-0.7, -0.1, 0.0, 0.33, 0.9]))
    # One float32 product: 2 eps relative.
    np.testing.assert_allclose(np.asarray(g), 0.2, rtol=2 * EPS32)
