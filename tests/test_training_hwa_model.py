"""Hardware-aware training of any equinox model (`train_hwa_model`): float
training on an ideal device, `train_hwa` on an MLP written both ways, digital
layers trained as float, finite gradients on every device family,
determinism, one compilation, checked inputs."""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import HWA_BAD_OPTIONS, compile_log

import devices
import xbar
from xbar.training import train_hwa, train_hwa_model, with_read_keys
from xbar.training.tabulated import FreshCells, TabulatedCells


class CNN(eqx.Module):
    """Per example: a flat 6x6 image -> conv 3x3 (stride 2, padding 1) ->
    linear -> layer norm -> linear."""

    conv: eqx.nn.Conv2d
    fc: eqx.nn.Linear
    ln: eqx.nn.LayerNorm
    out: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv = eqx.nn.Conv2d(1, 2, 3, stride=2, padding=1, key=k1)
        self.fc = eqx.nn.Linear(2 * 3 * 3, 8, key=k2)
        self.ln = eqx.nn.LayerNorm(8)
        self.out = eqx.nn.Linear(8, 3, key=k3)

    def __call__(self, x):
        h = jax.nn.relu(self.conv(x.reshape(1, 6, 6)))
        return self.out(jax.nn.relu(self.ln(self.fc(h.reshape(-1)))))


class TwoLayer(eqx.Module):
    """The network `train_hwa` trains, as an equinox model."""

    layers: list

    def __init__(self, sizes, key):
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = [
            eqx.nn.Linear(a, b, key=k) for a, b, k in zip(sizes[:-1], sizes[1:], keys)
        ]

    def __call__(self, x):
        for lay in self.layers[:-1]:
            x = jax.nn.relu(lay(x))
        return self.layers[-1](x)

    def pairs(self):
        return [(lay.weight, lay.bias) for lay in self.layers]


def _task(getkey, n, d, k=3):
    x = jax.random.normal(getkey(), (n, d))
    y = jnp.argmax(x @ jax.random.normal(getkey(), (d, k)), axis=1)
    return x, y


def _ce(out, y):
    return optax.softmax_cross_entropy_with_integer_labels(out, y).mean()


def _float_train(
    model, x, y, *, opt, epochs, batch_size, key, loss=None,
    trainable=eqx.is_inexact_array,
):
    """Plain float training of the digital model on the minibatches
    `train_hwa_model` documents (per epoch a permutation from the first half
    of the epoch's key), the model vmapped over each minibatch."""
    loss = _ce if loss is None else loss
    params, static = eqx.partition(model, trainable)

    @jax.jit
    def step(p, s, xb, yb):
        g = jax.grad(lambda p: loss(jax.vmap(eqx.combine(p, static))(xb), yb))(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s

    n_b = len(y) // batch_size
    with jax.numpy_dtype_promotion("standard"):
        s = opt.init(params)
        for ke in jax.random.split(key, epochs):
            k_perm, _ = jax.random.split(ke)
            perm = jax.random.permutation(k_perm, len(y))[: n_b * batch_size]
            for idx in perm.reshape(n_b, -1):
                params, s = step(params, s, x[idx], y[idx])
    return eqx.combine(params, static)


def _ideal(**kw):
    return xbar.AnalogConfig(
        devices.Ideal(),
        mapping=xbar.Mapping(tile_rows=16, tile_cols=8),
        dac=xbar.DAC(bits=None),
        **kw,
    )


def _arrays(model):
    return jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))


def test_cnn_on_ideal_device_is_float_training_digital_layer_included(
    getkey, monkeypatch
):
    # A per-example CNN (eqx.nn.Conv2d on (C, H, W), a reshape, linear
    # layers, a layer norm) whose __call__ the trainer leaves as it is. An
    # ideal noiseless device with unquantized converters computes W x
    # exactly and the straight-through gradient is the float one, so HWA
    # training equals float training of the digital model with the same
    # optimizer (SGD with momentum: linear in the gradients, so float32
    # rounding errors stay of their own size; Adam would amplify them where
    # a gradient is near zero), minibatches and loss (the user's: mean
    # squared error to real-valued targets). The layer norm (a digital
    # parameter) and the last layer (left digital by the config function)
    # are trained too; the first linear layer's bias is frozen (`trainable`).
    # Tolerance: float32 rounding of the analog path (input
    # scale, conductance scale: ~1e-7 relative per product) over 4 steps on
    # weights below 1 (measured: below 1e-7). The config function builds a
    # new, equal config per layer: one cell table for both analog layers.
    x, _ = _task(getkey, 64, 36)
    y = x @ jax.random.normal(getkey(), (36, 3)) / 6.0
    model = CNN(getkey())
    opt = optax.sgd(0.05, momentum=0.9)
    key = getkey()
    tables = []
    table = TabulatedCells.table

    def counted(self, *a, **k):
        tables.append(1)
        return table(self, *a, **k)

    monkeypatch.setattr(TabulatedCells, "table", counted)

    def choose(path, layer):
        return None if path == ".out" else _ideal()

    def mse(out, t):
        return jnp.mean((out - t) ** 2)

    trainable = eqx.tree_at(
        lambda m: m.fc.bias,
        jax.tree.map(eqx.is_inexact_array, model),
        False,
    )
    out = train_hwa_model(
        model, choose, x, y, optimizer=opt, epochs=2, batch_size=32, key=key,
        loss=mse, noise_scale=0.0, cells=TabulatedCells(), trainable=trainable,
    )
    ref = _float_train(
        model, x, y, opt=opt, epochs=2, batch_size=32, key=key, loss=mse,
        trainable=trainable,
    )
    for a, r in zip(_arrays(out.model), _arrays(ref), strict=True):
        np.testing.assert_allclose(a, r, atol=1e-6)
    np.testing.assert_array_equal(out.model.fc.bias, model.fc.bias)  # frozen
    # Every other leaf trained (the layer norm's included).
    same = [np.allclose(a, m) for a, m in zip(_arrays(out.model), _arrays(model))]
    assert sum(same) == 1
    assert isinstance(out.model.conv, eqx.nn.Conv2d)  # digital in, digital out
    assert isinstance(out.model.out, eqx.nn.Linear)
    assert out.losses.shape == (2,) and out.losses[-1] < out.losses[0]
    assert len(tables) == 1


def test_quantized_converters_match_train_hwa(getkey):
    # The same 12-8-3 network as `train_hwa` params and as an equinox model,
    # on the ideal device with a 4-bit DAC and a 5-bit clipping ADC, cells
    # programmed by the device model at every step (FreshCells; no noise:
    # programming and reads are deterministic, so the two trainers' different
    # key streams do not matter): both run the same quantized forward and
    # straight-through gradient, so they train the same weights. Tolerance:
    # float32 rounding of the update (the per-example and the batched forward
    # must quantize alike: one ADC level flipped by a rounding difference
    # would move weights by ~1e-3, far beyond it).
    x, y = _task(getkey, 64, 12)
    model = TwoLayer([12, 8, 3], getkey())
    cfg = _ideal(adc=xbar.ADC(bits=5, i_max=4e-5))
    cfg = eqx.tree_at(lambda c: c.dac, cfg, xbar.DAC(bits=4))
    kw = dict(
        optimizer=optax.sgd(0.2), epochs=2, batch_size=16, key=getkey(),
        cells=FreshCells(),
    )
    ref = train_hwa(model.pairs(), cfg, x, y, noise_scale=0.0, **kw)
    out = train_hwa_model(model, cfg, x, y, noise_scale=0.0, **kw)
    for (w, b), lay in zip(ref.params, out.model.layers):
        np.testing.assert_allclose(lay.weight, w, atol=1e-5)
        np.testing.assert_allclose(lay.bias, b, atol=1e-5)
    np.testing.assert_allclose(out.losses, ref.losses, rtol=1e-5)
    # The converters matter: the quantized loss differs from the float one.
    float_loss = _ce(jax.vmap(model)(x), y)
    assert abs(float(out.losses[0]) - float(float_loss)) > 1e-3


def test_every_device_family_trains_finite_deterministic_in_one_compilation(
    getkey, caplog
):
    # RRAM, PCM (read a day after programming: drift), ionic and perovskite
    # cards, one per layer of a 5-layer model (a config function; the last
    # layer stays digital), an 8-bit DAC and straight-through gradients
    # through each card's programming: every parameter stays finite and
    # moves, the loss falls, the analog layers' weights are clipped at 1.5
    # std and the digital layer's are not, one compilation (none for a
    # second call with an equal setup), and the same key gives the same
    # model bit for bit.
    x, y = _task(getkey, 64, 12)
    model = TwoLayer([12, 8, 8, 8, 8, 3], getkey())
    cards = [
        devices.RRAM.from_card(),
        devices.PCM.from_card(),
        devices.IonicSynapse.from_card(),
        devices.Perovskite.from_card(),
    ]

    def choose(path, layer):
        i = int(path.split("[")[1].rstrip("]"))
        if i == len(cards):
            return None
        return xbar.AnalogConfig(
            cards[i], mapping=xbar.Mapping(tile_rows=16, tile_cols=8)
        )

    kw = dict(
        optimizer=optax.adam(0.02), epochs=3, batch_size=16, key=getkey(),
        t_inference_s=86400.0, clip_sigma=1.5,
    )
    with compile_log() as records:
        out = train_hwa_model(model, choose, x, y, **kw)
        jax.block_until_ready(out)
    n_first = len([r for r in records if r.startswith("Compiling")])
    with compile_log() as again_records:
        # An equal setup (same optimizer object): the compiled run again.
        again = train_hwa_model(model, choose, x, y, **kw)
        jax.block_until_ready(again)
    records += again_records
    compiles = [r for r in records if r.startswith("Compiling")]
    assert n_first == 1 and len(compiles) == 1, compiles
    for a, b, m in zip(_arrays(out.model), _arrays(again.model), _arrays(model)):
        assert np.all(np.isfinite(a))
        assert not np.allclose(a, m)
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(out.losses, again.losses)
    assert np.all(np.isfinite(out.losses)) and out.losses[-1] < out.losses[0]
    for lay in out.model.layers[:-1]:
        assert np.max(np.abs(lay.weight)) <= 1.5 * np.std(lay.weight) * 1.1
    # The digital layer was not clipped: a uniform initialisation reaches
    # sqrt(3) = 1.73 std.
    last = out.model.layers[-1].weight
    assert np.max(np.abs(last)) > 1.6 * np.std(last)


def test_read_keys_give_noise_only_where_set_one_draw_per_example(getkey):
    # A converted model reads noise-free without a key (as before), with read
    # noise once `with_read_keys` set keys, and noise-free again after
    # clearing. The trainer's per-example keys (vmap) draw the noise a
    # batched call with one key draws (independent per example): 400 reads
    # of one input, mean within 5 standard errors, std ratio within
    # [0.8, 1.25] (the std's relative standard error is 1/sqrt(2 * 399) =
    # 3.5 %, so about 6 of them).
    model = TwoLayer([6, 2], getkey())
    analog = xbar.convert(model, devices.RRAM.from_card(), key=getkey())
    x = jax.random.normal(getkey(), (6,))
    clean = analog(x)
    np.testing.assert_array_equal(analog(x), clean)
    noisy = with_read_keys(analog, getkey())
    assert not np.allclose(noisy(x), clean)
    np.testing.assert_array_equal(noisy(x), noisy(x))  # the key is fixed
    np.testing.assert_array_equal(with_read_keys(noisy, None)(x), clean)
    n = 400
    xs = jnp.broadcast_to(x, (n, 6))
    keys = jax.random.split(getkey(), n)
    per_example = jax.vmap(lambda xi, ki: with_read_keys(analog, ki)(xi))(xs, keys)
    batched = noisy(xs)
    for a, b in ((per_example, batched), (batched, per_example)):
        sd = np.std(np.asarray(b), axis=0)
        assert np.all(sd > 0)
        se = sd * np.sqrt(2.0 / n)
        assert np.all(np.abs(np.mean(a, 0) - np.mean(b, 0)) <= 5 * se)
        assert np.all((0.8 <= np.std(a, 0) / sd) & (np.std(a, 0) / sd <= 1.25))


class NoLayers(eqx.Module):
    w: jax.Array

    def __call__(self, x):
        return self.w * x


@pytest.mark.parametrize(
    "kw, field",
    HWA_BAD_OPTIONS + [
        (dict(cells="tabulated"), "cells"),
        (dict(loss="mse"), "loss"),
        (dict(loss=lambda out, y: out), "loss"),  # not a scalar
        (dict(model=NoLayers(jnp.ones(3))), "model"),
        (dict(config=lambda path, layer: None), "config"),
        (dict(config="RRAM"), "config"),
        (dict(y=jnp.zeros(64)), "y"),
        (dict(trainable=lambda leaf: False), "trainable"),
    ],
)
def test_bad_input_names_the_field(kw, field, getkey):
    x, y = _task(getkey, 64, 12)
    args = dict(
        model=TwoLayer([12, 3], getkey()), config=devices.Ideal(), x=x, y=y,
        optimizer=optax.sgd(0.1), epochs=1, batch_size=16, key=getkey(),
    )
    args.update(kw)
    with pytest.raises(ValueError, match=field):
        train_hwa_model(**args)
