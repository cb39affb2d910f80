"""Weights onto tiles: padding to a grid, weight-to-conductance scaling, programming."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, check_range, concrete
from xbar.array.crossbar import Crossbar, program_crossbar
from xbar.circuits.ideal import AbstractCircuit


def check_tile_shape(tile_rows: int, tile_cols: int) -> None:
    for name, n in (("tile_rows", tile_rows), ("tile_cols", tile_cols)):
        if not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {name}={n!r}")


def check_weight(weight) -> None:
    w = concrete(weight)
    if w is None:
        return
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"weight must be a non-empty 2-D matrix; got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError(
            f"weight must be finite; got {int(np.sum(~np.isfinite(w)))} NaN/inf entries"
        )


def grid_shape(
    n_in: int, n_out: int, tile_rows: int, tile_cols: int
) -> tuple[int, int]:
    """Tiles needed for a matrix of `n_in` rows (inputs) and `n_out` columns."""
    return math.ceil(n_in / tile_rows), math.ceil(n_out / tile_cols)


def to_tiles(m: Float[Array, "n_in n_out"], tile_rows: int, tile_cols: int, fill=0.0):
    """Pad a rows=inputs x cols=outputs matrix to whole tiles, shape (tr, tc, R, C)."""
    n_in, n_out = m.shape
    tr, tc = grid_shape(n_in, n_out, tile_rows, tile_cols)
    padded = jnp.pad(
        m,
        ((0, tr * tile_rows - n_in), (0, tc * tile_cols - n_out)),
        constant_values=fill,
    )
    return padded.reshape(tr, tile_rows, tc, tile_cols).transpose(0, 2, 1, 3)


def from_tiles(t: Float[Array, "tr tc R C"], n_in: int, n_out: int):
    """Inverse of `to_tiles`: the (n_in, n_out) matrix without padding."""
    tr, tc, r, c = t.shape
    return t.transpose(0, 2, 1, 3).reshape(tr * r, tc * c)[:n_in, :n_out]


def weight_scale(weight, clip_percentile: float | None = None) -> Float[Array, ""]:
    """The weight magnitude mapped to the full conductance range.

    `max |W|`, or the given percentile of |W| (weights beyond it are clipped).
    """
    a = jnp.abs(weight)
    w_max = (
        jnp.max(a) if clip_percentile is None else jnp.percentile(a, clip_percentile)
    )
    return jnp.where(w_max > 0, w_max, 1.0)


def conductance_targets(weight_io, device: AbstractDevice, w_max):
    """Differential-pair targets for a rows=inputs x cols=outputs weight matrix.

    `G+ = g_min + k max(w, 0)` and `G- = g_min + k max(-w, 0)` with
    `k = (g_max - g_min) / w_max` siemens per unit weight, so `G+ - G- = k w`
    for |w| <= w_max.

    Returns:
        (g_pos, g_neg, k).
    """
    k = (device.g_max - device.g_min) / w_max
    w = jnp.clip(weight_io, -w_max, w_max)
    g_pos = device.g_min + k * jnp.maximum(w, 0.0)
    g_neg = device.g_min + k * jnp.maximum(-w, 0.0)
    return g_pos, g_neg, k


def map_matrix(
    weight_io: Float[Array, "n_in n_out"],
    device: AbstractDevice,
    *,
    key: PRNGKeyArray,
    tile_rows: int = 256,
    tile_cols: int = 256,
    clip_percentile: float | None = None,
    circuit: AbstractCircuit | None = None,
) -> tuple[Crossbar, Float[Array, ""]]:
    """Program a rows=inputs x cols=outputs matrix onto a grid of tiles.

    Padding cells are programmed to `g_min` on both sides (zero weight).
    `circuit` is the crossbar's circuit model (default ideal).

    Returns:
        (crossbar, k): the programmed tiles and the siemens per unit weight.
    """
    check_tile_shape(tile_rows, tile_cols)
    check_weight(weight_io)
    w_max = weight_scale(weight_io, clip_percentile)
    g_pos, g_neg, k = conductance_targets(weight_io, device, w_max)
    tp = to_tiles(g_pos, tile_rows, tile_cols, fill=device.g_min)
    tn = to_tiles(g_neg, tile_rows, tile_cols, fill=device.g_min)
    return program_crossbar(device, tp, tn, key=key, circuit=circuit), k


# -- bit slicing, reference column, per-column / per-tile scaling ------------------

SCHEMES = ("differential", "reference")
SCALINGS = ("tensor", "column", "tile")


def slice_layout(
    tile_cols: int,
    *,
    n_slices: int = 1,
    weight_bits: int | None = None,
    scheme: str = "differential",
) -> tuple[int, int]:
    """Check a bit-slicing configuration; return `(bits_per_slice, groups_per_tile)`.

    A weight's `n_slices` cells sit in adjacent columns of one tile (a bit-slice
    group); with `scheme="reference"` each tile also gives up its last column to
    the shared reference column. `bits_per_slice = ceil(weight_bits / n_slices)`
    (0 for an unquantized analog weight, `weight_bits=None`).

    Raises:
        ValueError: more slices than bits, slicing an unquantized weight, or a
            tile narrower than one bit-slice group (plus the reference column).
    """
    check_tile_shape(1, tile_cols)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got scheme={scheme!r}")
    if not isinstance(n_slices, int | np.integer) or n_slices < 1:
        raise ValueError(f"n_slices must be an integer >= 1; got n_slices={n_slices!r}")
    if weight_bits is None:
        if n_slices != 1:
            raise ValueError(
                "n_slices > 1 needs weight_bits (an integer in [n_slices, 24]); got "
                f"weight_bits=None, n_slices={n_slices}"
            )
        bps = 0
    else:
        if not isinstance(weight_bits, int | np.integer) or not 1 <= weight_bits <= 24:
            raise ValueError(
                f"weight_bits must be an integer in [1, 24] (magnitude bits); got "
                f"weight_bits={weight_bits!r}"
            )
        if n_slices > weight_bits:
            raise ValueError(
                f"n_slices must be in [1, weight_bits={weight_bits}] (at least one bit "
                f"per slice); got n_slices={n_slices}"
            )
        bps = -(-weight_bits // n_slices)
    ref = 1 if scheme == "reference" else 0
    groups = (tile_cols - ref) // n_slices
    if groups < 1:
        raise ValueError(
            f"tile_cols must be >= n_slices{' + 1 (reference column)' if ref else ''}"
            f" = {n_slices + ref} to hold one bit-slice group; got tile_cols={tile_cols}"
        )
    return bps, groups


def scale_grid(
    weight_io: Float[Array, "n_in n_out"],
    tile_rows: int,
    groups: int,
    scaling: str = "tensor",
    clip_percentile: float | None = None,
) -> Float[Array, "tr tc 1 m"]:
    """`w_max` of every logical column of every tile, shape `(tr, tc, 1|.., m|1)`.

    "tensor": one scale for the matrix; "column": one per output (shared by
    all row tiles); "tile": one per tile. `w_max` is `max |W|` over the group,
    or its `clip_percentile` (weights beyond it clip). Padding is ignored.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}; got scaling={scaling!r}")
    if clip_percentile is not None:
        check_range("clip_percentile", clip_percentile, 0.0, 100.0, lo_open=True)
    a = to_tiles(jnp.abs(weight_io), tile_rows, groups, fill=jnp.nan)  # (tr,tc,R,m)

    def reduce(x, axis):
        if clip_percentile is None:
            return jnp.nanmax(x, axis=axis, keepdims=True)
        return jnp.nanpercentile(x, clip_percentile, axis=axis, keepdims=True)

    if scaling == "tensor":
        w = reduce(a.reshape(-1), 0).reshape(1, 1, 1, 1)
    elif scaling == "column":
        w = reduce(a.transpose(1, 3, 0, 2).reshape(a.shape[1], a.shape[3], -1), 2)
        w = w.reshape(1, a.shape[1], 1, a.shape[3])
    else:
        w = reduce(a.reshape(a.shape[0], a.shape[1], -1), 2)[..., None]
    return jnp.where(jnp.isfinite(w) & (w > 0), w, 1.0)


def sliced_targets(
    weight_io: Float[Array, "n_in n_out"],
    device: AbstractDevice,
    *,
    tile_rows: int,
    tile_cols: int,
    n_slices: int = 1,
    weight_bits: int | None = None,
    scheme: str = "differential",
    scaling: str = "tensor",
    clip_percentile: float | None = None,
):
    """Conductance targets of a (possibly bit-sliced) mapping, in tile layout.

    Weights are clipped to `+-w_max` (see `scale_grid`). With `weight_bits`,
    `|w| / w_max` is rounded to an integer `q` in `[0, 2^weight_bits - 1]`
    whose base-`2^b` digits `d_s` (b = bits per slice, s = 0 least
    significant) go to the group's `n_slices` cells; without, the cell holds
    the analog `|w| / w_max`. Cells: differential `G+- = g_min + d dG / (2^b-1)`
    on the side of the weight's sign; reference `G = g_ref +- d dG / (2 (2^b-1))`
    with `g_ref = (g_min + g_max) / 2`, which the tile's last column holds.

    The digital side forms `sum_s 2^(b s) (I_s - I_ref or I-_s)` per group,
    which is `g_per_w * w * v`.

    Returns:
        `(g_pos, g_neg, g_per_w)`: tiles `(tr, tc, R, C)` (`g_neg` is None for
        the reference scheme: one device per weight) and siemens per unit
        weight of every logical column, `(tr, tc, m)`.
    """
    check_tile_shape(tile_rows, tile_cols)
    check_weight(weight_io)
    bps, m = slice_layout(
        tile_cols, n_slices=n_slices, weight_bits=weight_bits, scheme=scheme
    )
    w_max = scale_grid(weight_io, tile_rows, m, scaling, clip_percentile)
    wt = to_tiles(weight_io, tile_rows, m)  # (tr, tc, R, m), zero padding
    wt = jnp.clip(wt, -w_max, w_max)
    dg = device.g_max - device.g_min
    half = 2.0 if scheme == "reference" else 1.0
    if weight_bits is None:
        d = (jnp.abs(wt) / w_max)[..., None]  # (tr, tc, R, m, 1)
        levels = 1.0
        g_per_w = dg / (half * w_max)
    else:
        q = jnp.round(jnp.abs(wt) / w_max * (2.0**weight_bits - 1.0))
        s = jnp.arange(n_slices, dtype=jnp.float32).reshape(1, 1, 1, 1, -1)
        d = jnp.mod(jnp.floor(q[..., None] / 2.0 ** (bps * s)), 2.0**bps)
        levels = 2.0**bps - 1.0
        g_per_w = (2.0**weight_bits - 1.0) * dg / (levels * half * w_max)
    sign = jnp.sign(wt)[..., None]
    tr, tc = wt.shape[:2]
    cols = m * n_slices

    def place(cells, fill):
        cells = cells.reshape(tr, tc, tile_rows, cols)
        return jnp.pad(
            cells, ((0, 0), (0, 0), (0, 0), (0, tile_cols - cols)), constant_values=fill
        )

    if scheme == "differential":
        g_pos = device.g_min + jnp.where(sign > 0, d, 0.0) * dg / levels
        g_neg = device.g_min + jnp.where(sign < 0, d, 0.0) * dg / levels
        g_pos, g_neg = place(g_pos, device.g_min), place(g_neg, device.g_min)
    else:
        g_ref = device.g_min + 0.5 * dg
        g_pos = place(g_ref + sign * d * dg / (2.0 * levels), g_ref)
        g_neg = None
    return g_pos, g_neg, jnp.broadcast_to(g_per_w[:, :, 0, :], (tr, tc, m))


def program_targets(
    device: AbstractDevice,
    g_pos: Float[Array, "tr tc R C"],
    g_neg: Float[Array, "tr tc R C"] | None,
    *,
    key: PRNGKeyArray,
    circuit: AbstractCircuit | None = None,
) -> Crossbar:
    """Program targets into a crossbar; `g_neg=None` (reference scheme) leaves the
    G- array empty (conductance 0: no device, no current, no noise)."""
    if g_neg is not None:
        return program_crossbar(device, g_pos, g_neg, key=key, circuit=circuit)
    xb = program_crossbar(device, g_pos, g_pos, key=key, circuit=circuit)
    neg = jax.tree.map(lambda a: a, xb.neg)
    neg = eqx.tree_at(lambda s: s.g, neg, jnp.zeros_like(xb.neg.g))
    return Crossbar(device, xb.pos, neg, xb.circuit)
