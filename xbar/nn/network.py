"""Whole feed-forward networks on crossbar tiles: convolutions, then linear layers.

`AnalogNetwork.from_params` maps a list of `(weight, bias)` pairs (4-D OIHW
weights become `AnalogConv2d`, 2-D `(out, in)` weights `AnalogLinear`) with
the same mapping and periphery options for every layer; `calibrate_adcs` sets
each layer's ADC full scale on the activations that layer sees; `__call__`
runs the analog forward with ReLU between layers. `digital_forward` is the
same network in plain float32 (`lax.conv_general_dilated` and `jnp.dot`): the
reference for tests and the baseline for `benchmarks/network.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.circuits.ideal import PRECISION
from xbar.nn.conv import AnalogConv2d, _pair, calibrate_conv_adc
from xbar.nn.linear import AnalogLinear, calibrate_adc
from xbar.periphery.converters import ADC


def _check_params(params, input_shape) -> tuple[int, ...]:
    input_shape = tuple(int(s) for s in input_shape)
    if not params:
        raise ValueError("params must hold at least one (weight, bias) pair; got none")
    ndims = [jnp.ndim(w) for w, _ in params]
    if any(d not in (2, 4) for d in ndims):
        raise ValueError(
            f"every weight must be 2-D (out, in) or 4-D (out, in, kh, kw); got ndims {ndims}"
        )
    if ndims != sorted(ndims, reverse=True):
        raise ValueError(
            "convolution layers (4-D weights) must come before the linear layers; "
            f"got weight ndims {ndims}"
        )
    if ndims[0] == 4 and len(input_shape) != 3:
        raise ValueError(
            "input_shape must be (channels, height, width) for a network that starts "
            f"with a convolution; got input_shape={input_shape}"
        )
    return input_shape


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
    shape = input_shape
    for i, (w, _) in enumerate(params):
        w_shape = tuple(jnp.shape(w))
        if len(w_shape) == 4:
            c, h, wd = shape
            (sh, sw), p = _pair(strides[i], "stride"), paddings[i]
            ph, pw = (p, p) if isinstance(p, int) else tuple(p)
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


def _layout(params, input_shape, strides, paddings):
    """Checked `(input_shape, strides, paddings)`, one stride/padding per conv."""
    input_shape = _check_params(params, input_shape)
    n_conv = sum(jnp.ndim(w) == 4 for w, _ in params)
    strides = _per_conv(n_conv, strides, "strides")
    paddings = _per_conv(n_conv, paddings, "paddings")
    _check_shapes(params, input_shape, strides, paddings)
    return input_shape, strides, paddings


class AnalogNetwork(eqx.Module):
    """Convolution layers then linear layers on tiles, ReLU between layers.

    Attributes:
        layers: the analog layers in order.
        input_shape: shape of one input example, e.g. `(1, 28, 28)` for a
            network that starts with a convolution or `(784,)`; inputs may
            also come flattened, `(*batch, prod(input_shape))`.
    """

    layers: tuple[AnalogLinear | AnalogConv2d, ...]
    input_shape: tuple[int, ...] = eqx.field(static=True)

    @classmethod
    def from_params(
        cls,
        params: Sequence[tuple[Array, Array | None]],
        device: AbstractDevice,
        *,
        key: PRNGKeyArray,
        input_shape: Sequence[int],
        adcs: Sequence[ADC | None] | None = None,
        strides=1,
        paddings=0,
        **kwargs,
    ) -> AnalogNetwork:
        """Map every layer of `params` onto its own tiles and program it.

        Args:
            params: `(weight, bias)` per layer; OIHW weights are convolutions,
                `(out, in)` weights linear layers (as `eqx.nn.Linear`).
            device: the cell model of every tile.
            key: PRNG key (split per layer: device-to-device draws, programming).
            input_shape: one example's shape, `(C, H, W)` when the first layer
                is a convolution.
            adcs: one ADC per layer (None entries or None: ideal converters).
            strides, paddings: one value (int or pair) for every convolution,
                or a list with one per convolution layer.
            **kwargs: mapping and periphery options for every layer
                (`AnalogLinear.from_weights`: tile size, DAC, bit slices,
                weight bits, scheme, scaling, circuit, ...).
        """
        input_shape, strides, paddings = _layout(params, input_shape, strides, paddings)
        if adcs is not None and len(adcs) != len(params):
            raise ValueError(
                f"adcs must have one ADC per layer ({len(params)}); got {len(adcs)}"
            )
        keys = jax.random.split(key, len(params))
        layers = []
        for i, ((w, b), k) in enumerate(zip(params, keys)):
            adc = None if adcs is None else adcs[i]
            if jnp.ndim(w) == 4:
                layers.append(
                    AnalogConv2d.from_weights(
                        w,
                        b,
                        device,
                        key=k,
                        stride=strides[i],
                        padding=paddings[i],
                        adc=adc,
                        **kwargs,
                    )
                )
            else:
                layers.append(
                    AnalogLinear.from_weights(w, b, device, key=k, adc=adc, **kwargs)
                )
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

    def _run(self, x, keys, fn):
        x, batch = self._prepare(x)
        for i, (layer, k) in enumerate(zip(self.layers, keys)):
            if isinstance(layer, AnalogLinear):
                x = x.reshape(batch + (-1,))
            x = fn(i, layer, x, k)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return x

    def __call__(
        self, x: Float[Array, ...], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*batch out"]:
        """The network's output (logits); `key=None` reads without noise."""
        keys = (
            [None] * len(self.layers)
            if key is None
            else list(jax.random.split(key, len(self.layers)))
        )
        return self._run(x, keys, lambda i, layer, x, k: layer(x, key=k))

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
        new = []

        def one(i, layer, x, _):
            if isinstance(layer, AnalogConv2d):
                new.append(
                    calibrate_conv_adc(
                        layer,
                        x,
                        bits=bits,
                        percentile=percentile,
                        per_column=per_column,
                    )
                )
            else:
                new.append(
                    calibrate_adc(
                        layer,
                        x,
                        bits=bits,
                        percentile=percentile,
                        per_column=per_column,
                    )
                )
            return _noise_free(layer, x)

        self._run(x, [None] * len(self.layers), one)
        return AnalogNetwork(tuple(new), self.input_shape)

    @property
    def linear_layers(self) -> tuple[AnalogLinear, ...]:
        """The `AnalogLinear` of every layer (a convolution's kernel layer)."""
        return tuple(
            lay.linear if isinstance(lay, AnalogConv2d) else lay for lay in self.layers
        )

    def with_adcs(self, adcs: Sequence[ADC]) -> AnalogNetwork:
        """The same programmed network with one new ADC per layer (for sweeps)."""
        if len(adcs) != len(self.layers):
            raise ValueError(
                f"adcs must have one ADC per layer ({len(self.layers)}); got {len(adcs)}"
            )
        new = []
        for lay, adc in zip(self.layers, adcs):
            if isinstance(lay, AnalogConv2d):
                new.append(eqx.tree_at(lambda c: c.linear.adc, lay, adc))
            else:
                new.append(eqx.tree_at(lambda m: m.adc, lay, adc))
        return AnalogNetwork(tuple(new), self.input_shape)


@eqx.filter_jit
def _noise_free(layer, x):
    return layer(x, key=None)


def digital_forward(
    params: Sequence[tuple[Array, Array | None]],
    x: Float[Array, ...],
    *,
    input_shape: Sequence[int],
    strides=1,
    paddings=0,
) -> Float[Array, "batch out"]:
    """The same network in plain float32 (full-precision products on every
    backend, as the analog layers): the reference for the analog one."""
    input_shape, strides, paddings = _layout(params, input_shape, strides, paddings)
    n = x.shape[0]
    x = x.reshape((n,) + input_shape)
    for i, (w, b) in enumerate(params):
        if w.ndim == 4:
            p = paddings[i]
            ph, pw = (p, p) if isinstance(p, int) else tuple(p)
            x = jax.lax.conv_general_dilated(
                x,
                w,
                _pair(strides[i], "stride"),
                ((ph, ph), (pw, pw)),
                dimension_numbers=("NCHW", "OIHW", "NCHW"),
                precision=PRECISION,
            )
            if b is not None:
                x = x + b[None, :, None, None]
        else:
            x = jnp.dot(x.reshape(n, -1), w.T, precision=PRECISION)
            if b is not None:
                x = x + b[None]
        if i < len(params) - 1:
            x = jax.nn.relu(x)
    return x
