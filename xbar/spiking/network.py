"""Spiking networks on crossbars: one compiled time loop of circuit, neurons,
plasticity and device physics.

Every time step of `run` (a `jax.lax.scan` over `network_step`) does, layer by
layer:

    spikes {0,1} -> DAC -> row voltages -> crossbar column currents (`xbar.step`,
    with the crossbar's circuit and the devices' read noise, read at the time
    since programming, so drift acts) -> sum over row tiles -> neuron membranes
    (LIF / adaptive LIF) -> spikes -> [STDP -> device pulses -> device.update]
    -> device relax by dt (volatile decay)

so a synapse's short-term decay or its update nonlinearity acts on the network
while it runs. The static matrix-vector product of `AnalogLinear` is the same
`xbar.step`.

Weights and membranes: a layer built `from_weights` stores the weight matrix as
`G+ - G- = k W` (`k` siemens per unit weight, `xbar.map_matrix`) and gets a
membrane capacitance chosen so that one input spike through a unit weight moves
an LIF neuron from rest by `v_th - v_rest` in one step
(`C = tau v_read k (1 - exp(-dt/tau)) / (v_th - v_rest)`): weights are in units
of "threshold per spike", whatever the device's conductance range.

Activity is reported as synaptic operations (NeuroBench's "synaptic operations":
one accumulate per input spike per fan-out synapse) next to the dense count.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from devices.base import AbstractDevice, AbstractDeviceState, as_param, check_range
from xbar.array.crossbar import Crossbar, program_crossbar, relax, step
from xbar.circuits.ideal import AbstractCircuit
from xbar.mapping.tiling import (
    check_tile_shape,
    conductance_targets,
    from_tiles,
    to_tiles,
)
from xbar.periphery.converters import DAC
from xbar.spiking.neurons import LIF, AdaptiveLIF, LIFState
from xbar.spiking.plasticity import PairSTDP, STDPState

Neuron = LIF | AdaptiveLIF


def base_lif(neuron: Neuron) -> LIF:
    return neuron.lif if isinstance(neuron, AdaptiveLIF) else neuron


def membrane_capacitance(tau_s, dt_s, v_read, g_per_w, v_th, v_rest=0.0):
    """Capacitance (F) for which one spike through a unit weight, held for one
    step, moves the membrane from rest by `v_th - v_rest`."""
    return tau_s * v_read * g_per_w * -jnp.expm1(-dt_s / tau_s) / (v_th - v_rest)


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
        n_in, n_out: inputs and neurons (static).
    """

    crossbar: Crossbar
    dac: DAC
    neuron: Neuron
    g_per_w: Float[Array, ""]
    inhibition_v: Float[Array, ""]
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)

    def __check_init__(self):
        check_range("inhibition_v", self.inhibition_v, 0.0, unit="V")
        tr, tc = self.crossbar.grid
        r, c = self.crossbar.tile_shape
        if self.n_in > tr * r or self.n_out > tc * c:
            raise ValueError(
                f"n_in={self.n_in}, n_out={self.n_out} do not fit the crossbar "
                f"({tr * r} rows, {tc * c} columns)"
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
        """
        check_tile_shape(tile_rows, tile_cols)
        weight = jnp.asarray(weight, jnp.float32)
        if weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (out, in); got shape {weight.shape}")
        dac = DAC() if dac is None else dac
        neuron = LIF() if neuron is None else neuron
        if w_max is None:
            w_max = jnp.max(jnp.abs(jax.lax.stop_gradient(weight)))
            w_max = jnp.where(w_max > 0, w_max, 1.0)
        g_pos, g_neg, k = conductance_targets(weight.T, device, as_param(w_max))
        tp = to_tiles(g_pos, tile_rows, tile_cols, fill=device.g_min)
        tn = to_tiles(g_neg, tile_rows, tile_cols, fill=device.g_min)
        xb = program_crossbar(device, tp, tn, key=key, circuit=circuit)
        # Straight-through: the forward pass sees the programmed (noisy, level-
        # quantized) conductances, the gradient flows to the targets.
        xb = eqx.tree_at(
            lambda x: (x.pos.g, x.neg.g),
            xb,
            (
                tp + jax.lax.stop_gradient(xb.pos.g - tp),
                tn + jax.lax.stop_gradient(xb.neg.g - tn),
            ),
        )
        lif = base_lif(neuron)
        c = membrane_capacitance(lif.tau_s, dt_s, dac.v_read, k, lif.v_th, lif.v_rest)
        lif = eqx.tree_at(lambda n: n.c_mem_f, lif, c)
        neuron = (
            eqx.tree_at(lambda n: n.lif, neuron, lif)
            if isinstance(neuron, AdaptiveLIF)
            else lif
        )
        return cls(
            xb,
            dac,
            neuron,
            k,
            as_param(inhibition_v),
            int(weight.shape[1]),
            int(weight.shape[0]),
        )

    def currents(
        self, spikes: Float[Array, "*batch n_in"], t_s, *, key: PRNGKeyArray | None
    ) -> Float[Array, "*batch n_out"]:
        """Column current (A) into each neuron: `xbar.step`, summed over row tiles."""
        tr, _ = self.crossbar.grid
        rows = self.crossbar.tile_shape[0]
        batch = spikes.shape[:-1]
        pad = [(0, 0)] * len(batch) + [(0, tr * rows - self.n_in)]
        u = jnp.pad(spikes, pad).reshape(batch + (tr, rows))
        i = step(self.crossbar, self.dac, u, t_s, key=None)  # (*b, tr, tc, cols)
        if key is not None:
            # The read noise enters the forward pass, not the gradient: the
            # noise std sqrt(sum v^2 s^2) has an infinite derivative where it is
            # zero (no input spike), which would turn surrogate gradients into
            # NaN. XLA shares the mean product between the two calls.
            noisy = step(self.crossbar, self.dac, u, t_s, key=key)
            i = i + jax.lax.stop_gradient(noisy - i)
        return jnp.sum(i, axis=-3).reshape(batch + (-1,))[..., : self.n_out]

    def weight(self, t_s=0.0) -> Float[Array, "out in"]:
        """Noise-free weights `(G+ - G-) / k` read at `t_s` after programming."""
        dev = self.crossbar.device
        g_p, _ = dev.read_stats(self.crossbar.pos, t_s)
        g_n, _ = dev.read_stats(self.crossbar.neg, t_s)
        return (from_tiles(g_p - g_n, self.n_in, self.n_out) / self.g_per_w).T


class SpikingNetwork(eqx.Module):
    """Feed-forward layers of crossbar synapses and neurons, stepped by `dt_s`."""

    layers: tuple[SpikingLayer, ...]
    dt_s: Float[Array, ""] = eqx.field(converter=as_param)

    def __check_init__(self):
        check_range("dt_s", self.dt_s, 0.0, lo_open=True, unit="s")
        for a, b in zip(self.layers[:-1], self.layers[1:]):
            if a.n_out != b.n_in:
                raise ValueError(
                    f"layer sizes do not chain: n_out={a.n_out} feeds n_in={b.n_in}"
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
        return [self.layers[0].n_in] + [lay.n_out for lay in self.layers]


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
    t0_s=1.0,
    plasticity: PairSTDP | tuple[PairSTDP | None, ...] | None = None,
) -> RunState:
    """Neurons at rest, empty traces, `t0_s` seconds after programming."""
    plasticity = _plasticity(net, plasticity)
    return RunState(
        net=net,
        neurons=tuple(
            lay.neuron.init(batch_shape + (lay.n_out,)) for lay in net.layers
        ),
        traces=tuple(
            None if p is None else p.init(batch_shape, lay.n_in, lay.n_out)
            for p, lay in zip(plasticity, net.layers)
        ),
        spikes=tuple(
            jnp.zeros(batch_shape + (lay.n_out,), jnp.float32) for lay in net.layers
        ),
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
    x_t: Float[Array, "*batch n_in"],
    *,
    key: PRNGKeyArray | None,
    plasticity: PairSTDP | tuple[PairSTDP | None, ...] | None = None,
    relax_devices: bool = True,
) -> tuple[RunState, dict]:
    """One time step of the whole network (see the module docstring).

    Args:
        state: the carried state (`init_state`).
        x_t: input spikes of this step, {0, 1}.
        key: read-noise, rounding and update key; None reads noise-free (then
            only nearest-rounding plasticity on noise-free devices is allowed).
        plasticity: one `PairSTDP` or None per layer.
        relax_devices: evolve every cell by `dt` with no input (volatile decay).

    Returns:
        (state, out): `out` has per layer the spikes `"s"` and membranes `"v"`
        (tuples) and the synaptic operations `"syn_ops"` of this step (*batch).
    """
    net = state.net
    plasticity = _plasticity(net, plasticity)
    dt = net.dt_s
    n = len(net.layers)
    keys = [None] * n if key is None else list(jax.random.split(key, 2 * n))
    layers, neurons, traces, spikes, vs = [], [], [], [], []
    syn_ops = jnp.zeros(x_t.shape[:-1], jnp.float32)
    inp = x_t
    for li, (lay, ns, tr, s_prev, rule) in enumerate(
        zip(net.layers, state.neurons, state.traces, state.spikes, plasticity)
    ):
        k_read = keys[2 * li] if key is not None else None
        i = lay.currents(inp, state.t_s, key=k_read)
        syn_ops = syn_ops + jnp.sum(inp, axis=-1) * lay.n_out
        if lay.n_out > 1:
            inh = lay.inhibition_v * (jnp.sum(s_prev, axis=-1, keepdims=True) - s_prev)
            ns = LIFState(v=ns.v - inh, ref_s=ns.ref_s, a=ns.a)
        ns, s = lay.neuron(ns, i, dt)
        xb = lay.crossbar
        if rule is not None:
            if key is None:
                raise ValueError("plasticity needs a key (rounding and device noise)")
            xb, tr, _ = rule(xb, tr, inp, s, dt, key=keys[2 * li + 1])
        if relax_devices:
            xb = relax(xb, dt)
        layers.append(eqx.tree_at(lambda m: m.crossbar, lay, xb))
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


def _zero_counts(net, batch):
    """Scan carry of the spike-count and synaptic-op accumulators, zeroed."""
    return (
        tuple(jnp.zeros(batch + (lay.n_out,), jnp.float32) for lay in net.layers),
        jnp.zeros(batch, jnp.float32),
    )


def _dense_ops(net, n_steps) -> float:
    """Synaptic operations of the same network run densely for `n_steps`."""
    return float(n_steps * sum(lay.n_in * lay.n_out for lay in net.layers))


def run(
    net: SpikingNetwork,
    x: Float[Array, "time *batch n_in"],
    *,
    key: PRNGKeyArray | None,
    t0_s=1.0,
    plasticity: tuple[PairSTDP | None, ...] | PairSTDP | None = None,
    state: RunState | None = None,
    record: str = "all",
    relax_devices: bool = True,
    read_every: int = 1,
) -> tuple[RunState, dict]:
    """Run the network over the leading time axis of `x` in one `lax.scan`.

    Args:
        net: the network.
        x: input spikes, `(time, *batch, n_in)`.
        key: PRNG key (split per step), or None for noise-free reads.
        t0_s: time since programming at the first step (s), when `state` is None.
        plasticity: STDP per layer (or one rule for all, or None).
        state: continue from this state instead of a fresh one.
        record: "all" (spikes and membranes per step, `(time, *batch, n)`) or
            "counts" (spike counts and synaptic operations summed over time:
            memory independent of the number of steps).
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
        (final state, record): "all" gives `s`, `v` (tuples per layer) and
        `syn_ops` per step; "counts" gives `counts` (per layer, `(*batch, n)`)
        and `syn_ops` `(*batch,)`. Both give `dense_ops`, the synaptic
        operations of a dense (non-spiking) pass per example over the run.
    """
    if record not in ("all", "counts"):
        raise ValueError(f"record must be 'all' or 'counts'; got {record!r}")
    batch = x.shape[1:-1]
    plasticity = _plasticity(net, plasticity)
    if state is None:
        state = init_state(net, batch, t0_s=t0_s, plasticity=plasticity)
    n_steps = x.shape[0]
    if read_every != 1:
        return _run_blocks(
            net, x, key, plasticity, state, record, relax_devices, read_every
        )
    keys = None if key is None else jax.random.split(key, n_steps)

    def body(carry, xs):
        st, acc = carry
        x_t, k = xs if keys is not None else (xs, None)
        st, out = network_step(
            st, x_t, key=k, plasticity=plasticity, relax_devices=relax_devices
        )
        if record == "counts":
            acc = (
                tuple(a + s for a, s in zip(acc[0], out["s"])),
                acc[1] + out["syn_ops"],
            )
            return (st, acc), None
        return (st, acc), out

    xs = x if keys is None else (x, keys)
    (state, acc), out = jax.lax.scan(body, (state, _zero_counts(net, batch)), xs)
    dense = _dense_ops(net, n_steps)
    if record == "counts":
        return state, {"counts": acc[0], "syn_ops": acc[1], "dense_ops": dense}
    out["dense_ops"] = dense
    return state, out


class _CachedRead(AbstractDevice):
    """A device whose reads return stored statistics: another device's
    `read_stats` evaluated once (used by `run(..., read_every=k)`)."""

    g_min: Float[Array, ""]
    g_max: Float[Array, ""]

    def init(self, shape, *, key=None):
        raise NotImplementedError("a cached read cannot be fabricated")

    def program(self, state, g_target, *, key=None):
        raise NotImplementedError("a cached read cannot be programmed")

    def update(self, state, pulses, *, key=None):
        raise NotImplementedError("a cached read cannot be updated")

    def read_stats(self, state, t_s=0.0):
        del t_s
        return state.g, state.std


class _CachedReadState(AbstractDeviceState):
    g: Float[Array, "*cells"]
    std: Float[Array, "*cells"]


def _cache_reads(crossbar: Crossbar, t_s) -> Crossbar:
    dev = crossbar.device
    if not dev.linear_iv:
        raise ValueError("read_every > 1 needs linear-I-V cells (device.linear_iv)")
    pos = _CachedReadState(*dev.read_stats(crossbar.pos, t_s))
    neg = _CachedReadState(*dev.read_stats(crossbar.neg, t_s))
    return Crossbar(_CachedRead(dev.g_min, dev.g_max), pos, neg, crossbar.circuit)


def _run_blocks(net, x, key, plasticity, state, record, relax_devices, k):
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"read_every must be an integer >= 1; got {k!r}")
    if any(p is not None for p in plasticity):
        raise ValueError("read_every > 1 needs plasticity=None (cells change)")
    n_steps = x.shape[0]
    if n_steps % k:
        raise ValueError(f"read_every={k} must divide the number of steps ({n_steps})")
    n_blocks = n_steps // k
    xb = x.reshape((n_blocks, k) + x.shape[1:])
    keys = None if key is None else jax.random.split(key, n_blocks)
    batch = x.shape[1:-1]

    def block(carry, xs):
        st, acc = carry
        x_blk, kb = xs if keys is not None else (xs, None)
        real = st.net
        cached = SpikingNetwork(
            tuple(
                eqx.tree_at(
                    lambda m: m.crossbar, lay, _cache_reads(lay.crossbar, st.t_s)
                )
                for lay in real.layers
            ),
            real.dt_s,
        )
        st_c, out = run(
            cached,
            x_blk,
            key=kb,
            state=eqx.tree_at(lambda s: s.net, st, cached),
            record=record,
            relax_devices=False,
        )
        layers = real.layers
        if relax_devices:
            layers = tuple(
                eqx.tree_at(
                    lambda m: m.crossbar, lay, relax(lay.crossbar, k * real.dt_s)
                )
                for lay in layers
            )
        st = eqx.tree_at(lambda s: s.net, st_c, SpikingNetwork(layers, real.dt_s))
        if record == "counts":
            acc = (
                tuple(a + c for a, c in zip(acc[0], out["counts"])),
                acc[1] + out["syn_ops"],
            )
            return (st, acc), None
        out.pop("dense_ops")
        return (st, acc), out

    xs = xb if keys is None else (xb, keys)
    (state, acc), out = jax.lax.scan(block, (state, _zero_counts(net, batch)), xs)
    dense = _dense_ops(net, n_steps)
    if record == "counts":
        return state, {"counts": acc[0], "syn_ops": acc[1], "dense_ops": dense}
    out = jax.tree.map(lambda a: a.reshape((n_steps,) + a.shape[2:]), out)
    out["dense_ops"] = dense
    return state, out


def rate_encode(
    x: Float[Array, "*batch n"], n_steps: int, *, key: PRNGKeyArray, p_max: float = 0.5
) -> Float[Array, "time *batch n"]:
    """Bernoulli rate code: input x in [0, 1] spikes with probability `p_max x`
    per step."""
    check_range("p_max", p_max, 0.0, 1.0, lo_open=True)
    p = jnp.clip(x, 0.0, 1.0) * p_max
    u = jax.random.uniform(key, (n_steps,) + x.shape, jnp.float32)
    return (u < p[None]).astype(jnp.float32)
