"""Analog layers usable inside equinox models."""

from __future__ import annotations

import functools
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, as_param, check_range
from xbar.array.crossbar import Crossbar, step
from xbar.circuits.ideal import PRECISION, AbstractCircuit, IdealCircuit
from xbar.mapping.tiling import (
    from_tiles,
    map_matrix,
    program_targets,
    slice_layout,
    sliced_targets,
)
from xbar.periphery.converters import ADC, DAC


def _slice_tiles(xb: Crossbar, index) -> Crossbar:
    """The crossbar with `index` applied to every per-cell state leaf, shaped
    `(tiles_r, tiles_c, rows, cols)` (device parameters are left as they are)."""
    shape = xb.grid + xb.tile_shape

    def cut(a):
        if eqx.is_array(a) and a.ndim == 4 and a.shape == shape:
            return a[index]
        return a

    return Crossbar(xb.device, jax.tree.map(cut, xb.pos), jax.tree.map(cut, xb.neg), xb.circuit)


class AnalogLinear(eqx.Module):
    """`y = W x + b` computed on crossbar tiles with DAC, ADC and digital accumulation.

    Per input vector: the input is scaled into [-1, 1] (by its own max |x|,
    aihwkit's "abs_max" noise management, or by a fixed `x_max`), padded to
    whole tiles, driven through the DAC onto the rows; every tile's column
    currents go through its own ADC; the digital side rescales the partial sums
    to weight units and adds them over the tiles of a column, then adds the
    (digital) bias. Takes one example or a batch (leading axes).

    Options beyond the default differential analog mapping (see
    `from_weights`): bit slicing (`n_slices` cells of `ceil(weight_bits /
    n_slices)` bits per weight, digital shift-add of their ADC outputs), a
    single device per weight with a shared reference column
    (`scheme="reference"`), per-column or per-tile weight scaling, bit-serial
    or pulse-width input encoding (`DAC.encoding`), and bound management
    (`bound_management` re-reads of examples whose ADC clipped, each with half
    the input scale, as aihwkit's iterative bound management).

    Build it with `AnalogLinear.from_weights`.
    """

    crossbar: Crossbar
    dac: DAC
    adc: ADC
    g_per_w: Float[Array, ...]  # siemens per unit weight: scalar, or (tr, tc, groups)
    bias: Float[Array, " out"] | None
    x_max: Float[Array, ""]  # input full scale when input_scaling == "fixed"
    t_read_s: Float[Array, ""]  # seconds since programming at read
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    input_scaling: Literal["abs_max", "fixed"] = eqx.field(static=True)
    n_slices: int = eqx.field(static=True, default=1)
    weight_bits: int | None = eqx.field(static=True, default=None)
    scheme: Literal["differential", "reference"] = eqx.field(
        static=True, default="differential"
    )
    bound_management: int = eqx.field(static=True, default=0)

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
        n_slices: int = 1,
        weight_bits: int | None = None,
        scheme: Literal["differential", "reference"] = "differential",
        scaling: Literal["tensor", "column", "tile"] = "tensor",
        bound_management: int = 0,
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
            n_slices: cells per weight (bit slices), in [1, weight_bits].
            weight_bits: magnitude bits of the quantized weight, or None for
                analog weights (then n_slices must be 1).
            scheme: "differential" (G+ and G- per cell) or "reference" (one
                device per weight, offset by a shared reference column per tile,
                whose current is subtracted before the ADC).
            scaling: "tensor", "column" or "tile": which weights share one
                `w_max` (the digital side undoes each scale).
            bound_management: maximum re-reads with halved input scale for
                examples whose ADC inputs clipped (0: off).
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
        if not isinstance(bound_management, int) or bound_management < 0:
            raise ValueError(
                "bound_management must be an integer >= 0; got "
                f"bound_management={bound_management!r}"
            )
        default = (n_slices, weight_bits, scheme, scaling) == (
            1,
            None,
            "differential",
            "tensor",
        )
        if default:
            crossbar, k = map_matrix(
                weight.T,
                device,
                key=key,
                tile_rows=tile_rows,
                tile_cols=tile_cols,
                clip_percentile=clip_percentile,
                circuit=circuit,
            )
        else:
            g_pos, g_neg, k = sliced_targets(
                weight.T,
                device,
                tile_rows=tile_rows,
                tile_cols=tile_cols,
                n_slices=n_slices,
                weight_bits=weight_bits,
                scheme=scheme,
                scaling=scaling,
                clip_percentile=clip_percentile,
            )
            crossbar = program_targets(device, g_pos, g_neg, key=key, circuit=circuit)
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
            n_slices=n_slices,
            weight_bits=weight_bits,
            scheme=scheme,
            bound_management=bound_management,
        )

    @property
    def grid(self) -> tuple[int, int]:
        return self.crossbar.grid

    @property
    def is_default(self) -> bool:
        """The original path: analog differential, tensor scale, amplitude-like
        DAC, no bound management (kept bit-for-bit)."""
        return (
            self.n_slices == 1
            and self.weight_bits is None
            and self.scheme == "differential"
            and self.g_per_w.ndim == 0
            and self.dac.encoding != "bit_serial"
            and self.bound_management == 0
        )

    @property
    def _slice_layout(self) -> tuple[int, int]:
        """`(bits per slice, bit-slice groups per tile)` of this mapping."""
        return slice_layout(
            self.crossbar.tile_shape[1],
            n_slices=self.n_slices,
            weight_bits=self.weight_bits,
            scheme=self.scheme,
        )

    @property
    def groups_per_tile(self) -> int:
        """Logical output columns per tile (bit-slice groups)."""
        return self._slice_layout[1]

    @property
    def bits_per_slice(self) -> int:
        return self._slice_layout[0]

    def slice_weights(self) -> Float[Array, " slices"]:
        """Shift-add weights `2^(b s)` of the slices (1 for analog weights)."""
        s = jnp.arange(self.n_slices, dtype=jnp.float32)
        return 2.0 ** (self.bits_per_slice * s)

    def _select(self, i: Float[Array, "*batch tr tc cols"]):
        """What the ADCs see: the used columns, minus the reference column."""
        if self.is_default:
            return i
        used = self.groups_per_tile * self.n_slices
        out = i[..., :used]
        if self.scheme == "reference":
            out = out - i[..., -1:]
        return out

    def _trimmed(self, u):
        """Skip simulating cells that cannot contribute (ideal circuit only):
        the zero-input padding rows of a single row tile, and the columns past
        the last bit-slice group (differential scheme). Same currents, fewer
        flops: a 9-input conv kernel on a 256 x 256 tile computes 9 rows."""
        xb = self.crossbar
        if not isinstance(xb.circuit, IdealCircuit) or self.scheme != "differential":
            return xb, u
        tr, tc = xb.grid
        rows, cols = xb.tile_shape
        r = self.in_features if tr == 1 else rows
        c = self.groups_per_tile * self.n_slices
        if tc == 1:
            c = min(c, self.out_features * self.n_slices)
        if (r, c) == (rows, cols):
            return xb, u
        return _slice_tiles(xb, np.s_[:, :, :r, :c]), u[..., :r]

    def _read(self, dac: DAC, u, key):
        """`step` on the layer's tiles, skipping cells that cannot contribute
        (ideal circuit only, see `_trimmed`): the last row of tiles is read
        with only its `in_features - (tiles_r - 1) rows` used rows, so a
        784-input layer on 256-row tiles computes 784 rows, not 1,024. Same
        currents and noise distribution (the two parts draw independent noise).
        """
        xb, u = self._trimmed(u)
        tr = xb.grid[0]
        rows = xb.tile_shape[0]
        r_last = self.in_features - (tr - 1) * rows
        if not isinstance(xb.circuit, IdealCircuit) or tr == 1 or r_last == rows:
            return step(xb, dac, u, self.t_read_s, key=key)
        part = functools.partial(_slice_tiles, xb)
        k_head, k_tail = (None, None) if key is None else jax.random.split(key)
        head = step(
            part(np.s_[: tr - 1]), dac, u[..., : tr - 1, :], self.t_read_s, key=k_head
        )
        tail = step(
            part(np.s_[tr - 1 :, :, :r_last]),
            dac,
            u[..., tr - 1 :, :r_last],
            self.t_read_s,
            key=k_tail,
        )
        return jnp.concatenate([head, tail], axis=-3)

    def _pad_cols(self, i):
        used = self.groups_per_tile * self.n_slices
        if self.scheme != "differential" or i.shape[-1] >= used:
            return i
        pad = [(0, 0)] * (i.ndim - 1) + [(0, used - i.shape[-1])]
        return jnp.pad(i, pad)

    def _analog(self, u, key, *, pad: bool = True):
        """ADC inputs for normalized inputs `u`: `(*batch, tr, tc, cols)`, or
        `(cycles, *batch, tr, tc, cols)` for a bit-serial DAC. `pad=False`
        leaves out the trailing columns that `_trimmed` skipped (they carry
        no output), which the forward pass never converts."""
        if self.dac.encoding == "bit_serial":
            planes = self.dac.bit_planes(u)
            drive = DAC(bits=None, v_read=self.dac.v_read)
            i = self._read(drive, planes, key)
        else:
            i = self._read(self.dac, u, key)
        return self._select(self._pad_cols(i) if pad else i)

    def _adc_for(self, n_cols: int) -> ADC:
        """The ADC with a per-column full scale cut to the first `n_cols` columns."""
        i_max = self.adc.i_max
        if i_max is None or i_max.ndim == 0 or i_max.shape[-1] == n_cols:
            return self.adc
        return eqx.tree_at(lambda a: a.i_max, self.adc, i_max[..., :n_cols])

    def adc_inputs(self, x: Float[Array, "*batch in"]):
        """Noise-free currents (A) the ADCs convert for inputs `x` (calibration)."""
        u, _ = self._inputs(x)
        return self._analog(u, None)

    def adc_valid_columns(self):
        """Mask `(tc, cols)` of ADC columns that carry an output (not padding)."""
        if self.is_default:
            cols = np.arange(self.grid[1] * self.crossbar.tile_shape[1])
            return cols.reshape(self.grid[1], -1) < self.out_features
        m = self.groups_per_tile
        logical = np.arange(self.grid[1] * m).reshape(self.grid[1], m, 1)
        mask = np.broadcast_to(
            logical < self.out_features, (self.grid[1], m, self.n_slices)
        )
        return mask.reshape(self.grid[1], m * self.n_slices)

    def _digital(self, u, key):
        """Outputs in units of `v_read * g_per_w`-scaled inputs, and a clip flag.

        Returns `(y (*batch, out), clipped (*batch,))`.
        """
        k_read, k_adc = (None, None) if key is None else jax.random.split(key)
        a = self._analog(u, k_read, pad=False)
        adc = self._adc_for(a.shape[-1])
        d = adc(a, key=k_adc)
        if adc.i_max is None:
            clipped = jnp.zeros(a.shape, bool)
        else:
            clipped = jnp.abs(a) >= jnp.broadcast_to(adc.i_max, a.shape)
        if self.dac.encoding == "bit_serial":
            d = jnp.tensordot(self.dac.plane_weights(), d, axes=1, precision=PRECISION)
            clipped = jnp.any(clipped, axis=0)
        ns = self.n_slices
        m = d.shape[-1] // ns  # groups_per_tile, or fewer where _trimmed cut columns
        d = d.reshape(d.shape[:-1] + (m, ns))
        d = jnp.tensordot(d, self.slice_weights(), axes=1, precision=PRECISION)
        g_per_w = self.g_per_w
        if g_per_w.ndim > 0 and g_per_w.shape[-1] != m:
            g_per_w = g_per_w[..., :m]
        d = d / jnp.broadcast_to(g_per_w, d.shape)
        y = jnp.sum(d, axis=-3).reshape(d.shape[:-3] + (-1,))[..., : self.out_features]
        batch_ndim = u.ndim - 2
        clipped = jnp.any(clipped.reshape(clipped.shape[:batch_ndim] + (-1,)), axis=-1)
        return y, clipped

    def _general_call(self, x, key):
        u, s = self._inputs(x)
        y, clipped = self._digital(u, key)
        if self.bound_management > 0:
            f0 = jnp.ones(u.shape[:-2] + (1, 1), jnp.float32)

            def cond(c):
                _, _, clip, it = c
                return jnp.any(clip) & (it < self.bound_management)

            def body(c):
                f, y, clip, it = c
                f = jnp.where(clip[..., None, None], 0.5 * f, f)
                k = None if key is None else jax.random.fold_in(key, it + 1)
                y2, clip2 = self._digital(u * f, k)
                y = jnp.where(clip[..., None], y2 / f[..., 0], y)
                return f, y, clip & clip2, it + 1

            _, y, _, _ = jax.lax.while_loop(
                cond, body, (f0, y, clipped, jnp.asarray(0, jnp.int32))
            )
        y = y * (s / self.dac.v_read)
        return y if self.bias is None else y + jnp.broadcast_to(self.bias, y.shape)

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
        if not self.is_default:
            return self._general_call(x, key)
        u, s = self._inputs(x)
        i = self._read(self.dac, u, key)  # columns past the outputs may be cut
        scale = s / (self.dac.v_read * self.g_per_w)  # (*batch, 1)
        partial = self._adc_for(i.shape[-1])(i) * scale[..., None, None]
        y = jnp.sum(partial, axis=-3).reshape(x.shape[:-1] + (-1,))
        y = y[..., : self.out_features]
        return y if self.bias is None else y + jnp.broadcast_to(self.bias, y.shape)

    def effective_weight(self) -> Float[Array, "out in"]:
        """Noise-free programmed weights `(G+ - G-) / k` (read at `t_read_s`)."""
        dev = self.crossbar.device
        g_p, _ = dev.read_stats(self.crossbar.pos, self.t_read_s)
        g_n, _ = dev.read_stats(self.crossbar.neg, self.t_read_s)
        plain = (self.n_slices, self.weight_bits, self.scheme) == (
            1,
            None,
            "differential",
        )
        if plain and self.g_per_w.ndim == 0:
            w = (
                from_tiles(g_p - g_n, self.in_features, self.out_features)
                / self.g_per_w
            )
            return w.T
        # Rows as the batch axis through the same digital combination.
        d = jnp.moveaxis(self._select(jnp.moveaxis(g_p - g_n, 2, 0)), 0, 2)
        m, ns = self.groups_per_tile, self.n_slices
        d = d.reshape(d.shape[:-1] + (m, ns))
        d = jnp.tensordot(d, self.slice_weights(), axes=1, precision=PRECISION)
        d = d / self.g_per_w[:, :, None, :]
        return from_tiles(d, self.in_features, self.out_features).T


@eqx.filter_jit
def _abs_adc_inputs(layer: AnalogLinear, x):
    return jnp.abs(layer.adc_inputs(x))


def calibrate_adc(
    layer: AnalogLinear,
    x: Float[Array, "batch in"],
    *,
    bits: int | None = 8,
    percentile: float = 99.9,
    per_column: bool = False,
) -> AnalogLinear:
    """Set the layer's ADC full scale from data.

    `i_max` becomes the given percentile of |ADC input current| over all
    tiles, columns (and bit-serial cycles) and the calibration inputs `x`,
    read without noise: what a chip does once at deployment with
    representative inputs. `per_column=True` calibrates every ADC column on
    its own (`i_max` shaped `(tiles_r, tiles_c, cols)`); a column that reads
    zero on every calibration input (a bit slice whose digits are all 0, say)
    gets the largest column full scale of the layer. The ADC's noise and
    sharing are kept; a drawn INL/DNL transfer function is dropped (its code
    count is tied to the old bits).
    """
    check_range("percentile", percentile, 0.0, 100.0, lo_open=True)
    valid = jnp.asarray(layer.adc_valid_columns())
    a = _abs_adc_inputs(layer, x)
    if per_column:
        flat = a.reshape((-1,) + a.shape[-3:])
        i_col = jnp.percentile(flat, percentile, axis=0)
        ok = jnp.broadcast_to(valid, i_col.shape)
        top = float(jnp.max(jnp.where(ok, i_col, 0.0)))
        if not top > 0:
            raise ValueError("calibrate_adc: all calibration currents are zero")
        i_max = jnp.where(ok & (i_col > 0), i_col, top)
    else:
        vals = a.reshape((-1,) + a.shape[-3:])[:, :, valid]
        i_max = float(jnp.percentile(vals, percentile))
        if not i_max > 0:
            raise ValueError("calibrate_adc: all calibration currents are zero")
    adc = ADC(
        bits=bits, i_max=i_max, noise_lsb=layer.adc.noise_lsb, share=layer.adc.share
    )
    return eqx.tree_at(lambda m: m.adc, layer, adc)


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

    def __call__(
        self, x: Float[Array, "*batch in"], *, key: PRNGKeyArray | None = None
    ):
        keys = (
            [None] * len(self.layers)
            if key is None
            else jax.random.split(key, len(self.layers))
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
