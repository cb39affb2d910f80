"""Bad configuration fails at construction with a ValueError naming the field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import config

import devices
import xbar


def _layer(key, **kw):
    w = jnp.ones((3, 5), jnp.float32)
    return xbar.AnalogLinear.from_weights(
        w, None, config(devices.Ideal(), **kw), key=key
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: devices.Ideal(g_min=-1e-6),
        lambda: devices.RRAM.from_card(g_min=-1e-9),
    ],
)
def test_negative_g_min(make):
    with pytest.raises(ValueError, match=r"g_min must be in \[0"):
        make()


@pytest.mark.parametrize(
    "make",
    [
        lambda: devices.Ideal(g_min=1e-4, g_max=1e-5),
        lambda: devices.Ideal(g_min=1e-5, g_max=1e-5),
        lambda: devices.RRAM.from_card(g_min=4e-8, g_max=3e-8),
    ],
)
def test_inverted_bounds(make):
    with pytest.raises(ValueError, match="g_min must be in .*g_max"):
        make()


def test_non_positive_g_max():
    with pytest.raises(ValueError, match="g_max"):
        devices.Ideal(g_min=0.0, g_max=0.0)


@pytest.mark.parametrize("bits", [0, -3, 1, 3.5, 25])
def test_bad_dac_bits(bits):
    with pytest.raises(ValueError, match="DAC bits"):
        xbar.DAC(bits=bits)


@pytest.mark.parametrize("bits", [0, -1, 1, 2.5])
def test_bad_adc_bits(bits):
    with pytest.raises(ValueError, match="ADC bits"):
        xbar.ADC(bits=bits, i_max=1e-6)


@pytest.mark.parametrize("i_max", [0.0, -1e-6, float("nan")])
def test_bad_adc_i_max(i_max):
    with pytest.raises(ValueError, match="i_max"):
        xbar.ADC(bits=8, i_max=i_max)


def test_adc_bits_without_i_max():
    with pytest.raises(ValueError, match="i_max"):
        xbar.ADC(bits=8, i_max=None)


def test_bad_dac_v_read():
    with pytest.raises(ValueError, match="v_read"):
        xbar.DAC(bits=8, v_read=0.0)


@pytest.mark.parametrize("field", ["tile_rows", "tile_cols"])
@pytest.mark.parametrize("value", [0, -5])
def test_non_positive_tile_size(field, value, getkey):
    with pytest.raises(ValueError, match=field):
        _layer(getkey(), **{field: value})


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weight(bad, getkey):
    w = jnp.ones((3, 5), jnp.float32).at[1, 2].set(bad)
    with pytest.raises(ValueError, match="weight must be finite"):
        xbar.AnalogLinear.from_weights(w, None, devices.Ideal(), key=getkey())


def test_bias_shape(getkey):
    with pytest.raises(ValueError, match="bias"):
        xbar.AnalogLinear.from_weights(
            jnp.ones((3, 5)), jnp.ones(4), devices.Ideal(), key=getkey()
        )


@pytest.mark.parametrize("shape", [(4,), (6,), (5, 4)])
def test_mismatched_input_shape(shape, getkey):
    layer = _layer(getkey())
    with pytest.raises(ValueError, match="input must have shape"):
        layer(jnp.ones(shape, jnp.float32))


@pytest.mark.parametrize(
    "field,value",
    [
        ("sigma_read", -0.01),
        ("sigma_c2c", -0.1),
        ("sigma_prog", -1.0),
        ("sigma_d2d", 1.0),
        ("a_ltp", 0.0),
        ("a_ltd", 0.0),
        ("p_max_ltp", 0.0),
    ],
)
def test_bad_rram_parameter(field, value):
    with pytest.raises(ValueError, match=field):
        devices.RRAM.from_card(**{field: value})


def test_unknown_rram_field():
    with pytest.raises(ValueError, match="sigma_raed"):
        devices.RRAM.from_card(sigma_raed=0.1)


def test_unknown_card():
    with pytest.raises(ValueError, match="unknown device card 'no_such_card'"):
        devices.load_card("no_such_card")
    with pytest.raises(ValueError, match="available cards"):
        devices.RRAM.from_card("no_such_card")


def test_stack_differing_static_field(getkey):
    key = getkey()
    layers = [_layer(key, input_scaling=m) for m in ("abs_max", "fixed")]
    with pytest.raises(ValueError, match="input_scaling"):
        xbar.stack(layers)


def test_stack_differing_structure():
    # None in one config and an array in the other: names the field.
    with pytest.raises(ValueError, match="bits"):
        xbar.stack([xbar.DAC(bits=None), xbar.DAC(bits=8)])
    # Array fields of different shapes cannot be stacked: names the field.
    with pytest.raises(ValueError, match="i_max"):
        xbar.stack(
            [
                xbar.ADC(bits=None, i_max=np.ones(3)),
                xbar.ADC(bits=None, i_max=np.ones(4)),
            ]
        )
    with pytest.raises(ValueError, match="at least one"):
        xbar.stack([])


def test_stack_of_compatible_configs_works():
    # The check is not over-eager: equal statics, different array values stack.
    s = xbar.stack([devices.RRAM.from_card(sigma_read=v) for v in (0.0, 0.1)])
    np.testing.assert_array_equal(np.asarray(s.sigma_read), np.float32([0.0, 0.1]))
    d = xbar.stack([xbar.DAC(bits=b) for b in (2, 8)])
    np.testing.assert_array_equal(np.asarray(d.bits), np.float32([2, 8]))


def test_checks_skip_tracers():
    # Construction inside a transform must not crash on traced values.
    out = jax.jit(lambda s: devices.RRAM.from_card(sigma_read=s).sigma_read)(0.05)
    assert float(out) == np.float32(0.05)


def test_strict_promotion_is_active():
    # conftest.py turns silent promotion into errors for the whole suite; if the
    # settings were dropped, every test above would run without them.
    with pytest.raises(ValueError, match="rank"):
        jnp.ones(3) + jnp.ones((2, 3))
    with pytest.raises(jax.dtypes.TypePromotionError, match="strict"):
        jnp.ones(3, jnp.float32) + jnp.ones(3, jnp.int32)
