"""A run without plasticity under a read schedule: one flat `lax.scan` over
steps in which the devices are only read, never written.

A read at time `t` reads the cells relaxed by `t - t_start` (relaxation
composes exactly for every family here); the final state is relaxed once by
the whole run. A step whose time the held reads do not cover reads the
devices again and `schedule.interval` says for how many steps that read
holds. Layers on ideal circuits with linear-I-V cells are read from their
`FlatCells` (laid out once before the loop, no padding; with scalar ages
while no cell has been pulsed since programming, see `xbar.spiking.flat`);
other layers are read as cached tiles (`devices.CachedRead`). Only the read
sits in a conditional; the step itself runs in the flat loop body (on
XLA:CPU a product inside a conditional branch or a nested loop runs at a
fraction of its speed in the body).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array

from devices.cached import cache_reads as devices_cache_reads
from xbar.array.crossbar import Crossbar, relax
from xbar.spiking.flat import (
    FlatCells,
    flat_cells,
    flat_ok,
    flat_reads,
    layer_crossbars,
    youngest_age,
)
from xbar.spiking.network import SpikingNetwork


def crossbars(net: SpikingNetwork) -> list[Crossbar]:
    """Every crossbar of `net`, recurrent ones included."""
    return [xb for lay in net.layers for xb, _ in layer_crossbars(lay)]


def _shortest_tau(net: SpikingNetwork) -> Array:
    taus = [jnp.float32(jnp.inf)]
    for xb in crossbars(net):
        tau = getattr(xb.device, "tau_s", None)
        if tau is not None:
            taus.append(jnp.min(jnp.asarray(tau, jnp.float32)))
    return jnp.min(jnp.stack(taus))


def cache_reads(crossbar: Crossbar, t_s) -> Crossbar:
    """The crossbar on `devices.CachedRead` cells that read what `crossbar`
    reads at `t_s` (`devices.cache_reads` of each array of the pair; a
    nonlinear I-V raises its ValueError)."""
    cached, pos = devices_cache_reads(crossbar.device, crossbar.pos, t_s)
    _, neg = devices_cache_reads(crossbar.device, crossbar.neg, t_s)
    return Crossbar(cached, pos, neg, crossbar.circuit)


def run_scheduled(net, x, key, state, record, relax_devices, schedule, *, step):
    """The scheduled run (module docstring) of `net` over `x` from `state`
    (a `RunState`), kept by `record`; `step` is `network_step`. Returns
    `(final state, accumulator, per-step records)`."""
    n_steps = x.shape[0]
    batch = x.shape[1:-1]
    keys = None if key is None else jax.random.split(key, n_steps)
    noisy = keys is not None
    dt = net.dt_s
    tau = _shortest_tau(net)
    t_start = state.t_s
    real = state.net
    cells: tuple[FlatCells | None, ...] = tuple(flat_cells(lay) for lay in real.layers)
    with_ages = any(c is not None and c.has_ages() for c in cells)
    fresh_cells = tuple(None if c is None else c.fresh() for c in cells)

    def since_start(t_s):
        return t_s - t_start

    def reads_at(t_s, flat: tuple[FlatCells | None, ...]):
        """Reads of every layer at `t_s`: flat ones from `flat`, the others as
        cached tiles; and for how many steps they hold."""
        rd, cached, ages = [], [], []
        for lay, c in zip(real.layers, flat):
            if c is not None:
                if relax_devices:
                    c = c.relax(since_start(t_s))
                rd.append(c.read(t_s, noise=noisy))
                cached.append(None)
                ages.append(c.youngest_age(t_s))
                continue
            if relax_devices:
                lay = lay.map_crossbars(lambda xb: relax(xb, since_start(t_s)))
            states = [s for xb, _ in layer_crossbars(lay) for s in (xb.pos, xb.neg)]
            ages.append(youngest_age(states, t_s))
            if flat_ok(lay):
                # Readable flat, but a device keeps per-cell parameters that
                # would not follow a re-layout: read the tiles, then flatten.
                rd.append(flat_reads(lay, t_s, noise=noisy))
                cached.append(None)
                continue
            rd.append(None)
            cached.append(lay.map_crossbars(lambda xb: cache_reads(xb, t_s)))
        if schedule.reads_every_step:
            return tuple(rd), tuple(cached), jnp.int32(1)
        m = schedule.interval(jnp.min(jnp.stack(ages)), dt, tau)
        return tuple(rd), tuple(cached), m

    def read_aged(t_s):
        return reads_at(t_s, cells)

    def read_fresh(t_s):
        return reads_at(t_s, fresh_cells)

    # Whether every cell's clock still counts from programming: decided once,
    # before the loop (nothing is written inside it).
    fresh = jnp.all(
        jnp.stack([c.all_fresh() for c in cells if c is not None] or [jnp.bool_(True)])
    )

    def read_now(t_s):
        if not with_ages:
            return read_aged(t_s)
        return jax.lax.cond(fresh, read_fresh, read_aged, t_s)

    every = schedule.reads_every_step

    def body(carry, xs):
        lt, rd, cached, valid, acc = carry
        x_t, k = xs
        t_s = lt[3]
        if every:
            # Read in the step; nothing of the read is carried.
            rd, cached, valid = read_now(t_s)
        elif with_ages:
            branch = jnp.where(valid < 1, jnp.where(fresh, 2, 1), 0)
            rd, cached, valid = jax.lax.switch(
                branch,
                (lambda op: op, lambda op: read_aged(t_s), lambda op: read_fresh(t_s)),
                (rd, cached, valid),
            )
        else:
            rd, cached, valid = jax.lax.cond(
                valid < 1, lambda op: read_aged(t_s), lambda op: op, (rd, cached, valid)
            )
        net_ = SpikingNetwork(
            tuple(lay if c is None else c for lay, c in zip(real.layers, cached)),
            real.dt_s,
        )
        st, out = step(
            type(state)(net_, *lt), x_t, key=k, relax_devices=False, reads=rd
        )
        acc, y = record.add(acc, out)
        lt = (st.neurons, st.traces, st.spikes, st.t_s)
        if every:
            return (lt, None, None, valid, acc), y
        return (lt, rd, cached, valid - 1, acc), y

    rd0, cached0, _ = (None, None, None) if every else read_now(t_start)
    carry = (
        (state.neurons, state.traces, state.spikes, state.t_s),
        rd0,
        cached0,
        jnp.int32(0),
        record.zero(net, batch),
    )
    (lt, _, _, _, acc), ys = jax.lax.scan(body, carry, (x, keys))
    final_net = real
    if relax_devices:
        final_net = real.map_crossbars(lambda xb: relax(xb, n_steps * dt))
    final = type(state)(final_net, *lt)
    return final, acc, ys
