"""Weights onto tiles and back, and the analog linear layer against W x + b."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import EPS32, config, untile

import devices
import xbar

IDEAL = devices.Ideal()  # g in [1e-6, 1e-4] S


def _weights(key, out_f, in_f):
    kw, kb = jax.random.split(key)
    w = jax.random.normal(kw, (out_f, in_f), jnp.float32) / np.sqrt(in_f)
    b = jax.random.normal(kb, (out_f,), jnp.float32)
    return w, b


def _ideal_layer(w, b, key, tile_rows, tile_cols, **kw):
    return xbar.AnalogLinear.from_weights(
        w,
        b,
        config(
            IDEAL,
            tile_rows=tile_rows,
            tile_cols=tile_cols,
            dac=xbar.DAC(bits=None),
            **kw,
        ),
        key=key,
    )


def _mvm_tolerance(w, x, n_acc, g_min, g_max):
    """Float32 error bound of the analog W x, per output, in output units.

    Two terms, each float32 eps times a length times a magnitude:
    - encoding: G+- = g_min + k max(+-w, 0) <= g_max is rounded to float32 and
      subtracted, erring by ~2 eps g_max per cell, i.e. 2 eps w_max g_max /
      (g_max - g_min) in weight units; summed over the inputs with weights
      |x_j|, plus as much again for the scalings of x, v and 1/k: 4 eps.
    - accumulation: a float32 sum of n terms errs by at most ~n eps times the
      sum of their magnitudes, sum_j |W_cj x_j|; n_acc is the accumulation
      length (padded rows plus the sum over tiles), plus ~4 scalings.
    """
    w = np.asarray(w, np.float64)
    x = np.asarray(x, np.float64)
    w_max = np.abs(w).max()
    encoding = 4 * w_max * g_max / (g_max - g_min) * np.abs(x).sum(-1, keepdims=True)
    accumulation = (n_acc + 4) * (np.abs(x) @ np.abs(w).T)
    return EPS32 * (encoding + accumulation)


# -- tiling -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,tile",
    [
        ((37, 300), (64, 32)),
        ((300, 37), (64, 32)),
        ((10, 784), (256, 256)),
        ((5, 7), (2, 3)),
        ((64, 32), (64, 32)),
        ((1, 1), (4, 4)),
    ],
)
def test_to_from_tiles_round_trip(shape, tile, getkey):
    m = jax.random.normal(getkey(), shape, jnp.float32)
    t = xbar.to_tiles(m, *tile, fill=-9.0)
    tr, tc = -(-shape[0] // tile[0]), -(-shape[1] // tile[1])  # ceil division
    assert t.shape == (tr, tc) + tile
    # Exact: tiling only moves values.
    np.testing.assert_array_equal(np.asarray(xbar.from_tiles(t, *shape)), np.asarray(m))
    # Against an independent NumPy tiling: block (a, b) holds rows a*R.. and
    # columns b*C.. of the matrix padded with `fill`.
    padded = np.full((tr * tile[0], tc * tile[1]), -9.0, np.float32)
    padded[: shape[0], : shape[1]] = np.asarray(m)
    for a in range(tr):
        for b in range(tc):
            block = padded[
                a * tile[0] : (a + 1) * tile[0], b * tile[1] : (b + 1) * tile[1]
            ]
            np.testing.assert_array_equal(np.asarray(t[a, b]), block)
    np.testing.assert_array_equal(untile(t, *shape), np.asarray(m))


# -- mapping and the ideal layer --------------------------------------------------


@pytest.mark.parametrize("shape,tile", [((37, 300), (64, 32)), ((10, 784), (256, 256))])
def test_effective_weight_round_trip_ideal(shape, tile, getkey):
    w, b = _weights(getkey(), *shape)
    layer = _ideal_layer(w, b, getkey(), *tile)
    w_eff = np.asarray(layer.effective_weight(), np.float64)
    w64 = np.asarray(w, np.float64)
    w_max = np.abs(w64).max()
    # G+- = g_min + k max(+-w, 0) in float32 errs by ~eps g_max each; (G+ - G-)/k
    # then errs by ~2 eps g_max / k = 2 eps w_max g_max / (g_max - g_min), plus
    # half an ulp for the division: 4 eps w_max g_max / (g_max - g_min).
    atol = 4 * EPS32 * w_max * 1e-4 / (1e-4 - 1e-6)
    np.testing.assert_allclose(w_eff, w64, rtol=0, atol=atol)
    # Padding cells hold zero weight: g_min on both sides, exactly.
    pos, neg = np.asarray(layer.crossbar.pos.g), np.asarray(layer.crossbar.neg.g)
    padded = np.pad(
        np.zeros((shape[1], shape[0]), bool),
        (
            (0, pos.shape[0] * tile[0] - shape[1]),
            (0, pos.shape[1] * tile[1] - shape[0]),
        ),
        constant_values=True,
    )
    pad_tiles = padded.reshape(pos.shape[0], tile[0], pos.shape[1], tile[1]).transpose(
        0, 2, 1, 3
    )
    assert pad_tiles.any()
    assert np.all(pos[pad_tiles] == np.float32(1e-6)) and np.all(
        neg[pad_tiles] == np.float32(1e-6)
    )


@pytest.mark.parametrize("shape,tile", [((37, 300), (64, 32)), ((10, 784), (256, 256))])
def test_ideal_tiled_mvm_equals_digital(shape, tile, getkey):
    out_f, in_f = shape
    w, b = _weights(getkey(), out_f, in_f)
    layer = _ideal_layer(w, b, getkey(), *tile)
    x = jax.random.normal(getkey(), (16, in_f), jnp.float32)
    y = np.asarray(jax.vmap(lambda xi: layer(xi, key=None))(x), np.float64)
    w64, x64, b64 = (np.asarray(a, np.float64) for a in (w, x, b))
    expected = x64 @ w64.T + b64
    n_rows = -(-in_f // tile[0]) * tile[0]
    tol = _mvm_tolerance(w, x, n_rows + -(-in_f // tile[0]), 1e-6, 1e-4)
    tol = tol + 2 * EPS32 * np.abs(expected)  # adding the float32 bias
    assert np.all(np.abs(y - expected) <= tol)
    # The bound is far below the signal, so a wrong tile or column mapping fails.
    assert tol.max() < 1e-2 * np.abs(expected - b64).mean()


def test_ideal_mvm_independent_of_tile_size(getkey):
    out_f, in_f = 37, 300
    w, b = _weights(getkey(), out_f, in_f)
    x = jax.random.normal(getkey(), (8, in_f), jnp.float32)
    ys = []
    for tile in [(64, 32), (300, 37), (7, 5), (256, 256), (1, 37)]:
        layer = _ideal_layer(w, b, getkey(), *tile)
        ys.append(
            np.asarray(jax.vmap(lambda xi, la=layer: la(xi, key=None))(x), np.float64)
        )
    # Each result is within the float32 bound of the exact W x + b (accumulation
    # length <= 2 * 300 with 1-row tiles); two of them differ by at most twice it.
    tol = 2 * _mvm_tolerance(w, x, 2 * 300 + 300, 1e-6, 1e-4)
    for y in ys[1:]:
        assert np.all(np.abs(y - ys[0]) <= tol)


def test_no_bias_and_fixed_input_scaling(getkey):
    w, _ = _weights(getkey(), 6, 20)
    layer = _ideal_layer(w, None, getkey(), 8, 4, input_scaling="fixed", x_max=4.0)
    x = 0.5 * jax.random.normal(getkey(), (5, 20), jnp.float32)
    x = jnp.clip(x, -4.0, 4.0)
    y = np.asarray(jax.vmap(lambda xi: layer(xi, key=None))(x), np.float64)
    expected = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
    assert np.all(np.abs(y - expected) <= _mvm_tolerance(w, x, 24 + 3, 1e-6, 1e-4))


# -- ADC calibration ---------------------------------------------------------------


def test_calibrated_adc_stays_close(getkey):
    out_f, in_f, tile = 10, 100, (32, 8)
    w, b = _weights(getkey(), out_f, in_f)
    layer = _ideal_layer(w, b, getkey(), *tile)
    x = jax.random.normal(getkey(), (64, in_f), jnp.float32)
    w64, x64, b64 = (np.asarray(a, np.float64) for a in (w, x, b))
    tr = -(-in_f // tile[0])
    v_read = float(layer.dac.v_read)
    k = (1e-4 - 1e-6) / np.abs(w64).max()  # siemens per unit weight

    # i_max, independently: the largest |partial column current| of any tile,
    # sum_{j in tile rows} (x_j / max|x|) v_read k W_cj, over the data.
    s = np.abs(x64).max(axis=1, keepdims=True)
    xp = np.pad(x64 / s, ((0, 0), (0, tr * tile[0] - in_f))).reshape(64, tr, tile[0])
    wp = np.pad(w64.T, ((0, tr * tile[0] - in_f), (0, 0))).reshape(tr, tile[0], out_f)
    partial = np.einsum("bar,arc->bac", xp, wp) * v_read * k
    i_max_expected = np.abs(partial).max()

    errors = {}
    for bits in (16, 4):
        cal = xbar.calibrate_adc(layer, x, bits=bits, percentile=100.0)
        i_max = float(cal.adc.i_max)
        # Float32 currents: (rows + 8) eps of the largest summed magnitude.
        atol = (
            (tile[0] + 8)
            * EPS32
            * np.abs(np.einsum("bar,arc->bac", np.abs(xp), np.abs(wp))).max()
            * v_read
            * k
            * 1.01
        )
        assert abs(i_max - i_max_expected) <= atol
        y = np.asarray(jax.vmap(lambda xi, c=cal: c(xi, key=None))(x), np.float64)
        err = np.abs(y - (x64 @ w64.T + b64))
        # Each tile's ADC rounds to a step of i_max / (2^(bits-1) - 1); the error is
        # at most half a step per tile, tr tiles per output, in output units
        # (x s / (v_read k)), plus the float32 bound of the ideal layer.
        step = i_max / (2 ** (bits - 1) - 1)
        bound = tr * 0.5 * step * s / (v_read * k)
        bound = bound + _mvm_tolerance(w, x, tr * tile[0] + tr, 1e-6, 1e-4)
        bound = bound + 2 * EPS32 * np.abs(b64)
        assert np.all(err <= bound), bits
        errors[bits] = err.max()
    # The quantization error is visible at 4 bits and far smaller at 16, so the
    # ADC is really in the path (not bypassed).
    assert errors[4] > 100 * errors[16]


# -- read noise through the layer ----------------------------------------------


def test_read_noise_through_layer_closed_form(getkey):
    """Each read of cell ij is g_ij (1 + sigma_read xi), independent between cells
    and reads. With DAC(bits=None) the row voltage is v_j = x_j v_read / s, the
    column current noise has variance sum_j v_j^2 sigma_read^2 (g+_jc^2 + g-_jc^2),
    and the layer scales currents by s / (v_read k), so

        std(y_c) = sigma_read sqrt(sum_j x_j^2 (g+_jc^2 + g-_jc^2)) / k,

    independent of the tiling, s and v_read."""
    out_f, in_f, tile = 6, 40, (16, 8)
    dev = devices.RRAM.from_card(sigma_prog=0.0, sigma_c2c=0.0)
    w, b = _weights(getkey(), out_f, in_f)
    layer = xbar.AnalogLinear.from_weights(
        w,
        b,
        xbar.AnalogConfig(
            dev,
            mapping=xbar.Mapping(tile_rows=tile[0], tile_cols=tile[1]),
            dac=xbar.DAC(bits=None, v_read=0.3),
        ),
        key=getkey(),
    )
    x = np.asarray(jax.random.normal(getkey(), (in_f,), jnp.float32), np.float64)
    g_pos = untile(layer.crossbar.pos.g, in_f, out_f).astype(np.float64)
    g_neg = untile(layer.crossbar.neg.g, in_f, out_f).astype(np.float64)
    c = devices.card_values("rram_ag_asi_jo2010")
    k = (c["g_max"] - c["g_min"]) / np.abs(np.asarray(w, np.float64)).max()
    std = (
        c["sigma_read"] * np.sqrt((x[:, None] ** 2 * (g_pos**2 + g_neg**2)).sum(0)) / k
    )
    mean = x @ (g_pos - g_neg) / k + np.asarray(b, np.float64)

    n_keys = 20_000
    x32 = jnp.asarray(x, jnp.float32)
    # The noise-free output is the programmed conductances' W x (float32 bound).
    y0 = np.asarray(layer(x32, key=None), np.float64)
    w_prog = ((g_pos - g_neg) / k).T  # programmed levels, not W: bound their sum
    tol = _mvm_tolerance(w_prog, x, 48 + 3, c["g_min"], c["g_max"])
    assert np.all(np.abs(y0 - mean) <= tol + 2 * EPS32 * np.abs(mean))

    # Two ways to draw N reads: vmap over N keys, or one key over a batch of N
    # copies of x (every example gets its own draw).
    by_keys = jax.vmap(lambda kk: layer(x32, key=kk))(
        jax.random.split(getkey(), n_keys)
    )
    by_batch = layer(jnp.broadcast_to(x32, (n_keys, in_f)), key=getkey())
    for y in (by_keys, by_batch):
        y = np.asarray(y, np.float64)
        # Sampling error of a mean: std / sqrt(N); 5 of those.
        assert np.all(np.abs(y.mean(0) - mean) <= 5 * std / np.sqrt(n_keys) + tol)
        # Sampling error of a std: std / sqrt(2N); 5 of those (3.5 % at N = 2e4).
        assert np.all(np.abs(y.std(0, ddof=1) - std) <= 5 * std / np.sqrt(2 * n_keys))
        # Outputs are independent (different columns, different cells), and so are
        # successive draws: correlations within 5 / sqrt(N) of zero.
        corr = np.corrcoef(y.T)[np.triu_indices(out_f, 1)]
        assert np.all(np.abs(corr) <= 5 / np.sqrt(n_keys))
        lag = np.corrcoef(y[1:, 0], y[:-1, 0])[0, 1]
        assert abs(lag) <= 5 / np.sqrt(n_keys)


@pytest.mark.parametrize("tile", [(64, 32), (300, 37)])
def test_batched_call_equals_vmap(tile, getkey):
    w, b = _weights(getkey(), 37, 300)
    layer = _ideal_layer(w, b, getkey(), *tile)
    x = jax.random.normal(getkey(), (3, 4, 300), jnp.float32)
    batched = np.asarray(layer(x, key=None))
    looped = np.asarray(jax.vmap(jax.vmap(lambda xi: layer(xi, key=None)))(x))
    assert batched.shape == (3, 4, 37)
    # Same float32 arithmetic, batched: a different contraction order in XLA can
    # move results by the float32 bound of the MVM; bound each against the other.
    tol = 2 * _mvm_tolerance(w, x, 320 + 5, 1e-6, 1e-4)
    assert np.all(np.abs(batched - looped) <= tol)
