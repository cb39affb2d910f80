"""Spiking layers and networks on crossbars: synapses as tiles of differential
pairs, neurons driven by their column currents.

Weights and membranes: a layer built `from_weights` stores the weight matrix as
`G+ - G- = k W` (`k` siemens per unit weight, `xbar.mapping.conductance_targets`)
and gets a membrane capacitance chosen so that one input spike through a unit
weight moves an LIF neuron from rest by `v_th - v_rest` in one step
(`C = tau v_read k (1 - exp(-dt/tau)) / (v_th - v_rest)`): weights are in units
of "threshold per spike", whatever the device's conductance range.

The synaptic step of a layer (`SpikingLayer.currents`) is `xbar.array.step`,
the same analog step as the static matrix-vector product of `AnalogLinear`;
the time loop that drives these layers is in `xbar.spiking.loop`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, as_param, check_range
from xbar.array.crossbar import Crossbar, program_crossbar, step
from xbar.circuits.ideal import AbstractCircuit
from xbar.mapping.programming import straight_through
from xbar.mapping.tiling import (
    check_tile_shape,
    conductance_targets,
    from_tiles,
    to_tiles,
)
from xbar.periphery.converters import DAC
from xbar.spiking.neurons import LIF, AdaptiveLIF, CubaLIF

Neuron = LIF | AdaptiveLIF | CubaLIF


def membrane_capacitance(
    tau_s: Array | float,
    dt_s: Array | float,
    v_read: Array | float,
    g_per_w: Array | float,
    v_th: Array | float,
    v_rest: Array | float = 0.0,
) -> Array:
    """Capacitance (F) for which one spike through a unit weight, held for one
    step, moves the membrane from rest by `v_th - v_rest`."""
    return tau_s * v_read * g_per_w * -jnp.expm1(-dt_s / tau_s) / (v_th - v_rest)


def _program(weight, device, w_max, key, tile_rows, tile_cols, circuit):
    """`weight` (out, in) programmed as `G+ - G- = k W` on tiles; `(crossbar, k)`.
    The gradient rule of every mapped layer (`xbar.mapping.programming.
    straight_through`): the forward pass sees the programmed (noisy, level-
    quantized) conductances; the gradient flows to the targets inside the
    window, and to the device's parameters through the programmed values."""
    g_pos, g_neg, k = conductance_targets(weight.T, device, w_max)
    tp = to_tiles(g_pos, tile_rows, tile_cols, fill=device.g_min)
    tn = to_tiles(g_neg, tile_rows, tile_cols, fill=device.g_min)
    sg = jax.lax.stop_gradient
    xb = program_crossbar(device, sg(tp), sg(tn), key=key, circuit=circuit)
    xb = eqx.tree_at(
        lambda x: (x.pos, x.neg),
        xb,
        (straight_through(device, xb.pos, tp), straight_through(device, xb.neg, tn)),
    )
    return xb, k


def tile_currents(
    crossbar: Crossbar,
    dac: DAC,
    spikes: Float[Array, "*batch n_in"],
    n_out: int,
    t_s,
    *,
    key: PRNGKeyArray | None,
) -> Float[Array, "*batch n_out"]:
    """Column currents (A) of `crossbar` for `spikes`: `xbar.step`, summed over
    row tiles, the padding columns dropped."""
    tr, _ = crossbar.grid
    rows = crossbar.tile_shape[0]
    batch = spikes.shape[:-1]
    pad = [(0, 0)] * len(batch) + [(0, tr * rows - spikes.shape[-1])]
    u = jnp.pad(spikes, pad).reshape(batch + (tr, rows))
    i = step(crossbar, dac, u, t_s, key=None)  # (*b, tr, tc, cols)
    if key is not None:
        # The read noise enters the forward pass, not the gradient: the
        # noise std sqrt(sum v^2 s^2) has an infinite derivative where it is
        # zero (no input spike), which would turn surrogate gradients into
        # NaN. XLA shares the mean product between the two calls.
        noisy = step(crossbar, dac, u, t_s, key=key)
        i = i + jax.lax.stop_gradient(noisy - i)
    return jnp.sum(i, axis=-3).reshape(batch + (-1,))[..., :n_out]


class SpikingLayer(eqx.Module):
    """A crossbar whose columns drive a population of neurons.

    Attributes:
        crossbar: tiles of differential pairs (rows = inputs, cols = neurons).
        dac: row drivers; an input spike is `u = 1` (`v_read` volts).
        neuron: LIF or AdaptiveLIF parameters (scalars or one per neuron).
        g_per_w: siemens per unit weight (for reading weights back).
        inhibition_v: lateral inhibition (V): every spike of the layer lowers
            the membrane of every *other* neuron of the layer by this much at the
            next step (the winner-take-all of Diehl & Cook), >= 0.
        in_features, out_features: inputs and neurons (static).
        bias_a: a constant current (A) into each neuron (a current source
            at its column; NIR's Affine bias), or None.
        recurrent: a crossbar of its own tiles (rows = this layer's neurons,
            cols = the same neurons) driven by the layer's spikes of the
            previous step, whose currents add to the input's; or None. It
            shares the layer's DAC and siemens per unit weight.
    """

    crossbar: Crossbar
    dac: DAC
    neuron: Neuron
    g_per_w: Float[Array, ""]
    inhibition_v: Float[Array, ""]
    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    bias_a: Float[Array, " out_features"] | None = None
    recurrent: Crossbar | None = None

    def __check_init__(self):
        check_range("inhibition_v", self.inhibition_v, 0.0, unit="V")
        tr, tc = self.crossbar.grid
        r, c = self.crossbar.tile_shape
        if self.in_features > tr * r or self.out_features > tc * c:
            raise ValueError(
                f"in_features={self.in_features}, out_features={self.out_features} "
                f"do not fit the crossbar ({tr * r} rows, {tc * c} columns)"
            )
        if self.recurrent is not None:
            tr, tc = self.recurrent.grid
            r, c = self.recurrent.tile_shape
            if self.out_features > min(tr * r, tc * c):
                raise ValueError(
                    f"recurrent: out_features={self.out_features} does not fit "
                    f"its crossbar ({tr * r} rows, {tc * c} columns)"
                )

    @classmethod
    def from_weights(
        cls,
        weight: Float[Array, "out in"],
        device: AbstractDevice,
        *,
        key: PRNGKeyArray,
        dt_s: float,
        neuron: Neuron | None = None,
        w_max: float | Array | None = None,
        dac: DAC | None = None,
        tile_rows: int = 256,
        tile_cols: int = 256,
        inhibition_v: float = 0.0,
        circuit: AbstractCircuit | None = None,
        recurrent: Float[Array, "n n"] | None = None,
    ) -> SpikingLayer:
        """Program `weight` (shape `(out, in)`) and size the membranes to it.

        Args:
            weight: weights in units of threshold per spike.
            device: cell model; `w_max` (default `max |W|`) spans its range.
            key: device-to-device and programming-noise key.
            dt_s: time step (s) the membrane capacitance is sized for.
            neuron: neuron template; its `c_mem_f` is replaced by
                `membrane_capacitance(...)` (default `LIF()`).
            dac: row drivers (default 8-bit, 0.2 V; spikes 0 and 1 are exact).
            tile_rows, tile_cols: tile size (cells).
            inhibition_v: lateral inhibition (V).
            circuit: the tiles' circuit model (default ideal).
            recurrent: recurrent weights `(out, out)` (`[i, j]` from neuron
                `j`'s previous spike to neuron `i`), programmed on tiles of
                their own with the same siemens per unit weight (`w_max`
                then defaults to the largest `|W|` of both); or None.
        """
        check_tile_shape(tile_rows, tile_cols)
        weight = jnp.asarray(weight, jnp.float32)
        if weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (out, in); got shape {weight.shape}")
        dac = DAC() if dac is None else dac
        neuron = LIF() if neuron is None else neuron
        if recurrent is not None:
            recurrent = jnp.asarray(recurrent, jnp.float32)
            n = weight.shape[0]
            if recurrent.shape != (n, n):
                raise ValueError(
                    f"recurrent must be (out, out) = ({n}, {n}); "
                    f"got shape {recurrent.shape}"
                )
        if w_max is None:
            w_max = jnp.max(jnp.abs(jax.lax.stop_gradient(weight)))
            if recurrent is not None:
                w_max = jnp.maximum(
                    w_max, jnp.max(jnp.abs(jax.lax.stop_gradient(recurrent)))
                )
            w_max = jnp.where(w_max > 0, w_max, 1.0)
        w_max = as_param(w_max)
        xb_rec = None
        if recurrent is not None:
            key, k_rec = jax.random.split(key)
            xb_rec = _program(recurrent, device, w_max, k_rec, tile_rows, tile_cols,
                              circuit)[0]
        xb, k = _program(weight, device, w_max, key, tile_rows, tile_cols, circuit)
        lif = neuron.lif
        c = membrane_capacitance(lif.tau_s, dt_s, dac.v_read, k, lif.v_th, lif.v_rest)
        neuron = neuron.with_lif(eqx.tree_at(lambda n: n.c_mem_f, lif, c))
        return cls(
            xb,
            dac,
            neuron,
            k,
            as_param(inhibition_v),
            in_features=int(weight.shape[1]),
            out_features=int(weight.shape[0]),
            recurrent=xb_rec,
        )

    def currents(
        self,
        spikes: Float[Array, "*batch in_features"],
        t_s,
        *,
        key: PRNGKeyArray | None,
    ) -> Float[Array, "*batch out_features"]:
        """Column current (A) into each neuron: `xbar.step`, summed over row tiles."""
        return tile_currents(
            self.crossbar, self.dac, spikes, self.out_features, t_s, key=key
        )

    def recurrent_currents(
        self,
        spikes: Float[Array, "*batch out_features"],
        t_s,
        *,
        key: PRNGKeyArray | None,
    ) -> Float[Array, "*batch out_features"]:
        """Column current (A) of the recurrent crossbar for the layer's own
        `spikes` (of the previous step); zero without one."""
        if self.recurrent is None:
            return jnp.zeros_like(spikes)
        return tile_currents(
            self.recurrent, self.dac, spikes, self.out_features, t_s, key=key
        )

    def effective_weight(self, t_s=0.0) -> Float[Array, "out in"]:
        """Noise-free weights `(G+ - G-) / k` read at `t_s` after programming."""
        g = from_tiles(
            self.crossbar.differential_g(t_s), self.in_features, self.out_features
        )
        return (g / self.g_per_w).T

    def effective_recurrent_weight(self, t_s=0.0) -> Float[Array, "out out"] | None:
        """Noise-free recurrent weights read at `t_s` (None without them)."""
        if self.recurrent is None:
            return None
        n = self.out_features
        g = from_tiles(self.recurrent.differential_g(t_s), n, n)
        return (g / self.g_per_w).T

    def with_crossbar(self, crossbar: Crossbar) -> SpikingLayer:
        """This layer with its crossbar replaced (after plasticity or relaxation)."""
        return eqx.tree_at(lambda m: m.crossbar, self, crossbar)

    def with_recurrent(self, crossbar: Crossbar | None) -> SpikingLayer:
        """This layer with its recurrent crossbar replaced."""
        return eqx.tree_at(
            lambda m: m.recurrent, self, crossbar, is_leaf=lambda x: x is None
        )

    def map_crossbars(self, fn) -> SpikingLayer:
        """This layer with `fn(crossbar)` for its crossbar and recurrent one."""
        lay = self.with_crossbar(fn(self.crossbar))
        if self.recurrent is not None:
            lay = lay.with_recurrent(fn(self.recurrent))
        return lay


class SpikingNetwork(eqx.Module):
    """Feed-forward layers of crossbar synapses and neurons, stepped by `dt_s`."""

    layers: tuple[SpikingLayer, ...]
    dt_s: Float[Array, ""] = eqx.field(converter=as_param)

    def __check_init__(self):
        check_range("dt_s", self.dt_s, 0.0, lo_open=True, unit="s")
        for a, b in zip(self.layers[:-1], self.layers[1:]):
            if a.out_features != b.in_features:
                raise ValueError(
                    f"layer sizes do not chain: out_features={a.out_features} "
                    f"feeds in_features={b.in_features}"
                )

    @classmethod
    def from_weights(cls, weights, device, *, key, dt_s, neurons=None, **kwargs):
        """Layers from `[W (out, in), ...]`; `neurons` one template per layer."""
        keys = jax.random.split(key, len(weights))
        neurons = [None] * len(weights) if neurons is None else list(neurons)
        if len(neurons) != len(weights):
            raise ValueError(
                f"neurons must list one neuron per layer ({len(weights)}); "
                f"got {len(neurons)}"
            )
        layers = tuple(
            SpikingLayer.from_weights(w, device, key=k, dt_s=dt_s, neuron=n, **kwargs)
            for w, k, n in zip(weights, keys, neurons)
        )
        return cls(layers, dt_s)

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].in_features] + [lay.out_features for lay in self.layers]

    def map_crossbars(self, fn) -> SpikingNetwork:
        """The network with every layer's crossbars (recurrent ones included)
        replaced by `fn(crossbar)`."""
        return SpikingNetwork(
            tuple(lay.map_crossbars(fn) for lay in self.layers), self.dt_s
        )
