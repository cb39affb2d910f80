"""On-chip training through device pulses, against closed forms and statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import devices
import xbar
from xbar.training.onchip import (
    AnalogSGD,
    MixedPrecision,
    TikiTaka,
    train_onchip,
)
from xbar.training.pulses import NeuroSimPulses, StochasticPulses


def _ideal_config(rows, cols):
    return xbar.AnalogConfig(
        devices.Ideal(),
        mapping=xbar.Mapping(tile_rows=rows, tile_cols=cols, cells=xbar.BalancedPair()),
        dac=xbar.DAC(bits=None),
    )


def _classes(getkey, n=32, d=6, k=3):
    x = jax.random.normal(getkey(), (n, d))
    y = jnp.argmax(x @ jax.random.normal(getkey(), (d, k)), axis=1)
    return x, y, 0.3 * jax.random.normal(getkey(), (k, d))


def test_ideal_device_pulse_training_is_quantized_float_sgd(getkey):
    # Closed form: on the ideal device (linear, symmetric, noiseless, the window
    # wide enough: weight_range 4 against |W| < 1.5) each example's update is
    # exactly dw * round(-lr delta x^T / dw), dw = 4 / n_states the weight of
    # one pulse, and the forward is the float one. Replayed in float64 on the
    # same shuffle (the permutation from the first third of the epoch's key).
    x, y, w0 = _classes(getkey)
    key, lr, r = getkey(), 0.1, 4.0
    out = train_onchip(
        [(w0, jnp.zeros(3))], _ideal_config(8, 4), x, y,
        algorithm=AnalogSGD(NeuroSimPulses(max_pulses=100)),
        learning_rate=lr, epochs=1, key=key, weight_range=r,
    )
    dw = r / 1000.0
    w, b = np.asarray(w0, np.float64), np.zeros(3)
    xs, ys = np.asarray(x, np.float64), np.asarray(y)
    k_run = jax.random.split(key, 3)[2]
    k_perm = jax.random.split(jax.random.split(k_run, 1)[0], 3)[0]
    for i in np.asarray(jax.random.permutation(k_perm, len(ys))):
        z = w @ xs[i] + b
        p = np.exp(z - z.max())
        d = p / p.sum()
        d[ys[i]] -= 1.0
        w += dw * np.clip(np.round(-lr / dw * np.outer(d, xs[i])), -100, 100)
        b -= lr * d
    np.testing.assert_allclose(out.layers[0].effective_weight(), w, atol=1e-4)
    np.testing.assert_allclose(out.layers[0].bias, b, atol=1e-5)
    assert float(out.pulses[0]) > 0 and float(out.write_energy_J[0]) > 0
    # Reads priced by the energy model: a one-layer network reads its layer
    # once per example (no backward read below it), so an epoch costs the 32
    # examples times the layer's mean energy per input vector.
    from xbar.analysis.energy import layer_counts

    per_vector = layer_counts(out.layers[0], x)["energy_total_J"]
    assert per_vector > 0
    np.testing.assert_allclose(out.read_energy_J, [32 * per_vector], rtol=1e-5)


def test_stochastic_trains_count_is_binomial(getkey):
    # Each cell's count over bl slots is Binomial(bl, p_x p_d): mean bl p_x p_d
    # and variance bl q (1 - q), q = p_x p_d. 4,000 updates: the mean's
    # standard error is sqrt(var / 4000) (< 0.03 here), tolerance 5 of them;
    # the variance's relative standard error ~ sqrt(2 / 4000) = 2 %, tol 12 %.
    rule = StochasticPulses(bl=20, update_management=True)
    x = jnp.array([0.2, -0.5, 1.0])
    d = jnp.array([0.3, -0.1])
    scale = 40.0
    p_x, p_d = rule.probabilities(x, d, scale)
    # Update management: equal largest probabilities, product = scale / bl |x d|.
    np.testing.assert_allclose(jnp.max(p_x), jnp.max(p_d), rtol=1e-6)
    q = np.outer(np.asarray(p_d), np.asarray(p_x))
    np.testing.assert_allclose(q, scale / 20 * np.abs(np.outer(d, x)), rtol=1e-5)
    keys = jax.random.split(getkey(), 4000)
    n = np.asarray(jax.vmap(lambda k: rule.counts(x, d, scale, key=k))(keys))
    sign = -np.sign(np.outer(d, x))
    m = n * sign  # magnitudes
    assert np.all(m >= 0) and np.all(m <= 20)
    mean, var = 20 * q, 20 * q * (1 - q)
    assert np.all(np.abs(m.mean(0) - mean) <= 5 * np.sqrt(var / 4000))
    np.testing.assert_allclose(m.var(0), var, rtol=0.12)


def test_asymmetric_device_drifts_to_its_symmetry_point(getkey):
    # Soft-bounded steps (E-LS): one up pulse adds dx (1 - g_up (x - r)/(1 - r)),
    # one down pulse subtracts dx (1 + g_dn (x - r)/r), so under random +-1
    # pulses E[x' - r] = (1 - k)(x - r), k = dx/2 (g_up/(1 - r) + g_dn/r):
    # the mean deviation from the symmetry point r decays as (1 - k)^n.
    # 20,000 noiseless cells from x = 0.9; per-cell spread after n pulses
    # < sqrt(n) dx, so the mean's standard error < sqrt(60) 0.02 / sqrt(2e4)
    # = 1.1e-3; tolerance 5 of them (a rate 20 % off misses by ~0.03).
    dx, g_up, g_dn, r = 0.02, 0.5, 1.5, 0.3
    dev = devices.IonicSynapse(
        g_min=0.0, g_max=1.0, dx=dx, gamma_up=g_up, gamma_dn=g_dn, x_ref=r,
        sigma_c2c=0.0, sigma_d2d=0.0, sigma_gamma_d2d=0.0, sigma_read=0.0,
        sigma_prog=0.0,
    )
    st = dev.program(dev.init((20_000,), key=getkey()), 0.9, key=getkey())
    k = dx / 2 * (g_up / (1 - r) + g_dn / r)
    n = 60

    def body(s, kk):
        pm = jnp.where(jax.random.bernoulli(kk, 0.5, s.g.shape), 1.0, -1.0)
        s = dev.update(s, pm, key=kk)
        return s, jnp.mean(s.g) - r

    _, dev_mean = jax.lax.scan(body, st, jax.random.split(getkey(), n))
    expect = (0.9 - r) * (1 - k) ** np.arange(1, n + 1)
    np.testing.assert_allclose(np.asarray(dev_mean), expect, atol=5.5e-3)
    # And the symmetry-point calibration Tiki-Taka uses lands on r.
    from xbar.training.onchip import symmetry_point

    sp = symmetry_point(dev, st, 400, key=getkey())
    np.testing.assert_allclose(np.asarray(sp.g), r, atol=dx)


def test_tiki_taka_beats_analog_sgd_on_an_asymmetric_device(getkey):
    # A linear regression on a device whose symmetry point (x_ref = 0.2) is
    # not the weight zero (mid-window): plain analog SGD's updates drag every
    # weight towards the symmetry point, Tiki-Taka's fast array has its zero
    # there and the slow array only takes the transfers.
    x = jax.random.normal(getkey(), (256, 8))
    y = x @ (0.5 * jax.random.normal(getkey(), (2, 8))).T
    dev = devices.IonicSynapse(
        g_min=1e-6, g_max=1e-5, dx=0.01, gamma_up=1.0, gamma_dn=1.0, x_ref=0.2,
        sigma_c2c=0.0, sigma_d2d=0.0, sigma_gamma_d2d=0.0, sigma_read=0.0,
        sigma_prog=0.0,
    )
    cfg = xbar.AnalogConfig(
        dev,
        mapping=xbar.Mapping(tile_rows=8, tile_cols=2, cells=xbar.BalancedPair()),
        dac=xbar.DAC(bits=None),
    )
    init = [(jnp.zeros((2, 8)), jnp.zeros(2))]
    kw = dict(
        learning_rate=0.02, epochs=6, key=getkey(), x_eval=x, y_eval=y,
        weight_range=1.0,
    )
    sgd = train_onchip(
        init, cfg, x, y, algorithm=AnalogSGD(StochasticPulses(bl=10)), **kw
    )
    tt = train_onchip(
        init, cfg, x, y,
        algorithm=TikiTaka(StochasticPulses(bl=10), transfer_lr=0.1), **kw,
    )
    assert float(tt.eval_loss[-1]) < 0.7 * float(sgd.eval_loss[-1])


def test_batched_updates_equal_sequential_ones_on_a_linear_device(getkey):
    # On the ideal device (linear, no bound reached) the device state after a
    # minibatch's per-example pulse updates equals that after their summed
    # counts in one update: same weights, same accuracy (the examples' pulse
    # trains are drawn from the same keys in both modes).
    x, y, w0 = _classes(getkey, n=64)
    kw = dict(
        algorithm=AnalogSGD(StochasticPulses(bl=15)), learning_rate=0.05, epochs=2,
        key=getkey(), batch_size=8, x_eval=x, y_eval=y, weight_range=4.0,
    )
    seq = train_onchip([(w0, jnp.zeros(3))], _ideal_config(8, 4), x, y, **kw)
    bat = train_onchip(
        [(w0, jnp.zeros(3))], _ideal_config(8, 4), x, y, sequential=False, **kw
    )
    np.testing.assert_allclose(
        seq.layers[0].effective_weight(), bat.layers[0].effective_weight(), atol=1e-5
    )
    np.testing.assert_array_equal(seq.accuracy, bat.accuracy)
    # The batched update sends each cell's net count: fewer pulses.
    assert np.all(np.asarray(bat.pulses) <= np.asarray(seq.pulses))


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: StochasticPulses(bl=0), "bl"),
        (lambda: NeuroSimPulses(max_pulses=0), "max_pulses"),
        (lambda: TikiTaka(transfer_every=0), "transfer_every"),
        (lambda: TikiTaka(transfer_lr=0.0), "transfer_lr"),
        (lambda: MixedPrecision(max_pulses=-1), "max_pulses"),
        (lambda: AnalogSGD(rule="stochastic"), "rule"),
    ],
)
def test_bad_options_name_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(algorithm="sgd"), "algorithm"),
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(weight_range=0.0), "weight_range"),
    ],
)
def test_bad_training_input_names_the_field(kw, field, getkey):
    x, y, w0 = _classes(getkey)
    args = dict(algorithm=AnalogSGD(), learning_rate=0.1, epochs=1, key=getkey())
    args.update(kw)
    with pytest.raises(ValueError, match=field):
        train_onchip([(w0, None)], _ideal_config(8, 4), x, y, **args)
