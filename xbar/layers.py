"""Analog layers usable inside equinox models."""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, as_param, check_range

from .array import Crossbar, step
from .mapping import from_tiles, map_matrix
from .periphery import ADC, DAC
from .solve import AbstractCircuit


class AnalogLinear(eqx.Module):
    """`y = W x + b` computed on crossbar tiles with DAC, ADC and digital accumulation.

    Per input vector: the input is scaled into [-1, 1] (by its own max |x|,
    aihwkit's "abs_max" noise management, or by a fixed `x_max`), padded to
    whole tiles, driven through the DAC onto the rows; every tile's column
    currents go through its own ADC; the digital side rescales the partial sums
    to weight units and adds them over the tiles of a column, then adds the
    (digital) bias. Takes one example or a batch (leading axes).

    Build it with `AnalogLinear.from_weights`.
    """

    crossbar: Crossbar
    dac: DAC
    adc: ADC
    g_per_w: Float[Array, ""]  # siemens per unit weight
    bias: Float[Array, " out"] | None
    x_max: Float[Array, ""]  # input full scale when input_scaling == "fixed"
    t_read_s: Float[Array, ""]  # seconds since programming at read
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    input_scaling: Literal["abs_max", "fixed"] = eqx.field(static=True)

    def __check_init__(self):
        check_range("t_read_s", self.t_read_s, 0.0, unit="s")
        check_range("x_max", self.x_max, 0.0, lo_open=True)
        if self.input_scaling not in ("abs_max", "fixed"):
            raise ValueError(
                "input_scaling must be 'abs_max' or 'fixed'; got "
                f"input_scaling={self.input_scaling!r}"
            )

    @classmethod
    def from_weights(
        cls,
        weight: Float[Array, "out in"],
        bias: Float[Array, " out"] | None,
        device: AbstractDevice,
        *,
        key: PRNGKeyArray,
        tile_rows: int = 256,
        tile_cols: int = 256,
        dac: DAC | None = None,
        adc: ADC | None = None,
        t_read_s: float = 1.0,
        input_scaling: Literal["abs_max", "fixed"] = "abs_max",
        x_max: float = 1.0,
        clip_percentile: float | None = None,
        circuit: AbstractCircuit | None = None,
    ) -> AnalogLinear:
        """Map `weight` (shape `(out, in)`, as `eqx.nn.Linear`) onto tiles and program it.

        Args:
            weight, bias: the digital layer.
            device: cell model; its conductance range holds `max |W|` (or the
                `clip_percentile` of |W|, beyond which weights clip).
            key: PRNG key for device-to-device draws and programming noise.
            tile_rows, tile_cols: tile size (cells), >= 1.
            dac: row drivers (default `DAC()`: 8 bits, 0.2 V).
            adc: column converters (default ideal: no clipping, no quantization).
            t_read_s: time since programming at which the layer is read (s).
            input_scaling: "abs_max" (per input vector) or "fixed" (`x_max`).
            x_max: full-scale input for "fixed" scaling.
            clip_percentile: map this percentile of |W| to the full range and
                clip beyond it (default: max |W|, no clipping).
            circuit: the tiles' circuit model (default `IdealCircuit()`).
        """
        weight = jnp.asarray(weight, jnp.float32)
        if weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (out, in); got shape {weight.shape}")
        if bias is not None:
            bias = jnp.asarray(bias, jnp.float32)
            if bias.shape != (weight.shape[0],):
                raise ValueError(
                    f"bias must have shape ({weight.shape[0]},) to match weight "
                    f"{weight.shape}; got {bias.shape}"
                )
        crossbar, k = map_matrix(
            weight.T,
            device,
            key=key,
            tile_rows=tile_rows,
            tile_cols=tile_cols,
            clip_percentile=clip_percentile,
            circuit=circuit,
        )
        return cls(
            crossbar=crossbar,
            dac=DAC() if dac is None else dac,
            adc=ADC(bits=None, i_max=None) if adc is None else adc,
            g_per_w=k,
            bias=bias,
            x_max=as_param(x_max),
            t_read_s=as_param(t_read_s),
            in_features=int(weight.shape[1]),
            out_features=int(weight.shape[0]),
            input_scaling=input_scaling,
        )

    @property
    def grid(self) -> tuple[int, int]:
        return self.crossbar.grid

    def _inputs(self, x: Float[Array, "*batch in"]):
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"input must have shape (..., {self.in_features}) (in_features="
                f"{self.in_features}); got {x.shape}"
            )
        if self.input_scaling == "abs_max":
            s = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
            s = jnp.where(s > 0, s, 1.0)
        else:
            s = jnp.broadcast_to(self.x_max, x.shape[:-1] + (1,))
        tr, _ = self.grid
        rows = self.crossbar.tile_shape[0]
        pad = [(0, 0)] * (x.ndim - 1) + [(0, tr * rows - self.in_features)]
        u = jnp.pad(x / s, pad).reshape(x.shape[:-1] + (tr, rows))
        return u, s

    def tile_currents(
        self, x: Float[Array, "*batch in"], *, key: PRNGKeyArray | None
    ) -> Float[Array, "*batch tiles_r tiles_c cols"]:
        """Per-tile column currents before the ADC (A)."""
        u, _ = self._inputs(x)
        return step(self.crossbar, self.dac, u, self.t_read_s, key=key)

    def __call__(
        self, x: Float[Array, "*batch in"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*batch out"]:
        """The layer's output; `key=None` reads without noise.

        `x` is one input vector or a batch of them (leading axes); one key
        draws independent read noise for every example, which is faster than
        vmapping over split keys and has the same distribution.
        """
        u, s = self._inputs(x)
        i = step(self.crossbar, self.dac, u, self.t_read_s, key=key)
        scale = s / (self.dac.v_read * self.g_per_w)  # (*batch, 1)
        partial = self.adc(i) * scale[..., None, None]
        y = jnp.sum(partial, axis=-3).reshape(x.shape[:-1] + (-1,))
        y = y[..., : self.out_features]
        return y if self.bias is None else y + jnp.broadcast_to(self.bias, y.shape)

    def effective_weight(self) -> Float[Array, "out in"]:
        """Noise-free programmed weights `(G+ - G-) / k` (read at `t_read_s`)."""
        dev = self.crossbar.device
        g_p, _ = dev.read_stats(self.crossbar.pos, self.t_read_s)
        g_n, _ = dev.read_stats(self.crossbar.neg, self.t_read_s)
        w = from_tiles(g_p - g_n, self.in_features, self.out_features) / self.g_per_w
        return w.T


def calibrate_adc(
    layer: AnalogLinear,
    x: Float[Array, "batch in"],
    *,
    bits: int | None = 8,
    percentile: float = 99.9,
) -> AnalogLinear:
    """Set the layer's ADC full scale from data.

    `i_max` becomes the given percentile of |column current| over all tiles,
    columns and the calibration inputs `x`, read without noise: what a chip
    does once at deployment with representative inputs.
    """
    check_range("percentile", percentile, 0.0, 100.0, lo_open=True)
    i = layer.tile_currents(x, key=None)
    tr, tc = layer.grid
    # Exclude padded columns of the last tile column (they always read 0).
    cols = np.arange(tc * layer.crossbar.tile_shape[1]).reshape(tc, -1)
    valid = jnp.asarray(cols < layer.out_features)
    vals = jnp.abs(i)[:, :, valid]
    i_max = float(jnp.percentile(vals, percentile))
    if not i_max > 0:
        raise ValueError("calibrate_adc: all calibration currents are zero")
    return eqx.tree_at(lambda m: m.adc, layer, ADC(bits=bits, i_max=i_max))



class AnalogMLP(eqx.Module):
    """A multilayer perceptron whose every linear layer runs on crossbar tiles.

    ReLU between layers, none after the last. One example or a batch in.
    """

    layers: tuple[AnalogLinear, ...]

    @classmethod
    def from_weights(
        cls,
        params: list[tuple[Array, Array | None]],
        device: AbstractDevice,
        *,
        key: PRNGKeyArray,
        adcs: list[ADC] | None = None,
        **kwargs,
    ) -> AnalogMLP:
        """Map every `(weight (out, in), bias)` pair of `params` onto its own tiles.

        `adcs` gives each layer its ADC (default ideal); other keywords go to
        `AnalogLinear.from_weights` for every layer.
        """
        if adcs is not None and len(adcs) != len(params):
            raise ValueError(
                f"adcs must have one ADC per layer ({len(params)}); got {len(adcs)}"
            )
        keys = jax.random.split(key, len(params))
        layers = tuple(
            AnalogLinear.from_weights(
                w, b, device, key=k, adc=None if adcs is None else adcs[i], **kwargs
            )
            for i, ((w, b), k) in enumerate(zip(params, keys))
        )
        return cls(layers)

    def __call__(self, x: Float[Array, "*batch in"], *, key: PRNGKeyArray | None = None):
        keys = [None] * len(self.layers) if key is None else jax.random.split(
            key, len(self.layers)
        )
        for i, (layer, k) in enumerate(zip(self.layers, keys)):
            x = layer(x, key=k)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return x

    def calibrate_adcs(
        self, x: Float[Array, "batch in"], *, bits: int | None = 8, percentile=99.9
    ) -> AnalogMLP:
        """Calibrate every layer's ADC full scale on the activations it sees."""
        layers = []
        for i, layer in enumerate(self.layers):
            layers.append(calibrate_adc(layer, x, bits=bits, percentile=percentile))
            x = layer(x, key=None)
            if i < len(self.layers) - 1:
                x = jax.nn.relu(x)
        return AnalogMLP(tuple(layers))
