"""Block-sparse synapses and large recurrent populations.

A connectivity matrix (rows = inputs, columns = neurons) is cut into tiles of
`tile_rows x tile_cols`; only the tiles that hold at least one connection
exist. Their device states are stacked along one `blocks` axis (leaves shaped
`(n_blocks, rows, cols)`), with the block-row and block-column of each tile
as integer arrays: an empty tile has no cells, costs no memory and no
operation. Connectivity comes from a dense or `scipy.sparse` matrix
(`BlockSparseSynapses.from_matrix`, tiles found from its non-zeros) or from a
connection rule that generates the tiles it touches (`BandRule`,
`from_band_rule`: no dense matrix is ever built).

The column currents of a step (ideal circuit, linear-I-V cells) are one
batched product over the blocks, `i[b, k, c] = sum_r v[b, row[k], r] g[k, r, c]`,
then a scatter-add of each block into its block column; read noise adds the
variances the same way (`(v*v) @ (std+^2 + std-^2)`) and draws one normal per
neuron. The blocks axis is what a sharded run splits across devices
(`shard_blocks`); XLA adds the partial currents of the devices.

`SparsePopulation` is a recurrent population of LIF neurons with
block-sparse input and recurrent synapses; `run_population` steps it in one
`lax.scan` (non-plastic: the cells are read once per run, at `t_s`).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from devices.base import AbstractDevice, AbstractDeviceState, as_param
from xbar.circuits import noise
from xbar.circuits.ideal import PRECISION, safe_sqrt
from xbar.mapping.tiling import check_tile_shape
from xbar.spiking.neurons import LIF, LIFState


class BlockSparseSynapses(eqx.Module):
    """Differential pairs on only the tiles that hold connections.

    Attributes:
        device: the cell model.
        pos, neg: device states of the G+ and G- cells, `(n_blocks, R, C)`.
        block_row, block_col: the tile's position in the tile grid.
        g_per_w: siemens per unit weight.
        v_read: read voltage of an input spike (V).
        n_in, n_out, tile_rows, tile_cols: sizes (static).
    """

    device: AbstractDevice
    pos: AbstractDeviceState
    neg: AbstractDeviceState
    block_row: Int[Array, " n_blocks"]
    block_col: Int[Array, " n_blocks"]
    g_per_w: Float[Array, ""]
    v_read: Float[Array, ""]
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    tile_rows: int = eqx.field(static=True)
    tile_cols: int = eqx.field(static=True)

    @property
    def n_blocks(self) -> int:
        return int(self.block_row.shape[0])

    @property
    def grid(self) -> tuple[int, int]:
        return -(-self.n_in // self.tile_rows), -(-self.n_out // self.tile_cols)

    @classmethod
    def from_blocks(
        cls,
        blocks: Float[Array, "n_blocks R C"],
        block_row,
        block_col,
        n_in: int,
        n_out: int,
        device: AbstractDevice,
        *,
        key: PRNGKeyArray,
        w_max: float,
        v_read: float = 0.2,
    ) -> BlockSparseSynapses:
        """Program weight tiles `blocks` at grid positions (`block_row`,
        `block_col`); `w_max` spans the device's range."""
        blocks = jnp.asarray(blocks, jnp.float32)
        _, r, c = blocks.shape
        check_tile_shape(r, c)
        k = (device.g_max - device.g_min) / w_max
        w = jnp.clip(blocks, -w_max, w_max)
        g_pos = device.g_min + k * jnp.maximum(w, 0.0)
        g_neg = device.g_min + k * jnp.maximum(-w, 0.0)
        k1, k2, k3, k4 = jax.random.split(key, 4)
        pos = device.program(device.init(g_pos.shape, key=k1), g_pos, key=k3)
        neg = device.program(device.init(g_neg.shape, key=k2), g_neg, key=k4)
        return cls(
            device,
            pos,
            neg,
            jnp.asarray(block_row, jnp.int32),
            jnp.asarray(block_col, jnp.int32),
            as_param(k),
            as_param(v_read),
            n_in=n_in,
            n_out=n_out,
            tile_rows=r,
            tile_cols=c,
        )

    @classmethod
    def from_matrix(
        cls,
        weight_io,
        device: AbstractDevice,
        *,
        key: PRNGKeyArray,
        tile_rows: int = 256,
        tile_cols: int = 256,
        w_max: float | None = None,
        keep_empty: bool = False,
    ) -> BlockSparseSynapses:
        """Tiles of a dense array or `scipy.sparse` matrix `(n_in, n_out)`
        holding at least one non-zero (`keep_empty`: every tile, the dense
        layout, for comparisons)."""
        check_tile_shape(tile_rows, tile_cols)
        n_in, n_out = weight_io.shape
        tr, tc = -(-n_in // tile_rows), -(-n_out // tile_cols)
        if hasattr(weight_io, "tocoo"):
            coo = weight_io.tocoo()
            rr, cc, vv = coo.row, coo.col, np.asarray(coo.data, np.float32)
        else:
            dense = np.asarray(weight_io, np.float32)
            rr, cc = np.nonzero(dense)
            vv = dense[rr, cc]
        if keep_empty:
            ids = np.arange(tr * tc)
        else:
            ids = np.unique((rr // tile_rows) * tc + cc // tile_cols)
        index = {int(b): i for i, b in enumerate(ids)}
        blocks = np.zeros((len(ids), tile_rows, tile_cols), np.float32)
        bid = (rr // tile_rows) * tc + cc // tile_cols
        pos = np.fromiter((index[int(b)] for b in bid), np.int64, len(bid))
        blocks[pos, rr % tile_rows, cc % tile_cols] = vv
        if w_max is None:
            w_max = float(np.max(np.abs(vv))) if len(vv) else 1.0
        return cls.from_blocks(
            jnp.asarray(blocks),
            ids // tc,
            ids % tc,
            n_in,
            n_out,
            device,
            key=key,
            w_max=w_max,
        )

    def read(self, t_s) -> tuple[Array, Array]:
        """Mean differential conductance and read variance of every block
        cell at `t_s` (through the device's `read_stats`)."""
        g_p, s_p = self.device.read_stats(self.pos, t_s)
        g_n, s_n = self.device.read_stats(self.neg, t_s)
        return g_p - g_n, s_p * s_p + s_n * s_n

    def currents(
        self,
        spikes: Float[Array, "batch n_in"],
        reads: tuple[Array, Array],
        *,
        key: PRNGKeyArray | None,
    ) -> Float[Array, "batch n_out"]:
        """Column current (A) into every neuron for input spikes (or any
        values in [0, 1], times `v_read`) from reads `self.read(t)`."""
        g, var = reads
        b = spikes.shape[0]
        tr, tc = self.grid
        r, c = self.tile_rows, self.tile_cols
        v = self.v_read * spikes
        v = jnp.pad(v, ((0, 0), (0, tr * r - self.n_in))).reshape(b, tr, r)
        vb = jnp.take(v, self.block_row, axis=1)  # (b, n_blocks, r)

        def gather_sum(m, x):
            part = jnp.einsum("bkr,krc->bkc", x, m, precision=PRECISION)
            out = jnp.zeros((b, tc, c), part.dtype)
            # Padding blocks (`shard_blocks`) sit in column `tc`: dropped.
            return out.at[:, self.block_col].add(part, mode="drop")

        i = gather_sum(g, vb)
        if key is not None:
            std = safe_sqrt(gather_sum(var, vb * vb))
            i = i + std * noise.normal(key, i.shape, i.dtype)
        return i.reshape(b, tc * c)[:, : self.n_out]

    def weight_io(self, t_s=0.0) -> np.ndarray:
        """The dense `(n_in, n_out)` weights, read noise-free at `t_s` (small
        networks and tests only)."""
        g, _ = self.read(t_s)
        tr, tc = self.grid
        full = np.zeros((tr, tc, self.tile_rows, self.tile_cols), np.float32)
        full[np.asarray(self.block_row), np.asarray(self.block_col)] = np.asarray(g)
        full = full.transpose(0, 2, 1, 3).reshape(tr * self.tile_rows, -1)
        return full[: self.n_in, : self.n_out] / float(self.g_per_w)

    def synapse_count(self) -> int:
        g, _ = self.read(0.0)
        return int(jnp.sum(jnp.abs(g) > 0))


class BandRule(eqx.Module):
    """A local connection rule for the scale study: neuron `j` receives from
    input `i` with probability `p` when `i` lies within `half_width` of `j`
    (indices scaled to a common ring), weights uniform in `[w_lo, w_hi]`.
    Only tiles that intersect the band exist."""

    half_width: int
    p: float
    w_lo: float = 0.0
    w_hi: float = 1.0

    def blocks_for(self, n_in, n_out, r, c):
        """Grid positions of the tiles the band touches."""
        tr = -(-n_in // r)
        br, bc = [], []
        for a in range(tr):
            lo, hi = a * r, min((a + 1) * r, n_in) - 1
            # neuron j's centre in input coordinates: j * n_in / n_out
            j_lo = max(0, int(np.floor((lo - self.half_width) * n_out / n_in)))
            j_hi = min(n_out - 1, int(np.ceil((hi + self.half_width) * n_out / n_in)))
            for bcol in range(j_lo // c, j_hi // c + 1):
                br.append(a)
                bc.append(bcol)
        return np.asarray(br), np.asarray(bc)

    def weights(self, block_row, block_col, key, r, c, n_in, n_out):
        i = block_row[:, None, None] * r + jnp.arange(r)[None, :, None]
        j = block_col[:, None, None] * c + jnp.arange(c)[None, None, :]
        centre = j.astype(jnp.float32) * (n_in / n_out)
        near = jnp.abs(i.astype(jnp.float32) - centre) <= self.half_width
        valid = (i < n_in) & (j < n_out) & near
        k1, k2 = jax.random.split(key)
        shape = (block_row.shape[0], r, c)
        if self.p < 1.0:
            valid = valid & (jax.random.uniform(k1, shape) < self.p)
        w = jax.random.uniform(k2, shape, jnp.float32, self.w_lo, self.w_hi)
        return jnp.where(valid, w, 0.0)


def from_band_rule(rule: BandRule, n_in, n_out, device, *, key, tile=256, w_max=1.0):
    """`BlockSparseSynapses` of a `BandRule` (only the tiles it touches)."""
    br, bc = rule.blocks_for(n_in, n_out, tile, tile)
    k_w, k_p = jax.random.split(key)
    blocks = rule.weights(
        jnp.asarray(br), jnp.asarray(bc), k_w, tile, tile, n_in, n_out
    )
    return BlockSparseSynapses.from_blocks(
        blocks, br, bc, n_in, n_out, device, key=k_p, w_max=w_max
    )


class SparsePopulation(eqx.Module):
    """`n` LIF neurons with block-sparse input synapses (`n_in -> n`) and
    block-sparse recurrent synapses (`n -> n`, spikes of the previous step;
    None for a feed-forward layer). Weights are in units of "threshold per
    spike" through the neuron's membrane resistance `r_ohm`."""

    inputs: BlockSparseSynapses
    recurrent: BlockSparseSynapses | None
    neuron: LIF
    dt_s: Float[Array, ""] = eqx.field(converter=as_param)


def run_population(
    pop: SparsePopulation,
    x: Float[Array, "time batch n_in"],
    *,
    key: PRNGKeyArray | None,
    t_s: float = 1.0,
) -> dict:
    """Run the population over `x` in one `lax.scan`; the cells are read once
    at `t_s`. Returns spike counts per neuron `(batch, n)`, spikes per step
    `(time, batch)`, and the synaptic operations per step `(time, batch)`
    (input and recurrent spikes times their synapses' fan-out)."""
    r_in = pop.inputs.read(t_s)
    r_rec = None if pop.recurrent is None else pop.recurrent.read(t_s)
    fan_in = _fan_out(pop.inputs)
    fan_rec = None if pop.recurrent is None else _fan_out(pop.recurrent)
    n = pop.inputs.n_out
    batch = x.shape[1]

    def body(carry, xs):
        st, s_prev = carry
        x_t, k = xs
        k1, k2 = (None, None) if k is None else jax.random.split(k)
        i = pop.inputs.currents(x_t, r_in, key=k1)
        ops = x_t @ fan_in
        if pop.recurrent is not None and r_rec is not None and fan_rec is not None:
            i = i + pop.recurrent.currents(s_prev, r_rec, key=k2)
            ops = ops + s_prev @ fan_rec
        st, s = pop.neuron(st, i, pop.dt_s)
        return (st, s), (jnp.sum(s, -1), ops, s)

    init: tuple[LIFState, Array] = (
        pop.neuron.init((batch, n)),
        jnp.zeros((batch, n), jnp.float32),
    )
    keys = None if key is None else jax.random.split(key, x.shape[0])
    _, (n_spk, ops, s) = jax.lax.scan(body, init, (x, keys))
    return {"spikes_per_step": n_spk, "syn_ops": ops, "counts": jnp.sum(s, 0)}


def _fan_out(syn: BlockSparseSynapses) -> Array:
    """Non-zero synapses per input line (from the stored tiles; traceable)."""
    g, _ = syn.read(0.0)
    nz = jnp.sum(jnp.abs(g) > 0, axis=-1).astype(jnp.float32)  # (n_blocks, R)
    rows = syn.block_row[:, None] * syn.tile_rows + jnp.arange(syn.tile_rows)[None, :]
    out = jnp.zeros(syn.grid[0] * syn.tile_rows, jnp.float32)
    return out.at[rows.ravel()].add(nz.ravel())[: syn.n_in]


def shard_blocks(syn: BlockSparseSynapses, mesh_axis: str = "blocks"):
    """`syn` with its blocks split across every JAX device (padded to a
    multiple of the device count with copies of a tile placed in a block
    column past the last, whose currents are dropped). A compiled run on the
    result computes each device's blocks there and sums the partial currents
    across devices."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devs = jax.devices()
    n_dev = len(devs)
    pad = (-syn.n_blocks) % n_dev
    if pad:
        tc = syn.grid[1]

        def pad_leaf(a):
            return jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)])

        syn = eqx.tree_at(
            lambda s: (s.pos, s.neg, s.block_row, s.block_col),
            syn,
            (
                jax.tree.map(pad_leaf, syn.pos),
                jax.tree.map(pad_leaf, syn.neg),
                jnp.concatenate([syn.block_row, jnp.zeros(pad, jnp.int32)]),
                jnp.concatenate([syn.block_col, jnp.full(pad, tc, jnp.int32)]),
            ),
        )
    mesh = Mesh(np.asarray(devs), (mesh_axis,))
    sharding = NamedSharding(mesh, PartitionSpec(mesh_axis))

    def put(a):
        if isinstance(a, jax.Array) and a.ndim >= 1 and a.shape[0] == syn.n_blocks:
            return jax.device_put(a, sharding)
        return a

    return jax.tree.map(put, syn)
