"""Drift compensation: a digital correction of the outputs of a layer read at
`t_read_s` after programming, from a reference read of the same cells.

The reference read is the all-ones input right after programming and at the
read time, without the fast per-read noise (the slow deviation a cell holds
since its last write is part of what it conducts, so the reference sees it);
the outputs are multiplied by the ratio of the two. The global factor
(aihwkit's GlobalDriftCompensation) compares the summed magnitudes of the
converted columns' signed reads. The per-column factor compares each column's
*total* conductance (G+ and G- read as the two physical columns they are,
before the subtraction): a signed column sum can be close to zero (a column
whose weights cancel), and a ratio of two small, noisy numbers would multiply
that output by anything.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from xbar.array.crossbar import Crossbar
from xbar.mapping.schemes import Mapping


def reference_read(
    crossbar: Crossbar, mapping: Mapping, t_s, in_features: int
) -> Float[Array, "tr tc used"]:
    """Column currents per volt (without the fast per-read noise) of an all-ones
    input on the layer's `in_features` rows (padding rows are never driven), as the
    ADCs see them (reference column subtracted), `t_s` seconds after programming."""
    g = crossbar.differential_g(t_s)  # (tr, tc, R, C)
    tr, _, rows, _ = g.shape
    driven = (np.arange(tr * rows) < in_features).reshape(tr, 1, rows, 1)
    return mapping.read_out(jnp.sum(jnp.where(driven, g, 0.0), axis=-2))


def total_read(
    crossbar: Crossbar, mapping: Mapping, t_s, in_features: int
) -> Float[Array, "tr tc used"]:
    """Total conductance `sum_i (G+_ij + G-_ij)` (S, without the fast per-read
    noise) of every converted column over the layer's `in_features` driven rows,
    `t_s` seconds after programming: the two physical columns of a pair read with an
    all-ones input, added instead of subtracted (single-device schemes hold zeros in
    G-). Always >= 0, and > 0 unless every cell is at 0 S."""
    g_p, _, g_n, _ = crossbar.read_stats(t_s)
    tr, _, rows, _ = g_p.shape
    driven = (np.arange(tr * rows) < in_features).reshape(tr, 1, rows, 1)
    total = jnp.sum(jnp.where(driven, g_p + g_n, 0.0), axis=-2)
    return total[..., : mapping.used_columns]


class AbstractDriftCompensation(eqx.Module):
    """How outputs read at time t are corrected for drift."""

    @abc.abstractmethod
    def factor(
        self, crossbar: Crossbar, mapping: Mapping, t_read_s, in_features: int
    ) -> Array | None:
        """Multiplier of the converted outputs, broadcastable to `(tr, tc,
        used_columns)`, or None for no correction."""


class NoCompensation(AbstractDriftCompensation):
    """Outputs as read (drift shows)."""

    def factor(self, crossbar, mapping, t_read_s, in_features):
        return None


class GlobalCompensation(AbstractDriftCompensation):
    """One factor `sum |ref(0)| / sum |ref(t)|` for the whole layer."""

    def factor(self, crossbar, mapping, t_read_s, in_features):
        r0 = jnp.sum(jnp.abs(reference_read(crossbar, mapping, 0.0, in_features)))
        rt = jnp.sum(jnp.abs(reference_read(crossbar, mapping, t_read_s, in_features)))
        return jnp.where(rt > 0, r0 / jnp.where(rt > 0, rt, 1.0), 1.0)


class PerColumnCompensation(AbstractDriftCompensation):
    """One factor `T_j(0) / T_j(t)` per converted column, `T_j` the column's
    total conductance (`total_read`; 1 where a column reads zero)."""

    def factor(self, crossbar, mapping, t_read_s, in_features):
        r0 = total_read(crossbar, mapping, 0.0, in_features)
        rt = total_read(crossbar, mapping, t_read_s, in_features)
        return jnp.where(rt > 0, r0 / jnp.where(rt > 0, rt, 1.0), 1.0)
