"""xbar.convert: any equinox model onto tiles, its own code unchanged.

Oracle: the float model itself. On ideal cells with unquantized DAC and ADC
the analog layers compute `G+ - G- = k W` products in float32, so outputs
agree to float32 rounding of sums over the layers' fan-in (tolerance below:
1e-4 of the output scale, ~100 eps32 x fan-in/10 for fan-ins <= 64).
"""

import equinox as eqx
import jax
import numpy as np
import pytest

import devices
import xbar

EXACT = xbar.AnalogConfig(
    devices.Ideal(),
    mapping=xbar.Mapping(tile_rows=16, tile_cols=8),
    dac=xbar.DAC(bits=None),
)


class ResBlock(eqx.Module):
    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = eqx.nn.Conv2d(3, 3, 3, padding=1, key=k1)
        self.conv2 = eqx.nn.Conv2d(3, 3, 3, padding=1, key=k2)
        self.head = eqx.nn.Linear(3 * 6 * 6, 4, key=k3)

    def __call__(self, x):
        h = jax.nn.relu(self.conv1(x))
        h = x + self.conv2(h)  # the residual connection: plain model code
        return self.head(h.reshape(-1))


class TransformerBlock(eqx.Module):
    attn: eqx.nn.MultiheadAttention
    mlp1: eqx.nn.Linear
    mlp2: eqx.nn.Linear
    norm: eqx.nn.LayerNorm

    def __init__(self, key, d=16):
        k1, k2, k3 = jax.random.split(key, 3)
        self.attn = eqx.nn.MultiheadAttention(num_heads=2, query_size=d, key=k1)
        self.mlp1 = eqx.nn.Linear(d, 2 * d, key=k2)
        self.mlp2 = eqx.nn.Linear(2 * d, d, key=k3)
        self.norm = eqx.nn.LayerNorm(d)

    def __call__(self, x):  # x: (tokens, d)
        x = x + self.attn(x, x, x)
        h = jax.vmap(self.norm)(x)
        return x + jax.vmap(lambda t: self.mlp2(jax.nn.gelu(self.mlp1(t))))(h)


def _close(y, ref):
    ref = np.asarray(ref, np.float64)
    np.testing.assert_allclose(
        np.asarray(y, np.float64), ref, rtol=0, atol=1e-4 * np.abs(ref).max()
    )


def test_residual_cnn_block_matches_float(getkey):
    model = ResBlock(getkey())
    analog = xbar.convert(model, EXACT, key=getkey())
    assert [type(a).__name__ for _, a in xbar.nn.analog_layers(analog)] == [
        "AnalogConv2d",
        "AnalogConv2d",
        "AnalogLinear",
    ]
    x = jax.random.normal(getkey(), (3, 6, 6))
    _close(analog(x), model(x))
    # The model's code batches with vmap as before.
    xs = jax.random.normal(getkey(), (5, 3, 6, 6))
    _close(jax.vmap(analog)(xs), jax.vmap(model)(xs))


def test_transformer_block_matches_float(getkey):
    model = TransformerBlock(getkey())
    analog = xbar.convert(model, EXACT, key=getkey())
    # Four attention projections and the two MLP layers are analog.
    assert len(xbar.nn.analog_layers(analog)) == 6
    x = jax.random.normal(getkey(), (7, 16))
    _close(eqx.filter_jit(lambda m, x: m(x))(analog, x), model(x))


def test_per_layer_config_by_path(getkey):
    model = TransformerBlock(getkey())
    rram = xbar.AnalogConfig(devices.RRAM.from_card(), mapping=EXACT.mapping)

    def choose(path, layer):
        if ".attn." in path:
            return None  # attention stays digital
        return rram if path.endswith("mlp2") else EXACT

    analog = xbar.convert(model, choose, key=getkey())
    paths = [p for p, _ in xbar.nn.analog_layers(analog)]
    assert paths == [".mlp1", ".mlp2"]
    assert isinstance(analog.attn.query_proj, eqx.nn.Linear)
    assert isinstance(analog.mlp2.crossbar.device, devices.RRAM)
    assert isinstance(analog.mlp1.crossbar.device, devices.Ideal)


def test_unsupported_layers_are_refused(getkey):
    conv1d = eqx.nn.Conv1d(2, 2, 3, key=getkey())
    with pytest.raises(ValueError, match="2-D convolutions"):
        xbar.convert(conv1d, EXACT, key=getkey())
    dilated = eqx.nn.Conv2d(2, 2, 3, dilation=2, key=getkey())
    with pytest.raises(ValueError, match="dilation"):
        xbar.convert(dilated, EXACT, key=getkey())
