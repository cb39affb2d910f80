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

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from devices.base import as_param, cell_age
from devices.cached import CachedRead, CachedReadState
from xbar.array.crossbar import Crossbar, relax
from xbar.circuits import noise
from xbar.circuits.ideal import PRECISION, IdealCircuit, safe_sqrt
from xbar.mapping.tiling import from_tiles
from xbar.spiking.network import SpikingLayer, SpikingNetwork
from xbar.spiking.neurons import LIFState
from xbar.spiking.plasticity import PairSTDP, STDPState
from xbar.spiking.run_options import (
    AbstractReadSchedule,
    AbstractRecord,
    EveryStep,
    LogSpacedReads,
    ReadEveryStep,
    _zeros_per_layer,
)


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


def flat_reads(layer: SpikingLayer, t_s, *, noise: bool = True) -> FlatReads | None:
    """`FlatReads` of `layer` at `t_s` after programming (through the device's
    `read_stats`, so drift and the slow read deviation the device keeps in
    its state are included), with the variance when `noise`; None where a
    circuit is not ideal or the cells are not linear-I-V (then the tiled
    `xbar.step` is needed). A recurrent layer's product takes `[input
    spikes, previous spikes]`."""
    xbs = [layer.crossbar] + ([] if layer.recurrent is None else [layer.recurrent])
    if not all(
        isinstance(xb.circuit, IdealCircuit) and xb.device.linear_iv for xb in xbs
    ):
        return None
    n_out = layer.out_features
    gs, vs = [], []
    for xb, n_in in zip(xbs, (layer.in_features, n_out)):
        g_p, s_p, g_n, s_n = xb.read_stats(t_s)
        gs.append(from_tiles(g_p - g_n, n_in, n_out))
        if noise:
            vs.append(from_tiles(s_p * s_p + s_n * s_n, n_in, n_out))
    g = jnp.concatenate(gs, 0) if len(gs) > 1 else gs[0]
    var = None
    if noise:
        var = jnp.concatenate(vs, 0) if len(vs) > 1 else vs[0]
    return FlatReads(g, var)


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
            if lay.recurrent is not None:
                k_rec = None if k_read is None else jax.random.fold_in(k_read, 1)
                i = i + lay.recurrent_currents(s_prev, state.t_s, key=k_rec)
        elif lay.recurrent is None:
            i = flat_currents(lay, rd, inp, key=k_read)
        else:
            i = flat_currents(
                lay, rd, jnp.concatenate([inp, s_prev], -1), key=k_read
            )
        if lay.bias_a is not None:
            i = i + jnp.broadcast_to(lay.bias_a, i.shape)
        if lay.recurrent is not None:
            syn_ops = syn_ops + jnp.sum(s_prev, axis=-1) * lay.out_features
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
        lay = lay.with_crossbar(xb)
        if relax_devices:
            lay = lay.map_crossbars(lambda c: relax(c, dt))
        layers.append(lay)
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


def _stepper(plasticity, relax_devices: bool):
    """The scanned step of a run that reads (and relaxes) every step."""

    def advance(st, x_t, k):
        return network_step(
            st, x_t, key=k, plasticity=plasticity, relax_devices=relax_devices
        )

    return advance


def _crossbars(net: SpikingNetwork) -> list[Crossbar]:
    """Every crossbar of `net`, recurrent ones included."""
    out = []
    for lay in net.layers:
        out.append(lay.crossbar)
        if lay.recurrent is not None:
            out.append(lay.recurrent)
    return out


def _flat_ok(net: SpikingNetwork, plasticity) -> bool:
    return all(p is None for p in plasticity) and all(
        isinstance(xb.circuit, IdealCircuit) and xb.device.linear_iv
        for xb in _crossbars(net)
    )


def _youngest_age(net: SpikingNetwork, t_s) -> Array:
    """The smallest time since the last write over every cell of `net`."""
    ages = [t_s]
    for xb in _crossbars(net):
        for st in (xb.pos, xb.neg):
            age = getattr(st, "age_s", None)
            if age is not None:
                ages.append(jnp.min(cell_age(st, t_s)))
    return jnp.min(jnp.stack([jnp.asarray(a, jnp.float32) for a in ages]))


def _shortest_tau(net: SpikingNetwork) -> Array:
    taus = [jnp.float32(jnp.inf)]
    for xb in _crossbars(net):
        tau = getattr(xb.device, "tau_s", None)
        if tau is not None:
            taus.append(jnp.min(jnp.asarray(tau, jnp.float32)))
    return jnp.min(jnp.stack(taus))


def _run_scheduled(net, x, key, state, record, relax_devices, schedule):
    """A non-plastic `run` as one `lax.scan` over steps. The devices' states
    are never written inside the loop: a read at time `t` reads them relaxed
    by `t - t_start` (relaxation composes exactly), and the final state is
    relaxed once by the whole run. A step whose time the held reads do not
    cover reads the devices again (flat where the circuit is ideal, as
    cached tiles elsewhere), and `schedule.interval` says for how many steps
    that read holds. Only the read sits in a conditional; the step itself
    runs in the flat loop body (on XLA:CPU, a product inside a conditional
    branch or a nested loop runs at a fraction of its speed in the body)."""
    n_steps = x.shape[0]
    batch = x.shape[1:-1]
    keys = None if key is None else jax.random.split(key, n_steps)
    noisy = keys is not None
    dt = net.dt_s
    tau = _shortest_tau(net)
    t_start = state.t_s
    real = state.net

    def relaxed(t_s) -> SpikingNetwork:
        if not relax_devices:
            return real
        return real.map_crossbars(lambda xb: relax(xb, t_s - t_start))

    every = schedule.reads_every_step

    def reads_at(t_s):
        now = relaxed(t_s)
        rd = tuple(flat_reads(lay, t_s, noise=noisy) for lay in now.layers)
        cached = tuple(
            None if r is not None else lay.map_crossbars(
                lambda xb: _cache_reads(xb, t_s)
            )
            for lay, r in zip(now.layers, rd)
        )
        if every:
            return rd, cached, jnp.int32(1)
        m = schedule.interval(_youngest_age(now, t_s), dt, tau)
        return rd, cached, m

    def body(carry, xs):
        lt, rd, cached, valid, acc = carry
        x_t, k = xs
        if every:
            # Read in the step; nothing of the read is carried.
            rd, cached, valid = reads_at(lt[3])
        else:
            rd, cached, valid = jax.lax.cond(
                valid < 1,
                lambda op: reads_at(lt[3]),
                lambda op: op,
                (rd, cached, valid),
            )
        net_ = SpikingNetwork(
            tuple(lay if c is None else c for lay, c in zip(real.layers, cached)),
            real.dt_s,
        )
        st, out = network_step(
            RunState(net_, *lt), x_t, key=k, relax_devices=False, reads=rd
        )
        acc, y = record.add(acc, out)
        lt = (st.neurons, st.traces, st.spikes, st.t_s)
        if every:
            return (lt, None, None, valid, acc), y
        return (lt, rd, cached, valid - 1, acc), y

    rd0, cached0, _ = (None, None, None) if every else reads_at(t_start)
    carry = (
        (state.neurons, state.traces, state.spikes, state.t_s),
        rd0,
        cached0,
        jnp.int32(0),
        record.zero(net, batch),
    )
    (lt, _, _, _, acc), ys = jax.lax.scan(body, carry, (x, keys))
    final = RunState(relaxed(t_start + n_steps * dt), *lt)
    return final, acc, ys


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
    reads: AbstractReadSchedule | None = None,
) -> tuple[RunState, dict]:
    """Run the network over the leading time axis of `x`.

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
        reads: when the devices' read statistics (drifted mean with the slow
            read deviation, fast read-noise std) are re-evaluated:
            `ReadEveryStep()` (exact), `ReadEvery(k)` or `LogSpacedReads()`
            (see each for its error bound); read noise is drawn fresh every
            step under all of them. Default: `LogSpacedReads()` without
            plasticity, `ReadEveryStep()` with (cells change every step; the
            only schedule allowed with plasticity).

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
    plasticity = _plasticity(net, plasticity)
    plastic = any(p is not None for p in plasticity)
    if reads is None:
        reads = ReadEveryStep() if plastic else LogSpacedReads()
    if not isinstance(reads, AbstractReadSchedule):
        raise ValueError(
            "reads must be ReadEveryStep(), ReadEvery(k) or LogSpacedReads() "
            f"(an AbstractReadSchedule); got {reads!r}"
        )
    if plastic and not isinstance(reads, ReadEveryStep):
        raise ValueError(
            "reads must be ReadEveryStep() with plasticity (cells change every step)"
        )
    batch = x.shape[1:-1]
    st0: RunState = (
        init_state(net, batch, t0_s=t0_s, plasticity=plasticity)
        if state is None
        else state
    )
    n_steps = x.shape[0]
    exact = isinstance(reads, ReadEveryStep)
    if plastic or (exact and not _flat_ok(net, plasticity)):
        keys = None if key is None else jax.random.split(key, n_steps)
        final, acc, ys = _scan(
            _stepper(plasticity, relax_devices),
            st0,
            record.zero(net, batch),
            (x, keys),
            record,
        )
    else:
        if not exact and not all(xb.device.linear_iv for xb in _crossbars(net)):
            raise ValueError(
                "reads other than ReadEveryStep() need linear-I-V cells "
                "(device.linear_iv)"
            )
        final, acc, ys = _run_scheduled(
            net, x, key, st0, record, relax_devices, reads
        )
    out = record.result(acc, ys)
    out["dense_ops"] = float(
        n_steps
        * sum(
            (lay.in_features + (lay.recurrent is not None) * lay.out_features)
            * lay.out_features
            for lay in net.layers
        )
    )
    return final, out


# -- cached reads of non-ideal circuits (`run(..., reads=...)`) --------------


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
