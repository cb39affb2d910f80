"""Weights onto tiles: padding to a grid, weight-to-conductance scaling, programming."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from devices.base import AbstractDevice, concrete
from xbar.periphery.converters import clip_unit


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


def to_tiles(
    m: Float[Array, "n_in n_out"],
    tile_rows: int,
    tile_cols: int,
    fill: float | Array = 0.0,
):
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


def conductance_targets(weight_io, device: AbstractDevice, w_max):
    """Differential-pair targets for a rows=inputs x cols=outputs weight matrix.

    `G+ = g_min + k max(w, 0)` and `G- = g_min + k max(-w, 0)` with
    `k = (g_max - g_min) / w_max` siemens per unit weight, so `G+ - G- = k w`
    for |w| <= w_max.

    Returns:
        (g_pos, g_neg, k).
    """
    k = (device.g_max - device.g_min) / w_max
    # Not jnp.clip (derivative 1/2 on the bound, where the largest |W| sit
    # when w_max = max |W|), as `Mapping.targets`.
    w = clip_unit(weight_io, w_max)
    g_pos = device.g_min + k * jnp.maximum(w, 0.0)
    g_neg = device.g_min + k * jnp.maximum(-w, 0.0)
    return g_pos, g_neg, k
