"""The one analog forward path that every analog layer runs.

Per input vector: scale into [-1, 1] (`input_scaling`), pad to whole tiles,
drive the rows (`dac`: one or more read cycles; with `mapping.parallel_rows`
each cycle is split into row groups read one after another), read the tiles'
column currents (`crossbar`, its circuit and read noise), keep the columns the
mapping converts (`mapping.read_out`), convert (`adc`), correct for drift
(`drift_compensation`), add the row groups' conversions, recombine cycles
(`dac.combine`) and bit slices
(`mapping.recombine`), undo the conductance scale, add the partial sums over
row tiles, rescale and add the digital bias. Every option owns its step;
the layer never branches on an option's type.
"""

from __future__ import annotations

import abc
import functools
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice
from xbar.array.crossbar import Crossbar, step
from xbar.mapping.schemes import Mapping
from xbar.mapping.tiling import check_weight, from_tiles
from xbar.nn.compensation import AbstractDriftCompensation
from xbar.nn.config import AnalogConfig
from xbar.periphery.converters import ADC, AbstractDAC
from xbar.periphery.input_scaling import AbstractInputScaling


def _slice_tiles(xb: Crossbar, index) -> Crossbar:
    """The crossbar with `index` applied to every per-cell state leaf, shaped
    `(tiles_r, tiles_c, rows, cols)` (device parameters are left as they are)."""
    shape = xb.grid + xb.tile_shape

    def cut(a):
        if eqx.is_array(a) and a.ndim == 4 and a.shape == shape:
            return a[index]
        return a

    return Crossbar(
        xb.device, jax.tree.map(cut, xb.pos), jax.tree.map(cut, xb.neg), xb.circuit
    )


@jax.custom_jvp
def _rows_of(weight_oi):
    """`weight_oi.T`: the crossbar's layout (rows = inputs) of an `(out, in)`
    weight, whose backward pass hands the weight's gradient over as its own
    array.

    Without this, XLA:CPU fuses the transposed gradient's whole elementwise
    chain (clipping, sign and scale selects, read-out of the padded tiles)
    into every consumer of the weight's gradient, with strided reads, and
    duplicates it: an Adam update (two consumers, `m` and `v`) then costs
    6.3 ms on the 784 x 256 layer, against 0.4 ms for Adam on a ready
    gradient, so a hardware-aware training step took 8.7 ms instead of 4.8 ms
    (benchmarks/training.py). The transposed copy is made inside a
    `lax.cond` on a data-dependent predicate (both branches the same): XLA
    cannot fuse across a conditional, and it expands optimization barriers
    before fusion on CPU, so those do not help. A custom JVP (not VJP), so
    forward-mode derivatives work too; reverse mode transposes the
    conditional's linear branches.
    """
    return weight_oi.T


@_rows_of.defjvp
def _rows_of_jvp(primals, tangents):
    (w,), (t,) = primals, tangents
    # Data-dependent (on the primal), so XLA cannot fold the conditional
    # away; either branch gives the same result.
    pred = jnp.any(w[:1, :1] == w[:1, :1])
    return w.T, jax.lax.cond(pred, lambda t: t.T, lambda t: t.T, t)


@eqx.filter_jit
def _program(weight_oi, config: AnalogConfig, key):
    """Conductance targets and programmed tiles, compiled as one function (a
    user who never writes `jit` does not pay op-by-op dispatch)."""
    g_pos, g_neg, g_per_w = config.mapping.targets(_rows_of(weight_oi), config.device)
    crossbar = config.programming.program(
        config.device, g_pos, g_neg, key=key, circuit=config.circuit
    )
    return crossbar, g_per_w


def mapped_fields(
    weight_oi, bias, config: AnalogConfig | AbstractDevice, *, key: PRNGKeyArray
) -> dict:
    """The fields of an analog layer holding `weight_oi` (out, in) and `bias`
    mapped and programmed as `config` says (a bare device: every option
    default). Inputs are checked before anything is compiled."""
    if not isinstance(config, AnalogConfig):
        config = AnalogConfig(config)
    weight_oi = jnp.asarray(weight_oi, jnp.float32)
    if weight_oi.ndim != 2:
        raise ValueError(f"weight must be 2-D (out, in); got shape {weight_oi.shape}")
    check_weight(weight_oi)
    if bias is not None:
        bias = jnp.asarray(bias, jnp.float32)
        if bias.shape != (weight_oi.shape[0],):
            raise ValueError(
                f"bias must have shape ({weight_oi.shape[0]},) to match weight "
                f"{weight_oi.shape}; got {bias.shape}"
            )
    crossbar, g_per_w = _program(weight_oi, config, key)
    return dict(
        crossbar=crossbar,
        mapping=config.mapping,
        dac=config.dac,
        adc=config.adc,
        input_scaling=config.input_scaling,
        drift_compensation=config.drift_compensation,
        g_per_w=g_per_w,
        bias=bias,
        t_read_s=config.t_read_s,
        in_features=int(weight_oi.shape[1]),
        out_features=int(weight_oi.shape[0]),
        bound_management=config.bound_management,
    )


def _sum_tile_rows(d: Float[Array, "*b tr tc m"], g_per_w: Float[Array, "tr tc m"]):
    """`sum_a d[..., a, :, :] / g_per_w[a]`: the partial sums of the row tiles in
    weight units. Written as a sum of per-row-tile terms: XLA:CPU fuses the
    broadcast division into a reduction over the tile-row axis as a loop ~30x
    slower than this (13 ms vs 0.4 ms for 1,024 x 4 x 256 partial sums)."""
    shape = d.shape[:-3] + d.shape[-2:]
    out = d[..., 0, :, :] / jnp.broadcast_to(g_per_w[0], shape)
    for a in range(1, d.shape[-3]):
        out = out + d[..., a, :, :] / jnp.broadcast_to(g_per_w[a], shape)
    return out


class AbstractAnalogLayer(eqx.Module):
    """A matrix `W` (out, in) on crossbar tiles with its periphery.

    Final subclasses (`AnalogLinear`, `AnalogConv2d`) say how their inputs
    become vectors of `in_features` (`input_vectors`) and how outputs are
    shaped; the analog part is `matvec`, shared by all.
    """

    crossbar: Crossbar
    mapping: Mapping
    dac: AbstractDAC
    adc: ADC
    input_scaling: AbstractInputScaling
    drift_compensation: AbstractDriftCompensation
    g_per_w: Float[Array, "tr tc m"]  # siemens per unit weight, per logical column
    bias: Float[Array, " out"] | None
    t_read_s: Float[Array, ""]  # seconds since programming at read
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    bound_management: int = eqx.field(static=True)

    #: whether the layer takes its input flattened to `(*batch, in_features)`
    flattens_input: ClassVar[bool] = False

    @abc.abstractmethod
    def input_vectors(self, x: Array) -> Float[Array, "*vectors in"]:
        """The vectors of `in_features` that the tiles see for input `x`."""

    @property
    def grid(self) -> tuple[int, int]:
        return self.crossbar.grid

    @property
    def devices(self) -> int:
        """Devices on the layer's tiles (both cells of a pair where there are two)."""
        tr, tc = self.grid
        rows, cols = self.crossbar.tile_shape
        return tr * tc * rows * cols * self.mapping.cells.devices_per_cell

    # -- the forward path ---------------------------------------------------------

    def _inputs(self, x: Float[Array, "*batch in"]):
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"input must have shape (..., {self.in_features}) (in_features="
                f"{self.in_features}); got {x.shape}"
            )
        s = self.input_scaling.scale(x)
        tr, _ = self.grid
        rows = self.crossbar.tile_shape[0]
        pad = [(0, 0)] * (x.ndim - 1) + [(0, tr * rows - self.in_features)]
        u = jnp.pad(x / s, pad).reshape(x.shape[:-1] + (tr, rows))
        return u, s

    def scaled_inputs(
        self, x: Float[Array, "*batch in"]
    ) -> Float[Array, "*batch tr rows"]:
        """Inputs `x` scaled into [-1, 1] and laid out by row tile (zero-padded),
        as the DAC receives them."""
        return self._inputs(x)[0]

    def _trimmed(self, u):
        """Skip simulating cells that cannot contribute (circuits whose cells
        are independent, mappings without a reference column): the zero-input
        padding rows of a single row tile, and the columns past the last
        bit-slice group. Same currents, fewer flops: a 9-input conv kernel on
        a 256 x 256 tile computes 9 rows. The inputs are cut before the DAC,
        so the padding is never driven either."""
        xb = self.crossbar
        if not xb.circuit.independent_cells or self.mapping.cells.reference_columns:
            return xb, u
        tr, tc = xb.grid
        rows, cols = xb.tile_shape
        r = self.in_features if tr == 1 else rows
        c = self.mapping.used_columns
        if tc == 1:
            c = min(c, self.out_features * self.mapping.n_slices)
        if (r, c) == (rows, cols):
            return xb, u
        return _slice_tiles(xb, np.s_[:, :, :r, :c]), u[..., :r]

    @property
    def row_groups(self) -> int:
        """Row groups read one after another per DAC cycle (`mapping.parallel_rows`
        rows each; 1 when every row of a tile is driven at once)."""
        rows = self.crossbar.tile_shape[0]
        return self.mapping.row_groups(min(rows, self.in_features))

    @property
    def read_cycles(self) -> int:
        """Array reads (and conversions per column) per input vector: DAC cycles
        x row groups."""
        return self.dac.n_cycles * self.row_groups

    def grouped(
        self, p: Float[Array, " cycles *b tr r"]
    ) -> Float[Array, " reads *b tr r"]:
        """Per-row values of every DAC cycle spread over the row groups: read
        `g * cycles + c` keeps the rows of group `g` (rows `g k .. g k + k - 1`
        of each tile) and zeroes the others. The identity without row
        parallelism."""
        n = self.row_groups
        if n == 1:
            return p
        k = self.mapping.parallel_rows or p.shape[-1]
        r = p.shape[-1]
        mask = (np.arange(r)[None, :] // k == np.arange(n)[:, None]).astype(np.float32)
        mask = jnp.asarray(mask).reshape((n,) + (1,) * (p.ndim - 1) + (r,))
        out = p[None] * mask
        return out.reshape((n * p.shape[0],) + p.shape[1:])

    def _drive(self, u):
        """Row voltages (V) of every read: `(reads, *u.shape)`, reads = DAC
        cycles x row groups."""
        return self.grouped(self.dac.planes(u)) * self.dac.v_read

    def _sum_groups(self, d):
        """Add the row groups' conversions digitally: `(reads, ...)` ->
        `(cycles, ...)`."""
        n = self.row_groups
        if n == 1:
            return d
        d = d.reshape((n, d.shape[0] // n) + d.shape[1:])
        out = d[0]
        for g in range(1, n):
            out = out + d[g]
        return out

    def _read(self, u, key):
        """Column currents `(reads, *batch, tr, tc, cols)` for normalized
        inputs `u`, skipping cells that cannot contribute (see `_trimmed`): the
        last row of tiles is read with only its `in_features - (tiles_r - 1)
        rows` used rows. Same currents and noise distribution (the two parts
        draw independent noise)."""
        xb, u = self._trimmed(u)
        tr = xb.grid[0]
        rows = xb.tile_shape[0]
        r_last = self.in_features - (tr - 1) * rows
        if not xb.circuit.independent_cells or tr == 1 or r_last == rows:
            return xb.currents(self._drive(u), self.t_read_s, key=key)
        part = functools.partial(_slice_tiles, xb)
        k_head, k_tail = (None, None) if key is None else jax.random.split(key)
        head = part(np.s_[: tr - 1]).currents(
            self._drive(u[..., : tr - 1, :]), self.t_read_s, key=k_head
        )
        tail = part(np.s_[tr - 1 :, :, :r_last]).currents(
            self._drive(u[..., tr - 1 :, :r_last]), self.t_read_s, key=k_tail
        )
        return jnp.concatenate([head, tail], axis=-3)

    def _analog(self, u, key):
        """ADC inputs (A) for normalized inputs `u`: `(reads, *batch, tr, tc, used)`
        (fewer columns where `_trimmed` cut columns that carry no output)."""
        return self.mapping.read_out(self._read(u, key))

    def _adc_for(self, n_cols: int) -> ADC:
        """The ADC with a per-column full scale cut to the first `n_cols` columns."""
        i_max = self.adc.i_max
        if i_max is None or i_max.ndim == 0 or i_max.shape[-1] == n_cols:
            return self.adc
        return eqx.tree_at(lambda a: a.i_max, self.adc, i_max[..., :n_cols])

    def _compensation(self):
        """The drift-compensation factor of the converted columns, or None."""
        return self.drift_compensation.factor(
            self.crossbar, self.mapping, self.t_read_s, self.in_features
        )

    def _digital(self, u, key, factor):
        """Outputs in units of `v_read`-scaled inputs, and a per-example clip flag."""
        adc = self.adc
        k_read, k_adc = (key, None)
        if key is not None and adc.noise_lsb is not None:
            k_read, k_adc = jax.random.split(key)
        a = self._analog(u, k_read)
        adc = self._adc_for(a.shape[-1])
        d = adc(a, key=k_adc)
        batch_ndim = u.ndim - 2
        if self.bound_management > 0 and adc.i_max is not None:
            clip = jnp.abs(a) >= jnp.broadcast_to(adc.i_max, a.shape)
            clip = jnp.moveaxis(clip, 0, -1)  # cycles last
            clipped = jnp.any(clip.reshape(clip.shape[:batch_ndim] + (-1,)), axis=-1)
        else:
            clipped = jnp.zeros(u.shape[:batch_ndim], bool)
        if factor is not None:
            d = d * jnp.broadcast_to(
                factor if factor.ndim == 0 else factor[..., : d.shape[-1]], d.shape
            )
        d = self.mapping.recombine(self.dac.combine(self._sum_groups(d)))
        y = _sum_tile_rows(d, self.g_per_w[..., : d.shape[-1]])
        y = y.reshape(y.shape[:-2] + (-1,))[..., : self.out_features]
        return y, clipped

    def matvec(
        self, x: Float[Array, "*batch in"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*batch out"]:
        """`W x + b` for vectors `x` (leading batch axes); `key=None` reads
        without noise. One key draws independent noise for every example.
        Compiled once per layer structure and input shape."""
        return _matvec(self, x, key)

    def _matvec(self, x, key):
        u, s = self._inputs(x)
        factor = self._compensation()  # once per call, not per re-read
        y, clipped = self._digital(u, key, factor)
        if self.bound_management > 0:
            f0 = jnp.ones(u.shape[:-2] + (1, 1), jnp.float32)

            def cond(c):
                _, _, clip, it = c
                return jnp.any(clip) & (it < self.bound_management)

            def body(c):
                f, y, clip, it = c
                f = jnp.where(clip[..., None, None], 0.5 * f, f)
                k = None if key is None else jax.random.fold_in(key, it + 1)
                y2, clip2 = self._digital(u * f, k, factor)
                y = jnp.where(clip[..., None], y2 / f[..., 0], y)
                return f, y, clip & clip2, it + 1

            _, y, _, _ = jax.lax.while_loop(
                cond, body, (f0, y, clipped, jnp.asarray(0, jnp.int32))
            )
        y = y * (s / self.dac.v_read)
        return y if self.bias is None else y + jnp.broadcast_to(self.bias, y.shape)

    # -- what calibration, analysis and tests look at ----------------------------

    def adc_inputs(self, x: Float[Array, "*batch in"]):
        """Noise-free currents (A) the ADCs convert for vectors `x`:
        `(reads, *batch, tr, tc, used)`, reads = DAC cycles x row groups (read
        `g * cycles + c` is row group `g` in DAC cycle `c`; columns the forward
        pass skips, which carry no output, read 0)."""
        u, _ = self._inputs(x)
        a = self._analog(u, None)
        pad = [(0, 0)] * (a.ndim - 1) + [(0, self.mapping.used_columns - a.shape[-1])]
        return jnp.pad(a, pad)

    def adc_valid_columns(self) -> np.ndarray:
        """Mask `(tc, used)` of converted columns that carry an output (not padding)."""
        return self.mapping.valid_columns(self.grid[1], self.out_features)

    def tile_currents(
        self, x: Float[Array, "*batch in"], *, key: PRNGKeyArray | None
    ) -> Float[Array, "*batch tiles_r tiles_c cols"]:
        """Per-tile column currents of all columns before the ADC (A), one cycle
        at the equivalent amplitude."""
        u, _ = self._inputs(x)
        return step(self.crossbar, self.dac, u, self.t_read_s, key=key)

    def effective_weight(self) -> Float[Array, "out in"]:
        """Noise-free programmed weights as the digital side sees them at
        `t_read_s` (drift compensation included), without ADC quantization."""
        d = self.mapping.read_out(self.crossbar.differential_g(self.t_read_s))
        factor = self._compensation()
        if factor is not None:
            d = d * (factor if factor.ndim == 0 else factor[:, :, None, :])
        d = self.mapping.recombine(d) / self.g_per_w[:, :, None, :]
        return from_tiles(d, self.in_features, self.out_features).T

    def with_adc(self, adc: ADC):
        """The same programmed layer with another ADC."""
        return eqx.tree_at(lambda m: m.adc, self, adc)


@eqx.filter_jit
def _matvec(layer: AbstractAnalogLayer, x, key):
    return layer._matvec(x, key)
