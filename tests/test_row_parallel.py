"""Row parallelism (`Mapping.parallel_rows`): a tile read in row groups, each
group converted on its own and the conversions added digitally."""

import jax
import jax.numpy as jnp
import numpy as np

import devices
import xbar
from xbar.periphery.converters import quantize_signed


def _layer(w, k, *, dac=None, adc=None, rows=16, cols=8, **mapping):
    cfg = xbar.AnalogConfig(
        devices.Ideal(),
        mapping=xbar.Mapping(
            tile_rows=rows, tile_cols=cols, parallel_rows=k, **mapping
        ),
        dac=xbar.DAC(bits=None) if dac is None else dac,
        adc=xbar.ADC(bits=None, i_max=None) if adc is None else adc,
    )
    return xbar.AnalogLinear.from_weights(w, None, cfg, key=jax.random.key(3))


def test_ideal_converters_do_not_see_row_groups(getkey):
    # With ideal ADCs the groups' partial sums add up to the full column sum:
    # outputs equal the all-rows read (float32 rounding of a few more adds: 1e-5
    # of the output scale) and the groups' ADC inputs add up to the full ones.
    # Bit-serial inputs: reads = DAC cycles x row groups (amplitude inputs, one
    # cycle, are covered by the quantized test below).
    dac = xbar.BitSerialDAC(bits=5)
    w = jax.random.normal(getkey(), (12, 40))
    x = jax.random.uniform(getkey(), (5, 40))
    full = _layer(w, None, dac=dac)
    ref = np.asarray(full(x), np.float64)
    a_full = np.asarray(full.adc_inputs(x), np.float64)
    for k in (4,):
        lay = _layer(w, k, dac=dac)
        assert lay.row_groups == 16 // k
        assert lay.read_cycles == dac.n_cycles * 16 // k
        np.testing.assert_allclose(
            np.asarray(lay(x), np.float64), ref, rtol=0, atol=1e-5 * np.abs(ref).max()
        )
        a = np.asarray(lay.adc_inputs(x), np.float64)
        assert a.shape == (lay.read_cycles,) + a_full.shape[1:]
        a = a.reshape((lay.row_groups,) + a_full.shape).sum(0)
        np.testing.assert_allclose(a, a_full, rtol=0, atol=1e-6 * np.abs(a_full).max())


def test_each_group_is_quantized_on_its_own(getkey):
    # One tile, analog weights, ideal DAC, 4-bit ADC: the output is
    # sum_g Q(I_g / i_max) i_max / (siemens per weight) * input scale / v_read,
    # each group's current quantized separately (closed form from the ADC inputs).
    w = jax.random.normal(getkey(), (6, 16))
    x = jax.random.uniform(getkey(), (7, 16))
    i_max = 3e-5
    lay = _layer(w, 4, adc=xbar.ADC(bits=4, i_max=i_max), cols=8)
    a = np.asarray(lay.adc_inputs(x), np.float64)  # (4 groups, 7, 1, 1, 6)
    q = np.asarray(quantize_signed(jnp.asarray(a / i_max, jnp.float32), 4)) * i_max
    g_per_w = np.asarray(lay.g_per_w, np.float64)[0, 0, :6]
    s = np.abs(np.asarray(x, np.float64)).max(axis=1, keepdims=True)
    hand = q.sum(0)[:, 0, 0, :6] / g_per_w * s / float(lay.dac.v_read)
    y = np.asarray(lay(x), np.float64)
    np.testing.assert_allclose(y, hand, rtol=1e-5, atol=1e-6 * np.abs(hand).max())
    # The all-rows read quantizes the whole sum once: a different result.
    assert not np.allclose(np.asarray(_layer(w, None, adc=lay.adc)(x)), y, atol=1e-3)


def test_calibrated_full_scale_follows_the_partial_sums(getkey):
    # Positive weights and inputs: a group's current is at most the full column's,
    # so the calibrated full scale (a percentile of the ADC inputs) shrinks with
    # the rows per group, and the finer LSB resolves each partial sum.
    w = jnp.abs(jax.random.normal(getkey(), (8, 64)))
    x = jax.random.uniform(getkey(), (32, 64))
    i_max = []
    for k in (None, 16, 4):
        cal = xbar.calibrate_adc(
            _layer(w, k, rows=64),
            x,
            bits=6,
        )
        i_max.append(float(cal.adc.i_max))
    assert i_max[0] > i_max[1] > i_max[2]
    # Roughly proportional to the rows summed (uniform inputs, iid weights): within
    # a factor 2 of k / 64 for 16 rows.
    assert 0.5 < (i_max[1] / i_max[0]) / (16 / 64) < 2.0
