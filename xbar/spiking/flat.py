"""A layer's synapses read as flat matrices: one product per step where the
circuit is ideal and the cells are linear in voltage.

`FlatReads` holds what a step needs (`G+ - G-` and the read-noise variance,
`(rows, out_features)`, no tile padding); `flat_reads` reads them from the
tiled crossbar, `flat_currents` turns spikes into column currents with them.

A run that reads many times (`xbar.spiking.run` under a read schedule) reads
`FlatCells` instead: the layer's G+ and G- cell states laid out once, before
the loop, as the same `(rows, out_features)` matrices. The device's read is
elementwise in the cells, so reading the flat layout gives the same numbers
as reading the tiles and then dropping the padding, with no padded cells and
no re-layout per read. `FlatCells.fresh` is the same cells with their
per-cell write clocks (`age_s`) dropped: where no cell has been pulsed since
programming (every clock holds `AGE_FROM_PROGRAMMING`) every cell's age is
the read time itself, a scalar, so the device evaluates its time terms
(PCM's drift power law, RRAM's retention) once per read instead of once per
cell, about half the cost of a PCM read.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from devices.base import (
    AGE_FROM_PROGRAMMING,
    AbstractDevice,
    AbstractDeviceState,
    cell_age,
)
from xbar.circuits import noise
from xbar.circuits.ideal import PRECISION, IdealCircuit, safe_sqrt
from xbar.mapping.tiling import from_tiles
from xbar.spiking.network import SpikingLayer


class FlatReads(eqx.Module):
    """A layer's synapses read once, as matrices without the tiles' padding:
    the mean differential conductance `G+ - G-` (S) and, when read noise is
    wanted, the read-noise variance `std+^2 + std-^2` (S^2) of every synapse,
    `(in_features, out_features)` (a recurrent layer's recurrent synapses
    stacked below: `(in_features + out_features, out_features)`). With an
    ideal circuit and linear-I-V cells the column currents are `v @ g` with
    std `sqrt((v*v) @ var)`: one product noise-free, two with read noise,
    instead of one per tile and cell."""

    g: Float[Array, "rows out_features"]
    var: Float[Array, "rows out_features"] | None


def youngest_age(states, t_s) -> Float[Array, ""]:
    """The smallest time since the last write over the cells of `states`,
    read at `t_s` (`t_s` itself for cells never pulsed since programming)."""
    ages = [jnp.asarray(t_s, jnp.float32)]
    for st in states:
        if getattr(st, "age_s", None) is not None:
            ages.append(jnp.min(cell_age(st, t_s)).astype(jnp.float32))
    return jnp.min(jnp.stack(ages))


def layer_crossbars(layer: SpikingLayer):
    """`(crossbar, rows)` of the layer's input synapses and, for a recurrent
    layer, its recurrent synapses (stacked below in `FlatReads`)."""
    out = [(layer.crossbar, layer.in_features)]
    if layer.recurrent is not None:
        out.append((layer.recurrent, layer.out_features))
    return out


def flat_ok(layer: SpikingLayer) -> bool:
    """Whether `layer` can be read as `FlatReads`: ideal circuits and
    linear-I-V cells on every crossbar."""
    return all(
        isinstance(xb.circuit, IdealCircuit) and xb.device.linear_iv
        for xb, _ in layer_crossbars(layer)
    )


def _stack(parts):
    return jnp.concatenate(parts, 0) if len(parts) > 1 else parts[0]


def flat_reads(layer: SpikingLayer, t_s, *, noise: bool = True) -> FlatReads | None:
    """`FlatReads` of `layer` at `t_s` after programming (through the device's
    `read_stats`, so drift and the slow read deviation the device keeps in
    its state are included), with the variance when `noise`; None where a
    circuit is not ideal or the cells are not linear-I-V (then the tiled
    `xbar.step` is needed). A recurrent layer's product takes `[input
    spikes, previous spikes]`."""
    if not flat_ok(layer):
        return None
    n_out = layer.out_features
    gs, vs = [], []
    for xb, n_in in layer_crossbars(layer):
        g_p, s_p, g_n, s_n = xb.read_stats(t_s)
        gs.append(from_tiles(g_p - g_n, n_in, n_out))
        if noise:
            vs.append(from_tiles(s_p * s_p + s_n * s_n, n_in, n_out))
    return FlatReads(_stack(gs), _stack(vs) if noise else None)


def flat_currents(
    layer: SpikingLayer,
    reads: FlatReads,
    spikes: Float[Array, "*batch rows"],
    *,
    key: PRNGKeyArray | None,
) -> Float[Array, "*batch out_features"]:
    """Column currents (A) from `FlatReads`: the same distribution as
    `SpikingLayer.currents` on an ideal circuit (the per-tile partial sums'
    variances add up to `(v*v) @ var`). Read noise enters the forward pass
    only, as there."""
    v = layer.dac(spikes)
    i = jnp.dot(v, reads.g, precision=PRECISION)
    if key is None or reads.var is None:
        return i
    std = safe_sqrt(jnp.dot(v * v, reads.var, precision=PRECISION))
    return i + jax.lax.stop_gradient(std * noise.normal(key, i.shape, i.dtype))


def _drop_ages(state):
    """`state` without its per-cell write clocks (`age_s` None)."""
    if getattr(state, "age_s", None) is None:
        return state
    return eqx.tree_at(lambda s: s.age_s, state, None, is_leaf=lambda x: x is None)


class FlatCells(eqx.Module):
    """A layer's cell states laid out as `(rows, out_features)` matrices, one
    `(device, G+ state, G- state)` per crossbar (input synapses, then the
    recurrent ones). Built by `flat_cells`; read by `read`."""

    parts: tuple[tuple[AbstractDevice, AbstractDeviceState, AbstractDeviceState], ...]
    out_features: int = eqx.field(static=True)

    def relax(self, dt_s) -> FlatCells:
        """Every cell evolved by `dt_s` with no input (the device's `relax`)."""
        return FlatCells(
            tuple((d, d.relax(p, dt_s), d.relax(n, dt_s)) for d, p, n in self.parts),
            self.out_features,
        )

    def fresh(self) -> FlatCells:
        """The same cells without per-cell write clocks: reads equal the
        original's wherever `all_fresh()` holds (module docstring)."""
        return FlatCells(
            tuple((d, _drop_ages(p), _drop_ages(n)) for d, p, n in self.parts),
            self.out_features,
        )

    def has_ages(self) -> bool:
        return any(
            getattr(s, "age_s", None) is not None
            for _, p, n in self.parts
            for s in (p, n)
        )

    def all_fresh(self) -> Bool[Array, ""]:
        """Whether no cell has been pulsed since programming."""
        ages = [getattr(s, "age_s", None) for _, p, n in self.parts for s in (p, n)]
        ok = [jnp.all(a >= AGE_FROM_PROGRAMMING) for a in ages if a is not None]
        return jnp.all(jnp.stack(ok)) if ok else jnp.bool_(True)

    def youngest_age(self, t_s) -> Float[Array, ""]:
        """The smallest time since the last write over the cells, at `t_s`."""
        return youngest_age([s for _, p, n in self.parts for s in (p, n)], t_s)

    def read(self, t_s, *, noise: bool) -> FlatReads:
        """`FlatReads` at `t_s` after programming: the same as `flat_reads` of
        the tiled layer."""
        gs, vs = [], []
        for dev, pos, neg in self.parts:
            g_p, s_p, g_n, s_n = dev.read_stats_pair(pos, neg, t_s)
            gs.append(g_p - g_n)
            if noise:
                vs.append(s_p * s_p + s_n * s_n)
        return FlatReads(_stack(gs), _stack(vs) if noise else None)


def _device_is_per_cell_free(device: AbstractDevice) -> bool:
    """Whether the device's parameters are all scalars (per-cell arrays in
    the device would not follow the cells into the flat layout)."""
    leaves = jax.tree.leaves(eqx.filter(device, eqx.is_array))
    return all(jnp.ndim(leaf) == 0 for leaf in leaves)


def flat_cells(layer: SpikingLayer) -> FlatCells | None:
    """`FlatCells` of `layer`, or None where it cannot be read flat
    (`flat_ok`) or a device carries per-cell parameters."""
    if not flat_ok(layer):
        return None
    parts = []
    n_out = layer.out_features
    for xb, n_in in layer_crossbars(layer):
        if not _device_is_per_cell_free(xb.device):
            return None
        tiles = tuple(xb.grid) + tuple(xb.tile_shape)

        def lay_out(state, tiles=tiles, n_in=n_in):
            return jax.tree.map(
                lambda a: from_tiles(a, n_in, n_out) if a.shape == tiles else a,
                state,
            )

        parts.append((xb.device, lay_out(xb.pos), lay_out(xb.neg)))
    return FlatCells(tuple(parts), n_out)
