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

from devices.base import as_param
from xbar.array.crossbar import relax
from xbar.spiking.flat import (  # noqa: F401 (flat_reads re-exported)
    FlatReads,
    flat_currents,
    flat_ok,
    flat_reads,
)
from xbar.spiking.network import SpikingNetwork
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
from xbar.spiking.scheduled import crossbars, run_scheduled


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
    if plastic or (exact and not all(flat_ok(lay) for lay in net.layers)):
        keys = None if key is None else jax.random.split(key, n_steps)
        final, acc, ys = _scan(
            _stepper(plasticity, relax_devices),
            st0,
            record.zero(net, batch),
            (x, keys),
            record,
        )
    else:
        if not exact and not all(xb.device.linear_iv for xb in crossbars(net)):
            raise ValueError(
                "reads other than ReadEveryStep() need linear-I-V cells "
                "(device.linear_iv)"
            )
        final, acc, ys = run_scheduled(
            net, x, key, st0, record, relax_devices, reads, step=network_step
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
