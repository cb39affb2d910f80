"""Feed-forward networks on crossbar tiles: convolutions, then linear layers,
ReLU between.

`AnalogNetwork.from_weights` maps a list of `(weight, bias)` pairs (4-D OIHW
weights become `AnalogConv2d`, 2-D `(out, in)` weights `AnalogLinear`) with
one `AnalogConfig` for every layer or one per layer; `calibrate_adcs` sets
each layer's ADC full scale on the activations that layer sees. Any other
architecture is an equinox model passed through `xbar.convert`.
`digital_forward` is the same network in plain float32: the reference for
tests and the baseline for `benchmarks/network.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.circuits.ideal import PRECISION
from xbar.nn.calibration import calibrate_adc
from xbar.nn.config import AnalogConfig
from xbar.nn.conv import AnalogConv2d, padding_pairs, pair
from xbar.nn.layer import AbstractAnalogLayer
from xbar.nn.linear import AnalogLinear
from xbar.periphery.converters import ADC


def _check_params(params, input_shape) -> tuple[int, ...]:
    if not params:
        raise ValueError("params must hold at least one (weight, bias) pair; got none")
    ndims = [jnp.ndim(w) for w, _ in params]
    if any(d not in (2, 4) for d in ndims):
        raise ValueError(
            "every weight must be 2-D (out, in) or 4-D (out, in, kh, kw); got "
            f"ndims {ndims}"
        )
    if ndims != sorted(ndims, reverse=True):
        raise ValueError(
            "convolution layers (4-D weights) must come before the linear layers; "
            f"got weight ndims {ndims}"
        )
    if input_shape is None and ndims[0] == 2:
        input_shape = (int(jnp.shape(params[0][0])[1]),)
    if input_shape is None or (ndims[0] == 4 and len(input_shape) != 3):
        raise ValueError(
            "input_shape must be (channels, height, width) for a network that starts "
            f"with a convolution; got input_shape={input_shape}"
        )
    return tuple(int(s) for s in input_shape)


def _per_conv(n_conv: int, value, name: str) -> list:
    """A list gives one value per convolution layer; anything else is for all."""
    if isinstance(value, list):
        if len(value) != n_conv:
            raise ValueError(
                f"{name} as a list needs one entry per convolution layer ({n_conv}); "
                f"got {len(value)}"
            )
        return value
    return [value] * n_conv


def _check_shapes(params, input_shape, strides, paddings) -> None:
    """Each layer's input size must match what the previous layer produces."""
    shape: tuple[int, ...] = tuple(input_shape)
    for i, (w, _) in enumerate(params):
        w_shape = tuple(jnp.shape(w))
        if len(w_shape) == 4:
            c, h, wd = (shape + (0, 0, 0))[:3]  # a conv input is (C, H, W)
            (sh, sw), p = pair(strides[i], "stride"), paddings[i]
            (ph, _), (pw, _) = padding_pairs(p)
            kh, kw = w_shape[2:]
            ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
            if w_shape[1] != c or ho < 1 or wo < 1:
                raise ValueError(
                    f"layer {i}: a kernel {w_shape} (out, in, kh, kw) with stride "
                    f"{(sh, sw)} and padding {(ph, pw)} does not fit its input "
                    f"{shape} (channels, height, width)"
                )
            shape = (w_shape[0], ho, wo)
        else:
            n_in = math.prod(shape)
            if w_shape[1] != n_in:
                raise ValueError(
                    f"layer {i}: weight {w_shape} (out, in) needs {w_shape[1]} inputs; "
                    f"the previous layer gives {n_in} (shape {shape})"
                )
            shape = (w_shape[0],)


def _pairs(params) -> list[tuple[Array, Array | None]]:
    """`(weight, bias)` float32 pairs; a bare weight means no bias."""
    out = []
    for i, p in enumerate(params):
        if isinstance(p, tuple | list) and len(p) != 2:
            raise ValueError(f"params[{i}] must be (weight, bias) or a weight")
        w, b = p if isinstance(p, tuple | list) else (p, None)
        b = None if b is None else jnp.asarray(b, jnp.float32)
        out.append((jnp.asarray(w, jnp.float32), b))
    return out


def _layout(params, input_shape, strides, paddings):
    """Checked `(params, input_shape, strides, paddings)`: `(weight, bias)`
    pairs (a bare weight means no bias), one stride/padding per conv."""
    params = _pairs(params)
    input_shape = _check_params(params, input_shape)
    n_conv = sum(jnp.ndim(w) == 4 for w, _ in params)
    strides = _per_conv(n_conv, strides, "strides")
    paddings = _per_conv(n_conv, paddings, "paddings")
    _check_shapes(params, input_shape, strides, paddings)
    return params, input_shape, strides, paddings


def per_layer_configs(config, n_layers: int) -> list[AnalogConfig | AbstractDevice]:
    """One config for every layer, or a sequence with one per layer."""
    if isinstance(config, Sequence):
        if len(config) != n_layers:
            raise ValueError(
                f"config as a sequence needs one AnalogConfig per layer ({n_layers}); "
                f"got {len(config)}"
            )
        return list(config)
    return [config] * n_layers


class AnalogNetwork(eqx.Module):
    """Analog layers in order with ReLU between them (none after the last).

    Attributes:
        layers: the analog layers (`AnalogConv2d`s, then `AnalogLinear`s).
        input_shape: shape of one input example, e.g. `(1, 28, 28)` for a
            network that starts with a convolution or `(784,)`; inputs may
            also come flattened, `(*batch, prod(input_shape))`.
    """

    layers: tuple[AbstractAnalogLayer, ...]
    input_shape: tuple[int, ...] = eqx.field(static=True)

    @classmethod
    def from_weights(
        cls,
        params: Sequence[tuple[ArrayLike, ArrayLike | None] | ArrayLike],
        config: AnalogConfig | AbstractDevice | Sequence[AnalogConfig | AbstractDevice],
        *,
        key: PRNGKeyArray,
        input_shape: Sequence[int] | None = None,
        strides=1,
        paddings=0,
    ) -> AnalogNetwork:
        """Map every layer of `params` onto its own tiles and program it.

        Args:
            params: `(weight, bias)` per layer; OIHW weights are convolutions,
                `(out, in)` weights linear layers (as `eqx.nn.Linear`).
            config: the hardware of every layer (`AnalogConfig`, or a bare
                device), or a sequence with one per layer.
            key: PRNG key (split per layer: device-to-device draws, programming).
            input_shape: one example's shape; `(C, H, W)` is needed when the
                first layer is a convolution (default: `(in,)` of the first
                linear layer).
            strides, paddings: one value (int or pair) for every convolution,
                or a list with one per convolution layer.
        """
        pairs, input_shape, strides, paddings = _layout(
            params, input_shape, strides, paddings
        )
        configs = per_layer_configs(config, len(pairs))
        keys = jax.random.split(key, len(pairs))
        layers = []
        for i, ((w, b), c, k) in enumerate(zip(pairs, configs, keys)):
            if jnp.ndim(w) == 4:
                lay = AnalogConv2d.from_weights(
                    w, b, c, key=k, stride=strides[i], padding=paddings[i]
                )
            else:
                lay = AnalogLinear.from_weights(w, b, c, key=k)
            layers.append(lay)
        return cls(tuple(layers), input_shape)

    def _prepare(self, x):
        n_in = len(self.input_shape)
        if x.shape[-n_in:] == self.input_shape:
            return x, x.shape[:-n_in]
        if x.shape[-1] == math.prod(self.input_shape):
            batch = x.shape[:-1]
            return x.reshape(batch + self.input_shape), batch
        raise ValueError(
            f"input must have shape (..., {', '.join(map(str, self.input_shape))}) or "
            f"(..., {math.prod(self.input_shape)}) (input_shape={self.input_shape}); "
            f"got {x.shape}"
        )

    def layer_inputs(self, x: Float[Array, ...], *, key: PRNGKeyArray | None = None):
        """Run the network, yielding `(layer, its input)` for every layer (the
        input shaped as the layer takes it), then `(None, output)`."""
        x, batch = self._prepare(jnp.asarray(x))
        keys = (
            [None] * len(self.layers)
            if key is None
            else list(jax.random.split(key, len(self.layers)))
        )
        for i, (layer, k) in enumerate(zip(self.layers, keys)):
            if layer.flattens_input:
                x = x.reshape(batch + (-1,))
            yield layer, x
            x = _apply(layer, x, k)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        yield None, x

    def __call__(
        self, x: Float[Array, ...], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*batch out"]:
        """The network's output (logits); `key=None` reads without noise."""
        *_, (_, y) = self.layer_inputs(x, key=key)
        return y

    def calibrate_adcs(
        self,
        x: Float[Array, ...],
        *,
        bits: int | None = 8,
        percentile: float = 99.9,
        per_column: bool = False,
    ) -> AnalogNetwork:
        """Every layer's ADC full scale from the (noise-free) activations it sees.

        Keywords as `calibrate_adc`; a chip does this once at deployment with
        representative inputs.
        """
        layers = tuple(
            calibrate_adc(
                lay, v, bits=bits, percentile=percentile, per_column=per_column
            )
            for lay, v in self.layer_inputs(x)
            if lay is not None
        )
        return AnalogNetwork(layers, self.input_shape)

    def with_adcs(self, adcs: Sequence[ADC]) -> AnalogNetwork:
        """The same programmed network with one new ADC per layer (for sweeps)."""
        if len(adcs) != len(self.layers):
            raise ValueError(
                f"adcs must have one ADC per layer ({len(self.layers)}); got "
                f"{len(adcs)}"
            )
        layers = tuple(lay.with_adc(adc) for lay, adc in zip(self.layers, adcs))
        return AnalogNetwork(layers, self.input_shape)


@eqx.filter_jit
def _apply(layer, x, key):
    return layer(x, key=key)


def digital_forward(
    params: Sequence[tuple[ArrayLike, ArrayLike | None] | ArrayLike],
    x: Float[Array, ...],
    *,
    input_shape: Sequence[int],
    strides=1,
    paddings=0,
) -> Float[Array, "batch out"]:
    """The same network in plain float32 (full-precision products on every
    backend, as the analog layers): the reference for the analog one."""
    pairs, input_shape, strides, paddings = _layout(
        params, input_shape, strides, paddings
    )
    n = x.shape[0]
    x = x.reshape((n,) + input_shape)
    for i, (w, b) in enumerate(pairs):
        if w.ndim == 4:
            x = jax.lax.conv_general_dilated(
                x,
                w,
                pair(strides[i], "stride"),
                padding_pairs(paddings[i]),
                dimension_numbers=("NCHW", "OIHW", "NCHW"),
                precision=PRECISION,
            )
            if b is not None:
                x = x + b[None, :, None, None]
        else:
            x = jnp.dot(x.reshape(n, -1), w.T, precision=PRECISION)
            if b is not None:
                x = x + b[None]
        if i < len(pairs) - 1:
            x = jax.nn.relu(x)
    return x
