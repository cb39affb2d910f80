"""Drift compensation: a digital correction of the outputs of a layer read at
`t_read_s` after programming, from a reference read of the same cells.

The reference read is the all-ones input (every column's summed differential
conductance, as the digital side sees it) noise-free right after programming
and at the read time; the outputs are multiplied by their ratio, either one
factor for the whole layer (aihwkit's GlobalDriftCompensation) or one per
converted column.
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
    """Noise-free column currents per volt of an all-ones input on the layer's
    `in_features` rows (padding rows are never driven), as the ADCs see them
    (reference column subtracted), `t_s` seconds after programming."""
    g = crossbar.differential_g(t_s)  # (tr, tc, R, C)
    tr, _, rows, _ = g.shape
    driven = (np.arange(tr * rows) < in_features).reshape(tr, 1, rows, 1)
    return mapping.read_out(jnp.sum(jnp.where(driven, g, 0.0), axis=-2))


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
    """One factor `|ref_j(0)| / |ref_j(t)|` per converted column (1 where a
    column reads zero)."""

    def factor(self, crossbar, mapping, t_read_s, in_features):
        r0 = jnp.abs(reference_read(crossbar, mapping, 0.0, in_features))
        rt = jnp.abs(reference_read(crossbar, mapping, t_read_s, in_features))
        return jnp.where(rt > 0, r0 / jnp.where(rt > 0, rt, 1.0), 1.0)
