"""Hardware-aware training: exact on an ideal device, deterministic, checked inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import HWA_BAD_OPTIONS, compile_log

import devices
import xbar
from xbar.training import MLP, train_hwa


def _task(getkey, n=128, d=12, k=3):
    x = jax.random.normal(getkey(), (n, d))
    y = jnp.argmax(x @ jax.random.normal(getkey(), (d, k)), axis=1)
    return x, y, MLP([d, 8, k], key=getkey()).params()


def _float_sgd(params, x, y, *, lr, epochs, batch_size, key):
    """Plain float64 SGD on the same minibatches (the shuffle `train_hwa`
    documents: per epoch a permutation from the first half of the epoch's key),
    with the two-layer MLP's cross-entropy gradient written out by hand (an
    independent reference, and no per-step compilation)."""
    (w1, b1), (w2, b2) = [
        (np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in params
    ]
    x, y = np.asarray(x, np.float64), np.asarray(y)
    n_b = len(y) // batch_size
    for ke in jax.random.split(key, epochs):
        k_perm, _ = jax.random.split(ke)
        perm = np.asarray(jax.random.permutation(k_perm, len(y)))[: n_b * batch_size]
        for idx in perm.reshape(n_b, -1):
            xb = x[idx]
            a = xb @ w1.T + b1[None]
            h = np.maximum(a, 0.0)
            z = h @ w2.T + b2[None]
            p = np.exp(z - z.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            dz = (p - np.eye(z.shape[1])[y[idx]]) / len(idx)  # d mean CE / d z
            da = (dz @ w2) * (a > 0)
            w2, b2 = w2 - lr * dz.T @ h, b2 - lr * dz.sum(0)
            w1, b1 = w1 - lr * da.T @ xb, b1 - lr * da.sum(0)
    return [(w1, b1), (w2, b2)]


def test_hwa_on_ideal_device_is_float_sgd_and_deterministic(getkey):
    # An ideal, noiseless device with unquantized converters computes W x
    # exactly and the straight-through gradient is the float one, so HWA
    # training is float SGD on the same minibatches (reference in float64;
    # tolerance: float32 rounding of the conductance scale and of the float32
    # training itself over 2 epochs x 4 steps). Same key, same result, bit
    # for bit, and the second call (same setup, same optimizer object)
    # compiles nothing: the run is compiled once per setup, not per call.
    x, y, params = _task(getkey)
    cfg = xbar.AnalogConfig(
        devices.Ideal(),
        mapping=xbar.Mapping(tile_rows=16, tile_cols=8),
        dac=xbar.DAC(bits=None),
    )
    key = getkey()
    kw = dict(optimizer=optax.sgd(0.2), epochs=2, batch_size=32, key=key)
    out = train_hwa(params, cfg, x, y, **kw)
    with compile_log() as records:
        again = train_hwa(params, cfg, x, y, **kw)
        jax.block_until_ready(again.params)
    assert not [r for r in records if r.startswith("Compiling")], records
    ref = _float_sgd(params, x, y, lr=0.2, epochs=2, batch_size=32, key=key)
    for (w, b), (w_r, b_r), (w2, b2) in zip(out.params, ref, again.params):
        np.testing.assert_allclose(w, w_r, atol=2e-5)
        np.testing.assert_allclose(b, b_r, atol=2e-5)
        np.testing.assert_array_equal(w, w2)
        np.testing.assert_array_equal(b, b2)
    assert out.losses.shape == (2,) and np.all(np.isfinite(out.losses))


def test_hwa_with_noisy_pcm_drift_and_adc_is_finite_and_learns(getkey):
    # PCM read one day after programming, twice its own noise, an 8-bit DAC and
    # a 6-bit ADC, weights clipped at 2.5 std: every step's gradient is finite
    # and the loss falls from chance (ln 3 = 1.10) over 4 epochs.
    x, y, params = _task(getkey)
    cfg = xbar.AnalogConfig(
        devices.PCM.from_card(),
        mapping=xbar.Mapping(tile_rows=16, tile_cols=8),
        adc=xbar.ADC(bits=6, i_max=2e-6),
        drift_compensation=xbar.GlobalCompensation(),
    )
    out = train_hwa(
        params, cfg, x, y, optimizer=optax.adam(0.02), epochs=4, batch_size=32,
        key=getkey(), noise_scale=2.0, t_inference_s=86400.0, clip_sigma=2.5,
    )
    assert np.all(np.isfinite(np.asarray(out.losses)))
    assert out.losses[-1] < out.losses[0]
    # The last step clipped at 2.5 std of the weights before that clip; the
    # clip itself lowers the std by a few percent (a few tail weights move
    # in), hence 1.1. Unclipped Gaussian-initialised layers reach ~3-4 std.
    for w, _ in out.params:
        assert np.max(np.abs(w)) <= 1.1 * 2.5 * np.std(w)


@pytest.mark.parametrize("kw, field", HWA_BAD_OPTIONS)
def test_hwa_bad_input_names_the_field(kw, field, getkey):
    x, y, params = _task(getkey)
    args = dict(optimizer=optax.sgd(0.1), epochs=1, batch_size=32, key=getkey())
    args.update(kw)
    with pytest.raises(ValueError, match=field):
        train_hwa(params, devices.Ideal(), x, y, **args)


@pytest.mark.parametrize(
    "make, t_s",
    [
        (lambda: devices.RRAM.from_card(), 0.0),
        (lambda: devices.PCM.from_card(), 86400.0),
    ],
)
def test_tabulated_cells_match_the_devices_own_programming(make, t_s, getkey):
    # 20,000 cells with targets uniform over the window, programmed by the
    # device itself (OneShot) and read at t_s, vs the same targets drawn from
    # the table: in each quarter of the window the mean error (g - target) and
    # the rms error agree. Tolerance: 3 standard errors of each bin's mean
    # (5,000 cells) plus 2 % of the rms for the table's own sampling (65 x 512
    # cells) and its degree-6 fit.
    from xbar.mapping.programming import OneShot
    from xbar.training.tabulated import TabulatedCells

    dev = make()
    n = 20_000
    span = float(dev.g_max - dev.g_min)
    t = dev.g_min + span * jax.random.uniform(getkey(), (n,))
    exact, _ = dev.read_stats(OneShot().program_cells(dev, t, key=getkey()), t_s)
    table = TabulatedCells().table(dev, OneShot(), t_s, key=getkey())
    drawn = table.draw(t, getkey())[0].g
    bins = np.minimum(((np.asarray(t) - float(dev.g_min)) / span * 4).astype(int), 3)
    for b in range(4):
        e = np.asarray(exact - t)[bins == b]
        d = np.asarray(drawn - t)[bins == b]
        rms = np.sqrt(np.mean(e**2))
        se = np.std(e) / np.sqrt(e.size)
        assert abs(d.mean() - e.mean()) <= 3 * se + 0.005 * span, (b, d.mean())
        assert abs(np.sqrt(np.mean(d**2)) - rms) <= 0.05 * rms, (b, d.std(), e.std())


def test_hwa_bad_cells_option_names_the_field(getkey):
    from xbar.training.tabulated import TabulatedCells

    x, y, params = _task(getkey)
    with pytest.raises(ValueError, match="cells"):
        train_hwa(params, devices.Ideal(), x, y, optimizer=optax.sgd(0.1), epochs=1,
                  batch_size=32, key=getkey(), cells="fresh")
    with pytest.raises(ValueError, match="levels"):
        TabulatedCells(levels=1)
