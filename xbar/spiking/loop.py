"""The spiking time loop: one compiled `jax.lax.scan` of circuit, neurons,
plasticity and device physics.

Every time step of `run` (a scan over `network_step`) does, layer by layer:

    spikes {0,1} -> DAC -> row voltages -> crossbar column currents (`xbar.step`,
    with the crossbar's circuit and the devices' read noise, read at the time
    since programming, so drift acts) -> sum over row tiles -> neuron membranes
    (LIF / adaptive LIF) -> spikes -> [STDP -> device pulses -> device.update]
    -> device relax by dt (volatile decay)

so a synapse's short-term decay or its update nonlinearity acts on the network
while it runs.

What a run keeps is an option module: `EveryStep()` (spikes and membranes of
every step) or `SpikeCounts()` (totals over the run, memory independent of its
length). Activity is reported as synaptic operations (NeuroBench's "synaptic
operations": one accumulate per input spike per fan-out synapse) next to the
dense count.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from devices.base import as_param
from devices.cached import CachedRead, CachedReadState
from xbar.array.crossbar import Crossbar, relax
from xbar.circuits import noise
from xbar.circuits.ideal import PRECISION, IdealCircuit, safe_sqrt
from xbar.mapping.tiling import from_tiles
from xbar.spiking.network import SpikingLayer, SpikingNetwork
from xbar.spiking.neurons import LIFState
from xbar.spiking.plasticity import PairSTDP, STDPState


class RunState(eqx.Module):
    """What the time loop carries: the network (its crossbars evolve under
    plasticity and relaxation), membranes, STDP traces, last spikes, time."""

    net: SpikingNetwork
    neurons: tuple[LIFState, ...]
    traces: tuple[STDPState | None, ...]
    spikes: tuple[Array, ...]
    t_s: Float[Array, ""]


def init_state(
    net: SpikingNetwork,
    batch_shape: tuple[int, ...],
    *,
    t0_s: ArrayLike = 1.0,
    plasticity: PairSTDP | tuple[PairSTDP | None, ...] | None = None,
) -> RunState:
    """Neurons at rest, empty traces, `t0_s` seconds after programming."""
    plasticity = _plasticity(net, plasticity)
    return RunState(
        net=net,
        neurons=tuple(
            lay.neuron.init(batch_shape + (lay.out_features,)) for lay in net.layers
        ),
        traces=tuple(
            None
            if p is None
            else p.init(batch_shape, lay.in_features, lay.out_features)
            for p, lay in zip(plasticity, net.layers)
        ),
        spikes=_zeros_per_layer(net, batch_shape),
        t_s=as_param(t0_s),
    )


def _zeros_per_layer(net: SpikingNetwork, batch) -> tuple[Array, ...]:
    return tuple(
        jnp.zeros(batch + (lay.out_features,), jnp.float32) for lay in net.layers
    )


def _plasticity(net, plasticity):
    if plasticity is None:
        return (None,) * len(net.layers)
    if isinstance(plasticity, PairSTDP):
        return (plasticity,) * len(net.layers)
    plasticity = tuple(plasticity)
    if len(plasticity) != len(net.layers):
        raise ValueError(
            f"plasticity must give one rule (or None) per layer ({len(net.layers)});"
            f" got {len(plasticity)}"
        )
    return plasticity


class FlatReads(eqx.Module):
    """A layer's synapses read once, as one matrix: the mean differential
    conductance `G+ - G-` (S) and the read-noise variance `std+^2 + std-^2`
    (S^2) of every synapse, `(in_features, out_features)`, without the
    tiles' padding. With an ideal circuit and linear-I-V cells the column
    currents are then `v @ g` with std `sqrt((v*v) @ var)`: one product
    for the pair (two with read noise) instead of one per tile and cell."""

    g: Float[Array, "in_features out_features"]
    var: Float[Array, "in_features out_features"]


def flat_reads(layer: SpikingLayer, t_s) -> FlatReads | None:
    """`FlatReads` of `layer` at `t_s` after programming (through the device's
    `read_stats`, so drift and any slow read noise the device keeps in its
    state are included), or None where the circuit is not ideal or the cells
    are not linear-I-V (then the tiled `xbar.step` is needed)."""
    xb = layer.crossbar
    if not (isinstance(xb.circuit, IdealCircuit) and xb.device.linear_iv):
        return None
    g_p, s_p, g_n, s_n = xb.read_stats(t_s)
    n_in, n_out = layer.in_features, layer.out_features
    return FlatReads(
        g=from_tiles(g_p - g_n, n_in, n_out),
        var=from_tiles(s_p * s_p + s_n * s_n, n_in, n_out),
    )


def flat_currents(
    layer: SpikingLayer,
    reads: FlatReads,
    spikes: Float[Array, "*batch in_features"],
    *,
    key: PRNGKeyArray | None,
) -> Float[Array, "*batch out_features"]:
    """Column currents (A) from `FlatReads`: the same distribution as
    `SpikingLayer.currents` on an ideal circuit (the per-tile partial sums'
    variances add up to `(v*v) @ var`). Read noise enters the forward pass
    only, as there."""
    v = layer.dac(spikes)
    i = jnp.dot(v, reads.g, precision=PRECISION)
    if key is None:
        return i
    std = safe_sqrt(jnp.dot(v * v, reads.var, precision=PRECISION))
    return i + jax.lax.stop_gradient(std * noise.normal(key, i.shape, i.dtype))


def network_step(
    state: RunState,
    x_t: Float[Array, "*batch in_features"],
    *,
    key: PRNGKeyArray | None,
    plasticity: PairSTDP | tuple[PairSTDP | None, ...] | None = None,
    relax_devices: bool = True,
    reads: tuple[FlatReads | None, ...] | None = None,
) -> tuple[RunState, dict]:
    """One time step of the whole network (see the module docstring).

    Args:
        state: the carried state (`init_state`).
        x_t: input spikes of this step, {0, 1}.
        key: read-noise, rounding and update key; None reads noise-free (then
            only nearest-rounding plasticity on noise-free devices is allowed).
        plasticity: one `PairSTDP` or None per layer.
        relax_devices: evolve every cell by `dt` with no input (volatile decay).
        reads: per layer, `FlatReads` to take the currents from (read earlier,
            e.g. at the start of a block of steps) or None for a read of the
            crossbar now (`SpikingLayer.currents`).

    Returns:
        (state, out): `out` has per layer the spikes `"s"` and membranes `"v"`
        (tuples) and the synaptic operations `"syn_ops"` of this step (*batch).
    """
    net = state.net
    plasticity = _plasticity(net, plasticity)
    dt = net.dt_s
    n = len(net.layers)
    keys = None if key is None else list(jax.random.split(key, 2 * n))
    layers, neurons, traces, spikes, vs = [], [], [], [], []
    syn_ops = jnp.zeros(x_t.shape[:-1], jnp.float32)
    inp = x_t
    for li, (lay, ns, tr, s_prev, rule) in enumerate(
        zip(net.layers, state.neurons, state.traces, state.spikes, plasticity)
    ):
        k_read = None if keys is None else keys[2 * li]
        rd = None if reads is None else reads[li]
        if rd is None:
            i = lay.currents(inp, state.t_s, key=k_read)
        else:
            i = flat_currents(lay, rd, inp, key=k_read)
        if lay.bias_a is not None:
            i = i + jnp.broadcast_to(lay.bias_a, i.shape)
        syn_ops = syn_ops + jnp.sum(inp, axis=-1) * lay.out_features
        if lay.out_features > 1:
            inh = lay.inhibition_v * (jnp.sum(s_prev, axis=-1, keepdims=True) - s_prev)
            ns = eqx.tree_at(lambda st: st.v, ns, ns.v - inh)
        ns, s = lay.neuron(ns, i, dt)
        xb = lay.crossbar
        if rule is not None:
            if keys is None:
                raise ValueError("plasticity needs a key (rounding and device noise)")
            if tr is None:
                raise ValueError(
                    "plasticity needs STDP traces: start from "
                    "init_state(..., plasticity=...) with the same rules"
                )
            xb, tr, _ = rule(xb, tr, inp, s, dt, key=keys[2 * li + 1])
        if relax_devices:
            xb = relax(xb, dt)
        layers.append(lay.with_crossbar(xb))
        neurons.append(ns)
        traces.append(tr)
        spikes.append(s)
        vs.append(ns.v)
        inp = s
    new = RunState(
        net=SpikingNetwork(tuple(layers), net.dt_s),
        neurons=tuple(neurons),
        traces=tuple(traces),
        spikes=tuple(spikes),
        t_s=state.t_s + dt,
    )
    return new, {"s": tuple(spikes), "v": tuple(vs), "syn_ops": syn_ops}


# -- what a run keeps ---------------------------------------------------------


class AbstractRecord(eqx.Module):
    """What `run` keeps of the steps: an accumulator carried through the scan
    and a per-step output that the scan stacks."""

    @abc.abstractmethod
    def zero(self, net: SpikingNetwork, batch: tuple[int, ...]) -> Any:
        """The accumulator before the first step."""

    @abc.abstractmethod
    def add(self, acc, out: dict) -> tuple[Any, Any]:
        """`(acc, y)` after one step whose `network_step` output is `out` (or
        after a block of steps whose `of_block` is `out`); the scan stacks `y`."""

    @abc.abstractmethod
    def of_block(self, acc, ys) -> dict:
        """What a block of steps (its accumulator and stacked outputs) adds, in
        the form `add` takes."""

    @abc.abstractmethod
    def result(self, acc, ys) -> dict:
        """The record `run` returns (before `dense_ops`)."""


class EveryStep(AbstractRecord):
    """Spikes `"s"` and membranes `"v"` (tuples per layer, `(time, *batch, n)`)
    and synaptic operations `"syn_ops"` `(time, *batch)` of every step."""

    def zero(self, net, batch):
        return ()

    def add(self, acc, out):
        return acc, out

    def of_block(self, acc, ys):
        return ys

    def result(self, acc, ys):
        return dict(ys)


class SpikeCounts(AbstractRecord):
    """Spike counts `"counts"` (per layer, `(*batch, n)`) and synaptic
    operations `"syn_ops"` `(*batch,)` summed over the run: memory
    independent of the number of steps."""

    def zero(self, net, batch):
        return {
            "s": _zeros_per_layer(net, batch),
            "syn_ops": jnp.zeros(batch, jnp.float32),
        }

    def add(self, acc, out):
        acc = {
            "s": tuple(a + s for a, s in zip(acc["s"], out["s"])),
            "syn_ops": acc["syn_ops"] + out["syn_ops"],
        }
        return acc, None

    def of_block(self, acc, ys):
        return acc

    def result(self, acc, ys):
        return {"counts": acc["s"], "syn_ops": acc["syn_ops"]}


def _scan(advance, state: RunState, acc, xs, record: AbstractRecord):
    """`lax.scan` of `advance(state, x, key) -> (state, out)` over `xs = (x,
    keys)` (keys None for noise-free reads), kept by `record`."""

    def body(carry, xs_t):
        st, a = carry
        x_t, k = xs_t
        st, out = advance(st, x_t, k)
        a, y = record.add(a, out)
        return (st, a), y

    (state, acc), ys = jax.lax.scan(body, (state, acc), xs)
    return state, acc, ys


def _stepper(plasticity, relax_devices: bool, flat: bool = False):
    """The scanned step; `flat` reads every layer as `FlatReads` at the
    step's time (non-plastic networks on ideal circuits)."""

    def advance(st, x_t, k):
        reads = (
            tuple(flat_reads(lay, st.t_s) for lay in st.net.layers) if flat else None
        )
        return network_step(
            st,
            x_t,
            key=k,
            plasticity=plasticity,
            relax_devices=relax_devices,
            reads=reads,
        )

    return advance


def _flat_ok(net: SpikingNetwork, plasticity) -> bool:
    return all(p is None for p in plasticity) and all(
        isinstance(lay.crossbar.circuit, IdealCircuit) and lay.crossbar.device.linear_iv
        for lay in net.layers
    )


def run(
    net: SpikingNetwork,
    x: Float[Array, "time *batch in_features"],
    *,
    key: PRNGKeyArray | None,
    t0_s: ArrayLike = 1.0,
    plasticity: tuple[PairSTDP | None, ...] | PairSTDP | None = None,
    state: RunState | None = None,
    record: AbstractRecord = EveryStep(),
    relax_devices: bool = True,
    read_every: int = 1,
) -> tuple[RunState, dict]:
    """Run the network over the leading time axis of `x` in one `lax.scan`.

    Args:
        net: the network.
        x: input spikes, `(time, *batch, in_features)`.
        key: PRNG key (split per step), or None for noise-free reads.
        t0_s: time since programming at the first step (s), when `state` is None.
        plasticity: STDP per layer (or one rule for all, or None).
        state: continue from this state instead of a fresh one.
        record: `EveryStep()` (spikes and membranes per step) or
            `SpikeCounts()` (spike counts and synaptic operations summed over
            time: memory independent of the number of steps).
        relax_devices: evolve every cell by `dt` each step (volatile decay).
        read_every: re-evaluate the devices' read statistics (drifted mean,
            read-noise std) every this many steps and relax the cells by
            `read_every dt` at the end of each block, instead of every step
            (default 1: exact). Read noise is still drawn fresh every step.
            An approximation for long runs of non-plastic networks: within a
            block, drift is frozen at the block's start (for power-law drift
            `(1 + t/t0)^-nu` the relative error is at most
            `nu read_every dt / (t0 + t)`); exponential volatile decay composes
            exactly. Needs `plasticity=None`, linear-I-V cells and a number
            of steps divisible by `read_every`.

    Returns:
        (final state, record): what `record` keeps (its docstring), plus
        `dense_ops`, the synaptic operations of a dense (non-spiking) pass per
        example over the run.
    """
    if not isinstance(record, AbstractRecord):
        raise ValueError(
            f"record must be EveryStep() or SpikeCounts() (an AbstractRecord); "
            f"got {record!r}"
        )
    batch = x.shape[1:-1]
    plasticity = _plasticity(net, plasticity)
    if state is None:
        state = init_state(net, batch, t0_s=t0_s, plasticity=plasticity)
    n_steps = x.shape[0]
    if read_every != 1:
        state, acc, ys = _run_blocks(
            net, x, key, plasticity, state, record, relax_devices, read_every
        )
    else:
        keys = None if key is None else jax.random.split(key, n_steps)
        state, acc, ys = _scan(
            _stepper(plasticity, relax_devices, flat=_flat_ok(net, plasticity)),
            state,
            record.zero(net, batch),
            (x, keys),
            record,
        )
    out = record.result(acc, ys)
    out["dense_ops"] = float(
        n_steps * sum(lay.in_features * lay.out_features for lay in net.layers)
    )
    return state, out


# -- cached reads: `run(..., read_every=k)` -----------------------------------


def _cache_reads(crossbar: Crossbar, t_s) -> Crossbar:
    """The crossbar on `devices.CachedRead` cells that read what `crossbar`
    reads at `t_s` (one `read_stats` of the pair)."""
    dev = crossbar.device
    if not dev.linear_iv:
        raise ValueError("read_every > 1 needs linear-I-V cells (device.linear_iv)")
    g_p, s_p, g_n, s_n = crossbar.read_stats(t_s)
    return Crossbar(
        CachedRead(dev.g_min, dev.g_max),
        CachedReadState(g=g_p, std=s_p),
        CachedReadState(g=g_n, std=s_n),
        crossbar.circuit,
    )


def _run_blocks(net, x, key, plasticity, state, record, relax_devices, k):
    """`run` in blocks of `k` steps, each on reads cached at its start."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"read_every must be an integer >= 1; got {k!r}")
    if any(p is not None for p in plasticity):
        raise ValueError("read_every > 1 needs plasticity=None (cells change)")
    n_steps = x.shape[0]
    if n_steps % k:
        raise ValueError(f"read_every={k} must divide the number of steps ({n_steps})")
    n_blocks = n_steps // k
    x_blocks = x.reshape((n_blocks, k) + x.shape[1:])
    keys = None if key is None else jax.random.split(key, n_blocks)
    batch = x.shape[1:-1]

    def block(st, x_blk, kb):
        real = st.net
        # Read every layer once per block: as one flat matrix where the
        # circuit is ideal, else as cached reads on the tiles.
        reads = tuple(flat_reads(lay, st.t_s) for lay in real.layers)
        cached = SpikingNetwork(
            tuple(
                lay
                if rd is not None
                else lay.with_crossbar(_cache_reads(lay.crossbar, st.t_s))
                for lay, rd in zip(real.layers, reads)
            ),
            real.dt_s,
        )

        def step(st_, x_t, k_):
            return network_step(
                st_,
                x_t,
                key=k_,
                plasticity=plasticity,
                relax_devices=False,
                reads=reads,
            )

        st_c, acc, ys = _scan(
            step,
            eqx.tree_at(lambda s: s.net, st, cached),
            record.zero(net, batch),
            (x_blk, None if kb is None else jax.random.split(kb, k)),
            record,
        )
        if relax_devices:
            real = real.map_crossbars(lambda xb: relax(xb, k * real.dt_s))
        return eqx.tree_at(lambda s: s.net, st_c, real), record.of_block(acc, ys)

    state, acc, ys = _scan(
        block, state, record.zero(net, batch), (x_blocks, keys), record
    )
    ys = jax.tree.map(lambda a: a.reshape((n_steps,) + a.shape[2:]), ys)
    return state, acc, ys
