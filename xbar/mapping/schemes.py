"""How a weight matrix becomes conductance targets on tiles, and how the
digital side turns the tiles' column currents back into weights x inputs.

A `Mapping` bundles the choices, each a small final module that owns its
math:

- the cell scheme (`DifferentialPair`: G+ and G- per weight, the idle side
  at g_min; `BalancedPair`: G+ and G- symmetric about mid-range;
  `ReferenceColumn`: one device per weight, offset by a shared reference
  column per tile): where a weight's digits go and what the digital side
  subtracts;
- bit slicing (`weight_bits`, `n_slices`): a weight quantized to
  `weight_bits` magnitude bits is spread over `n_slices` cells of
  `ceil(weight_bits / n_slices)` bits each, recombined by shift-add;
- the scale granularity (`PerTensor`, `PerColumn`, `PerTile`): which weights
  share one full scale `w_max`;
- clipping: the `clip_percentile` of |W| maps to the full range, weights
  beyond it clip.

A new cell scheme or scale granularity is one new class here.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from devices.base import AbstractDevice, check_range, option
from xbar.circuits.ideal import PRECISION
from xbar.mapping.tiling import check_tile_shape, check_weight, grid_shape, to_tiles
from xbar.periphery.converters import clip_unit, round_ste


class AbstractCellScheme(eqx.Module):
    """How the cells of one weight digit carry its sign."""

    #: tile columns given up to a shared reference (subtracted before the ADC)
    reference_columns: ClassVar[int] = 0
    #: devices per cell position (2: a G+/G- pair; 1: a single device)
    devices_per_cell: ClassVar[int] = 2

    @abc.abstractmethod
    def targets(
        self,
        digits: Float[Array, "*cells"],
        sign: Float[Array, "*cells"],
        device: AbstractDevice,
        levels,
    ) -> tuple[Float[Array, "*cells"], Float[Array, "*cells"] | None, Float[Array, ""]]:
        """`(g_pos, g_neg, fill)`: targets for digit magnitudes `digits` in
        `[0, levels]` with signs `sign`, and the target of an unused cell.
        `g_neg` is None for single-device schemes."""

    @property
    @abc.abstractmethod
    def span(self) -> float:
        """Fraction of the window `g_max - g_min` one full-scale digit spans."""

    def read_out(
        self, i: Float[Array, "*b cols"], used: int
    ) -> Float[Array, "*b used"]:
        """What the digital side keeps of a tile's column currents: the first
        `used` columns (minus the reference column's current, if any)."""
        return i[..., :used]


class DifferentialPair(AbstractCellScheme):
    """G+ and G- per weight: `G+- = g_min + digit dG / levels` on the side of
    the weight's sign (the other side at `g_min`); the column current
    `I+ - I-` is the signed product."""

    def targets(self, digits, sign, device, levels):
        step = (device.g_max - device.g_min) / levels
        g_pos = device.g_min + jnp.where(sign > 0, digits, 0.0) * step
        g_neg = device.g_min + jnp.where(sign < 0, digits, 0.0) * step
        return g_pos, g_neg, device.g_min

    @property
    def span(self) -> float:
        return 1.0


class BalancedPair(AbstractCellScheme):
    """G+ and G- both carry the weight, symmetric about the middle of the
    window: `G+- = g_mid +- digit dG / (2 levels)`, so `I+ - I-` is the signed
    product and both cells sit near mid-range (for devices whose up and down
    responses are most alike there, or whose drift is symmetric about it)."""

    def targets(self, digits, sign, device, levels):
        g_mid = 0.5 * (device.g_min + device.g_max)
        half = sign * digits * (device.g_max - device.g_min) / (2.0 * levels)
        return g_mid + half, g_mid - half, g_mid

    @property
    def span(self) -> float:
        return 1.0


class ReferenceColumn(AbstractCellScheme):
    """One device per weight, `G = g_ref +- digit dG / (2 levels)` around
    `g_ref = (g_min + g_max) / 2`, which the tile's last column holds; the
    reference column's current is subtracted from every column before the ADC."""

    reference_columns: ClassVar[int] = 1
    devices_per_cell: ClassVar[int] = 1

    def targets(self, digits, sign, device, levels):
        dg = device.g_max - device.g_min
        g_ref = device.g_min + 0.5 * dg
        return g_ref + sign * digits * dg / (2.0 * levels), None, g_ref

    @property
    def span(self) -> float:
        return 0.5

    def read_out(self, i, used):
        return i[..., :used] - i[..., -1:]


class AbstractScale(eqx.Module):
    """Which weights share one full scale `w_max`."""

    @abc.abstractmethod
    def reduce(self, a: Float[Array, "tr tc R m"], clip_percentile) -> Array:
        """`w_max` from |W| in tile layout (NaN where padding), broadcastable
        to `(tr, tc, 1, m)`: `max |W|`, or its `clip_percentile`."""


def _reduce(x, axis, clip_percentile):
    if clip_percentile is None:
        return jnp.nanmax(x, axis=axis, keepdims=True)
    return jnp.nanpercentile(x, clip_percentile, axis=axis, keepdims=True)


class PerTensor(AbstractScale):
    """One `w_max` for the whole matrix."""

    def reduce(self, a, clip_percentile):
        return _reduce(a.reshape(-1), 0, clip_percentile).reshape(1, 1, 1, 1)


class PerColumn(AbstractScale):
    """One `w_max` per output (shared by all row tiles of that output)."""

    def reduce(self, a, clip_percentile):
        w = _reduce(
            a.transpose(1, 3, 0, 2).reshape(a.shape[1], a.shape[3], -1),
            2,
            clip_percentile,
        )
        return w.reshape(1, a.shape[1], 1, a.shape[3])


class PerTile(AbstractScale):
    """One `w_max` per tile."""

    def reduce(self, a, clip_percentile):
        return _reduce(a.reshape(a.shape[0], a.shape[1], -1), 2, clip_percentile)[
            ..., None
        ]


class Mapping(eqx.Module):
    """Weights onto tiles: tile size, cell scheme, bit slicing, scale, clipping.

    A weight's `n_slices` cells sit in adjacent columns of one tile (a
    bit-slice group), so a tile holds `groups_per_tile` logical outputs.

    Args:
        tile_rows, tile_cols: tile size (cells), integers >= 1.
        cells: `DifferentialPair()` (default) or `ReferenceColumn()`.
        weight_bits: magnitude bits of the quantized weight, integer in
            [1, 24], or None for analog weights (then `n_slices` must be 1).
        n_slices: cells per weight, integer in [1, weight_bits].
        scale: `PerTensor()` (default), `PerColumn()` or `PerTile()`.
        clip_percentile: percentile of |W| in (0, 100] mapped to the full
            range (weights beyond it clip), or None for `max |W|`.
        parallel_rows: rows of a tile driven together in one read cycle
            (NeuroSim's `numRowParallel`), an integer in [1, tile_rows] that
            divides tile_rows, or None for all rows at once. With `k` rows, a
            tile is read in `tile_rows / k` row groups one after another; each
            group's column currents are converted on their own (the ADC
            resolves a sum over `k` rows) and the groups' conversions are
            added digitally.
    """

    tile_rows: int = eqx.field(static=True, default=256)
    tile_cols: int = eqx.field(static=True, default=256)
    cells: AbstractCellScheme = option("cells", AbstractCellScheme, DifferentialPair())
    weight_bits: int | None = eqx.field(static=True, default=None)
    n_slices: int = eqx.field(static=True, default=1)
    scale: AbstractScale = option("scale", AbstractScale, PerTensor())
    clip_percentile: float | None = eqx.field(static=True, default=None)
    parallel_rows: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_tile_shape(self.tile_rows, self.tile_cols)
        k = self.parallel_rows
        if k is not None and (
            not isinstance(k, int | np.integer)
            or not 1 <= k <= self.tile_rows
            or self.tile_rows % k
        ):
            raise ValueError(
                "parallel_rows must be None (all rows at once) or an integer in "
                f"[1, tile_rows={self.tile_rows}] that divides tile_rows; got "
                f"parallel_rows={k!r}"
            )
        n, b = self.n_slices, self.weight_bits
        if not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n_slices must be an integer >= 1; got n_slices={n!r}")
        if b is None:
            if n != 1:
                raise ValueError(
                    "n_slices > 1 needs weight_bits (an integer in [n_slices, 24]); "
                    f"got weight_bits=None, n_slices={n}"
                )
        else:
            if not isinstance(b, int | np.integer) or not 1 <= b <= 24:
                raise ValueError(
                    "weight_bits must be an integer in [1, 24] (magnitude bits); got "
                    f"weight_bits={b!r}"
                )
            if n > b:
                raise ValueError(
                    f"n_slices must be in [1, weight_bits={b}] (at least one bit per "
                    f"slice); got n_slices={n}"
                )
        ref = self.cells.reference_columns
        if (self.tile_cols - ref) // n < 1:
            raise ValueError(
                "tile_cols must be >= "
                f"n_slices{' + 1 (reference column)' if ref else ''}"
                f" = {n + ref} to hold one bit-slice group; got "
                f"tile_cols={self.tile_cols}"
            )
        if self.clip_percentile is not None:
            check_range(
                "clip_percentile", self.clip_percentile, 0.0, 100.0, lo_open=True
            )

    def row_groups(self, rows: int) -> int:
        """Read cycles per DAC cycle for a tile of which `rows` rows are used:
        `ceil(rows / parallel_rows)` (1 without row parallelism)."""
        k = self.parallel_rows
        return 1 if k is None else -(-min(rows, self.tile_rows) // k)

    @property
    def bits_per_slice(self) -> int:
        """`ceil(weight_bits / n_slices)`, 0 for analog weights."""
        return 0 if self.weight_bits is None else -(-self.weight_bits // self.n_slices)

    @property
    def groups_per_tile(self) -> int:
        """Logical output columns per tile (bit-slice groups)."""
        return (self.tile_cols - self.cells.reference_columns) // self.n_slices

    @property
    def used_columns(self) -> int:
        """Tile columns that carry a slice of some output."""
        return self.groups_per_tile * self.n_slices

    def grid(self, in_features: int, out_features: int) -> tuple[int, int]:
        """`(tiles_r, tiles_c)` for a layer of this size."""
        return grid_shape(
            in_features, out_features, self.tile_rows, self.groups_per_tile
        )

    def slice_weights(self) -> Float[Array, " slices"]:
        """Shift-add weights `2^(b s)` of the slices (1 for analog weights)."""
        s = jnp.arange(self.n_slices, dtype=jnp.float32)
        return 2.0 ** (self.bits_per_slice * s)

    def targets(self, weight_io: Float[Array, "n_in n_out"], device: AbstractDevice):
        """Conductance targets in tile layout and the siemens per unit weight.

        Weights are clipped to `+-w_max`. With `weight_bits`, `|w| / w_max` is
        rounded to an integer `q` in `[0, 2^weight_bits - 1]` whose base-`2^b`
        digits (b bits per slice, least significant first) go to the group's
        cells; without, the cell holds the analog `|w| / w_max`. The digital
        side's `sum_s 2^(b s) I_s` per group is then `g_per_w * w * v`.

        Returns:
            `(g_pos, g_neg, g_per_w)`: tiles `(tr, tc, R, C)` (`g_neg` None for
            single-device schemes) and siemens per unit weight of every
            logical column, `(tr, tc, m)`.
        """
        check_weight(weight_io)
        rows, m, ns = self.tile_rows, self.groups_per_tile, self.n_slices
        a = to_tiles(jnp.abs(weight_io), rows, m, fill=jnp.nan)  # (tr, tc, R, m)
        w_max = self.scale.reduce(a, self.clip_percentile)
        w_max = jnp.where(jnp.isfinite(w_max) & (w_max > 0), w_max, 1.0)
        # Not jnp.clip: its derivative is 1/2 on a bound, and the largest |W|
        # always sit on it (all of them when several tie, e.g. after clipping
        # in training).
        wt = clip_unit(to_tiles(weight_io, rows, m), w_max)
        dg = (device.g_max - device.g_min) * self.cells.span
        if self.weight_bits is None:
            digits = (jnp.abs(wt) / w_max)[..., None]  # (tr, tc, R, m, 1)
            levels = 1.0
            g_per_w = dg / w_max
        else:
            full = 2.0**self.weight_bits - 1.0
            q = round_ste(jnp.abs(wt) / w_max * full)
            s = jnp.arange(ns, dtype=jnp.float32).reshape(1, 1, 1, 1, -1)
            b = self.bits_per_slice
            q0 = jax.lax.stop_gradient(q)[..., None]
            digits = jnp.mod(jnp.floor(q0 / 2.0 ** (b * s)), 2.0**b)
            # Straight through: the shift-added digits carry q's gradient.
            digits = digits + (q[..., None] - q0) / (ns * 2.0 ** (b * s))
            levels = 2.0**b - 1.0
            g_per_w = full * dg / (levels * w_max)
        g_pos, g_neg, fill = self.cells.targets(
            digits, jnp.sign(wt)[..., None], device, levels
        )
        tr, tc = wt.shape[:2]

        def place(cells):
            cells = cells.reshape(tr, tc, rows, m * ns)
            pad = ((0, 0), (0, 0), (0, 0), (0, self.tile_cols - m * ns))
            return jnp.pad(cells, pad, constant_values=fill)

        g_neg = None if g_neg is None else place(g_neg)
        return place(g_pos), g_neg, jnp.broadcast_to(g_per_w[:, :, 0, :], (tr, tc, m))

    def read_out(self, i: Float[Array, "*b cols"]) -> Float[Array, "*b used"]:
        """The columns the ADCs convert (minus the reference column's current)."""
        return self.cells.read_out(i, self.used_columns)

    def recombine(self, d: Float[Array, "*b cols"]) -> Float[Array, "*b m"]:
        """Shift-add every bit-slice group's conversions into one output
        (columns cut short at the end keep only their whole groups)."""
        ns = self.n_slices
        if ns == 1:
            return d
        d = d.reshape(d.shape[:-1] + (d.shape[-1] // ns, ns))
        return jnp.tensordot(d, self.slice_weights(), axes=1, precision=PRECISION)

    def valid_columns(self, tiles_c: int, out_features: int) -> np.ndarray:
        """Mask `(tiles_c, used_columns)` of converted columns that carry an output."""
        m, ns = self.groups_per_tile, self.n_slices
        logical = np.arange(tiles_c * m).reshape(tiles_c, m, 1)
        mask = np.broadcast_to(logical < out_features, (tiles_c, m, ns))
        return mask.reshape(tiles_c, m * ns)
