"""Whole networks (`xbar.AnalogNetwork`): convolutions then linear layers on tiles,
against a float64 NumPy forward of the same weights."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EPS32, config

import devices
import xbar

IDEAL = devices.Ideal()  # g in [1e-6, 1e-4] S


def _cnn_params(key):
    k = jax.random.split(key, 6)
    return [
        (
            jax.random.normal(k[0], (4, 1, 3, 3)) / 3.0,
            jax.random.normal(k[1], (4,)) * 0.1,
        ),
        (
            jax.random.normal(k[2], (6, 4, 3, 3)) / 6.0,
            jax.random.normal(k[3], (6,)) * 0.1,
        ),
        (
            jax.random.normal(k[4], (5, 6 * 2 * 2)) / 5.0,
            jax.random.normal(k[5], (5,)) * 0.1,
        ),
    ]


def _cnn_net(params, key, adcs=None, **kw):
    """The `_cnn_params` network on 11 x 11 images (strides 2, paddings 1 and 0)."""
    cfg = config(IDEAL, tile_rows=16, tile_cols=8, **kw)
    if adcs is not None:
        cfg = [eqx.tree_at(lambda c: c.adc, cfg, a) for a in adcs]
    return xbar.AnalogNetwork.from_weights(
        params, cfg, key=key, input_shape=(1, 11, 11), strides=2, paddings=[1, 0]
    )


def _numpy_forward(params, x, strides, paddings):
    """Float64 reference by explicit loops over output pixels (no lax)."""
    x = np.asarray(x, np.float64)
    for i, (w, b) in enumerate(params):
        w, b = np.asarray(w, np.float64), np.asarray(b, np.float64)
        if w.ndim == 4:
            s, p = strides[i], paddings[i]
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
            o, _, kh, kw = w.shape
            ho = (x.shape[2] - kh) // s + 1
            wo = (x.shape[3] - kw) // s + 1
            y = np.empty((x.shape[0], o, ho, wo))
            for r in range(ho):
                for c in range(wo):
                    patch = x[:, :, r * s : r * s + kh, c * s : c * s + kw]
                    y[:, :, r, c] = np.einsum("nchw,ochw->no", patch, w)
            x = y + b[None, :, None, None]
        else:
            x = x.reshape(x.shape[0], -1) @ w.T + b
        if i < len(params) - 1:
            x = np.maximum(x, 0.0)
    return x


def test_ideal_cnn_equals_float64_reference(getkey):
    params = _cnn_params(getkey())
    x = jax.random.uniform(getkey(), (3, 1, 11, 11), jnp.float32)
    strides, paddings = [2, 2], [1, 0]
    net = xbar.AnalogNetwork.from_weights(
        params,
        xbar.AnalogConfig(
            IDEAL,
            mapping=xbar.Mapping(tile_rows=16, tile_cols=8),
            dac=xbar.DAC(bits=None),
        ),
        key=getkey(),
        input_shape=(1, 11, 11),
        strides=strides,
        paddings=paddings,
    )
    ref = _numpy_forward(params, x, strides, paddings)
    # Flattened inputs are accepted too and give the same result.
    y = np.asarray(net(x), np.float64)
    np.testing.assert_array_equal(y, np.asarray(net(x.reshape(3, -1))))
    assert y.shape == ref.shape == (3, 5)
    # Three float32 layers, each a sum of at most 36 products through 16-row tiles
    # plus the differential common mode (g_min / dG ~ 0.01 of full scale): the
    # error is O(40 eps) of the largest partial sum per layer, compounded over 3
    # layers; 1e3 eps of max |ref| bounds it with room, and is 1e4 times below a
    # wrong stride, padding or flatten order (O(max |ref|)).
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e3 * EPS32 * np.abs(ref).max())


def test_digital_forward_matches_reference(getkey):
    params = _cnn_params(getkey())
    x = jax.random.uniform(getkey(), (3, 121), jnp.float32)
    y = xbar.digital_forward(
        params, x, input_shape=(1, 11, 11), strides=2, paddings=[1, 0]
    )
    ref = _numpy_forward(params, np.asarray(x).reshape(3, 1, 11, 11), [2, 2], [1, 0])
    # One float32 forward of short sums: 1e2 eps of max |ref|.
    np.testing.assert_allclose(
        np.asarray(y), ref, rtol=0, atol=1e2 * EPS32 * np.abs(ref).max()
    )


def test_calibrate_adcs_sees_each_layers_activations(getkey):
    params = _cnn_params(getkey())
    x = jax.random.uniform(getkey(), (16, 1, 11, 11), jnp.float32)
    net = _cnn_net(params, getkey(), n_slices=2, weight_bits=6)
    cal = net.calibrate_adcs(x, bits=6, percentile=99.0)
    # Layer by layer by hand: each layer's ADC calibrated on relu(previous output).
    c1 = xbar.calibrate_adc(net.layers[0], x, bits=6, percentile=99.0)
    h = jax.nn.relu(net.layers[0](x))
    c2 = xbar.calibrate_adc(net.layers[1], h, bits=6, percentile=99.0)
    h = jax.nn.relu(net.layers[1](h)).reshape(16, -1)
    c3 = xbar.calibrate_adc(net.layers[2], h, bits=6, percentile=99.0)
    for got, want in zip(cal.layers, (c1, c2, c3)):
        assert float(got.adc.i_max) == float(want.adc.i_max)
        assert float(got.adc.bits) == 6.0
    # with_adcs swaps converters without reprogramming the cells.
    adcs = [xbar.ADC(bits=4, i_max=1e-6)] * 3
    swapped = cal.with_adcs(adcs)
    assert all(float(la.adc.bits) == 4.0 for la in swapped.layers)
    np.testing.assert_array_equal(
        np.asarray(swapped.layers[2].crossbar.pos.g),
        np.asarray(cal.layers[2].crossbar.pos.g),
    )


@pytest.mark.parametrize(
    "params, kw, field",
    [
        ([], {}, "params"),
        ([(jnp.ones((2, 3, 3)), None)], {}, "2-D"),
        (
            [(jnp.ones((4, 16)), None), (jnp.ones((2, 1, 3, 3)), None)],
            {},
            "convolution layers",
        ),
        ([(jnp.ones((2, 1, 3, 3)), None)], {"input_shape": (9,)}, "input_shape"),
        ([(jnp.ones((2, 1, 3, 3)), None)], {"strides": [1, 2]}, "strides"),
        ([(jnp.ones((2, 4)), None)], {"config": [IDEAL, IDEAL]}, "config"),
        ([(jnp.ones((3, 4)), None), (jnp.ones((2, 4)), None)], {}, "layer 1"),
        ([(jnp.ones((2, 3, 3, 3)), None)], {}, "layer 0"),  # 1 channel in
        (
            [(jnp.ones((2, 1, 3, 3)), None), (jnp.ones((5, 9)), None)],
            {},
            "layer 1",  # conv gives 2 x 2 x 2 = 8 inputs, not 9
        ),
        ([(jnp.ones((2, 1, 5, 5)), None)], {}, "layer 0"),  # kernel larger than 4x4
    ],
)
def test_bad_networks_raise(params, kw, field, getkey):
    kw = {"input_shape": (1, 4, 4) if params and params[0][0].ndim == 4 else (4,), **kw}
    with pytest.raises(ValueError, match=field):
        xbar.AnalogNetwork.from_weights(
            params, kw.pop("config", IDEAL), key=getkey(), **kw
        )


def test_wrong_input_shape_raises(getkey):
    net = xbar.AnalogNetwork.from_weights(
        [(jnp.ones((2, 4)), None)], IDEAL, key=getkey(), input_shape=(4,)
    )
    with pytest.raises(ValueError, match="input_shape"):
        net(jnp.ones((3, 5)))


def test_network_counts_take_the_network(getkey):
    # Counting a whole AnalogNetwork (flattened images in) equals counting its
    # layers on images shaped for the first convolution.
    params = _cnn_params(getkey())
    net = _cnn_net(params, getkey(), adcs=[xbar.ADC(bits=6, i_max=1e-5)] * 3)
    x = jax.random.uniform(getkey(), (4, 121), jnp.float32)
    whole = xbar.network_counts(net, x)
    images = xbar.AnalogNetwork(net.layers, (1, 11, 11))
    by_layer = xbar.network_counts(images, x.reshape(4, 1, 11, 11))
    assert whole == by_layer
    assert [r["layer"] for r in whole] == [0, 1, 2]


def test_bare_weights_mean_no_bias(getkey):
    # A list of weights (no (weight, bias) pairs) maps as layers without bias:
    # the analog network equals the float reference on ideal cells (float32
    # rounding of 16-term sums: 1e2 eps of the output scale).
    w1 = jax.random.normal(getkey(), (8, 16), jnp.float32)
    w2 = jax.random.normal(getkey(), (3, 8), jnp.float32)
    x = jax.random.uniform(getkey(), (5, 16), jnp.float32)
    cfg = config(IDEAL, dac=xbar.DAC(bits=None))
    net = xbar.AnalogNetwork.from_weights([w1, w2], cfg, key=getkey())
    ref = np.asarray(xbar.digital_forward([w1, w2], x, input_shape=(16,)), np.float64)
    np.testing.assert_allclose(
        np.asarray(net(x), np.float64),
        ref,
        rtol=0,
        atol=1e2 * EPS32 * np.abs(ref).max(),
    )
