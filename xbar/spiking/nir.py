"""Neuromorphic Intermediate Representation (NIR) import and export.

NIR (Pedersen et al., Nat. Commun. 15, 8122 (2024), doi 10.1038/s41467-024-52259-9)
is the graph format snnTorch, Norse, spyx, Rockpool, Lava and others exchange.
We read and write chains `Input -> (Linear | Affine) -> (LIF | CubaLIF) -> ...
-> Output`.

NIR's LIF is `tau dv/dt = (v_leak - v) + r I`, the ODE of `xbar.LIF` with
`v_leak = v_rest` and `r = tau / C`. On export a layer's synapse becomes a
`Linear` whose weight is the noise-free column current per input spike,
`W = v_read (G+ - G-)^T` (amperes), and its neurons a `LIF` with their own
`tau`, `r`, `v_threshold`, `v_reset`, `v_leak`. The time step and refractory
periods (which NIR's LIF lacks) go into metadata.

On import a weight matrix `W` is mapped onto a crossbar with `G+ - G- = k W`
(`k` siemens per unit of `W`), so an input spike drives `v_read k W`; the
membrane resistance becomes `r / (v_read k)` (capacitance `tau v_read k / r`)
so that `R I` -- the only way the current enters the ODE -- is what NIR says.
Spikes are read as discrete-time {0, 1} events at the time step `dt_s`, the
convention of snnTorch and of NIR graphs exported from discrete-time
simulators. An `Affine` bias `b` becomes a constant current `v_read k b` into
each neuron (`SpikingLayer.bias_a`, exported back as the Affine's bias); a
`CubaLIF` becomes `xbar.spiking.CubaLIF` (its `tau_syn`, `w_in` kept, the
membrane as for LIF). Other node types raise `ValueError`.

Recurrence is a cycle in the graph's edges: a layer's recurrent synapses are
a `Linear` node `rec<i>` with the edges `lif<i> -> rec<i> -> lif<i>` (its
weight `v_read (G+ - G-)^T` of the recurrent crossbar); on import every
`Linear` (or zero-bias `Affine`) node that a neuron node both feeds and is
fed by becomes that layer's recurrent crossbar. As in discrete-time
simulators (snnTorch's `RLeaky`), the recurrent input of a step is the
layer's spikes of the previous step.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from devices.base import AbstractDevice
from xbar.periphery.converters import DAC
from xbar.spiking.network import SpikingLayer, SpikingNetwork
from xbar.spiking.neurons import LIF, AdaptiveLIF, CubaLIF


def _lif_node(lif, n: int):
    """A NIR `LIF` node of `n` neurons with `lif`'s parameters (the
    refractory time, which NIR's LIF lacks, in its metadata)."""
    import nir

    def full(p):
        return np.broadcast_to(np.asarray(p, np.float32), (n,)).copy()

    return nir.LIF(
        tau=full(lif.tau_s),
        r=full(lif.r_ohm),
        v_leak=full(lif.v_rest),
        v_threshold=full(lif.v_th),
        v_reset=full(lif.v_reset),
        metadata={"t_ref_s": full(lif.t_ref_s)},
    )


def _scalar_or_array(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.reshape(-1)[:1].reshape(()) if x.size > 0 and np.all(x == x.flat[0]) else x


def to_nir(net: SpikingNetwork, *, t_s=1.0):
    """Export `net` (its weights read noise-free at `t_s` after programming) to NIR."""
    import nir

    if any(isinstance(lay.neuron, AdaptiveLIF) for lay in net.layers):
        raise ValueError("NIR has no adaptive-threshold LIF; export LIF layers only")
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type={"input": np.array([net.layers[0].in_features])})
    }
    edges = []
    prev = "input"
    for i, lay in enumerate(net.layers):
        lif = lay.neuron.lif
        n = lay.out_features
        g_diff = np.asarray(lay.effective_weight(t_s) * lay.g_per_w)  # (out, in) S
        w = (float(lay.dac.v_read) * g_diff).astype(np.float32)

        def full(p):
            return np.broadcast_to(np.asarray(p, np.float32), (n,)).copy()

        if lay.bias_a is None:
            nodes[f"fc{i}"] = nir.Linear(weight=w)
        else:
            nodes[f"fc{i}"] = nir.Affine(weight=w, bias=full(lay.bias_a))
        if isinstance(lay.neuron, CubaLIF):
            nodes[f"lif{i}"] = nir.CubaLIF(
                tau_syn=full(lay.neuron.tau_syn_s),
                tau_mem=full(lif.tau_s),
                r=full(lif.r_ohm),
                v_leak=full(lif.v_rest),
                v_threshold=full(lif.v_th),
                v_reset=full(lif.v_reset),
                w_in=full(lay.neuron.w_in),
                metadata={"t_ref_s": full(lif.t_ref_s)},
            )
        else:
            nodes[f"lif{i}"] = _lif_node(lif, n)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        w_rec = lay.effective_recurrent_weight(t_s)
        if w_rec is not None:
            g_rec = np.asarray(w_rec * lay.g_per_w)
            nodes[f"rec{i}"] = nir.Linear(
                weight=(float(lay.dac.v_read) * g_rec).astype(np.float32)
            )
            edges += [(f"lif{i}", f"rec{i}"), (f"rec{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(
        output_type={"output": np.array([net.layers[-1].out_features])}
    )
    edges.append((prev, "output"))
    return nir.NIRGraph(
        nodes=nodes,
        edges=edges,
        metadata={"dt_s": float(net.dt_s), "source": "xbar-sim"},
    )


def population_to_nir(pop, *, t_s=1.0):
    """Export a `xbar.spiking.sparse.SparsePopulation` to NIR: its block-sparse
    input and recurrent synapses as dense `Linear` nodes `fc0` and `rec0`
    (`v_read (G+ - G-)^T`, amperes, read noise-free at `t_s`; empty tiles
    become zeros, so this is for populations small enough to hold densely)
    around one `LIF` node `lif0`, recurrence as the cycle `lif0 -> rec0 ->
    lif0`. `from_nir` imports it as a one-layer recurrent `SpikingNetwork`."""
    import nir

    lif = pop.neuron
    n = pop.inputs.n_out

    def dense(syn):
        w = syn.weight_io(t_s) * float(syn.g_per_w) * float(syn.v_read)
        return np.ascontiguousarray(w.T, np.float32)

    nodes = {
        "input": nir.Input(input_type={"input": np.array([pop.inputs.n_in])}),
        "fc0": nir.Linear(weight=dense(pop.inputs)),
        "lif0": _lif_node(lif, n),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("input", "fc0"), ("fc0", "lif0"), ("lif0", "output")]
    if pop.recurrent is not None:
        nodes["rec0"] = nir.Linear(weight=dense(pop.recurrent))
        edges += [("lif0", "rec0"), ("rec0", "lif0")]
    return nir.NIRGraph(
        nodes=nodes,
        edges=edges,
        metadata={"dt_s": float(pop.dt_s), "source": "xbar-sim"},
    )


def _recurrent(graph) -> dict[str, str]:
    """Neuron node -> its recurrent synapse node: a `Linear`/`Affine` node
    `r` with edges `n -> r` and `r -> n`."""
    edges = {(a, b) for a, b in graph.edges}
    rec = {}
    for a, b in edges:
        kind = type(graph.nodes[b]).__name__
        if kind in ("Linear", "Affine") and (b, a) in edges:
            if a in rec:
                raise ValueError(f"NIR node {a!r} has two recurrent synapses")
            rec[a] = b
    return rec


def _chain(graph, rec: dict[str, str]) -> list[str]:
    succ: dict[str, list[str]] = {}
    cycle = {(a, b) for a, b in rec.items()} | {(b, a) for a, b in rec.items()}
    for a, b in graph.edges:
        if (a, b) not in cycle:
            succ.setdefault(a, []).append(b)
    starts = [k for k, v in graph.nodes.items() if type(v).__name__ == "Input"]
    if len(starts) != 1:
        raise ValueError(f"NIR graph must have exactly one Input node; got {starts}")
    order, cur = [], starts[0]
    while True:
        order.append(cur)
        nxt = succ.get(cur, [])
        if not nxt:
            break
        if len(nxt) > 1:
            raise ValueError(
                f"NIR import supports chains only; node {cur!r} feeds {nxt}"
            )
        cur = nxt[0]
        if cur in order:
            raise ValueError(f"NIR import: a cycle through {cur!r} is not recurrence")
    return order


def from_nir(
    graph,
    device: AbstractDevice,
    *,
    key,
    dt_s: float | None = None,
    dac: DAC | None = None,
    tile_rows: int = 256,
    tile_cols: int = 256,
) -> SpikingNetwork:
    """Build a crossbar network from a NIR chain of (Linear|Affine) -> LIF
    layers, each optionally with a recurrent Linear (module docstring).

    Args:
        graph: a `nir.NIRGraph` (e.g. from `nir.read(path)`).
        device: cell model of every crossbar.
        key: device-to-device and programming-noise key.
        dt_s: time step (s); default the graph's metadata "dt_s", else 1 ms.
        dac, tile_rows, tile_cols: as `SpikingLayer.from_weights`.
    """
    rec = _recurrent(graph)
    order = _chain(graph, rec)
    if dt_s is None:
        dt_s = float(graph.metadata.get("dt_s", 1e-3)) if graph.metadata else 1e-3
    dac = DAC() if dac is None else dac
    kinds = [type(graph.nodes[n]).__name__ for n in order]
    body = order[1:-1] if kinds[-1] == "Output" else order[1:]
    body_kinds = [type(graph.nodes[n]).__name__ for n in body]
    if len(body) % 2 or any(
        a not in ("Linear", "Affine") or b not in ("LIF", "CubaLIF")
        for a, b in zip(body_kinds[::2], body_kinds[1::2])
    ):
        raise ValueError(
            "NIR import supports Input -> (Linear|Affine -> LIF|CubaLIF)* -> "
            f"Output; got {kinds}"
        )
    layers = []
    keys = jax.random.split(key, len(body) // 2)
    for (syn_name, lif_name), k in zip(zip(body[::2], body[1::2]), keys):
        syn, node = graph.nodes[syn_name], graph.nodes[lif_name]
        w = np.asarray(syn.weight, np.float32)
        w_rec = None
        if lif_name in rec:
            rnode = graph.nodes[rec[lif_name]]
            if type(rnode).__name__ == "Affine" and np.any(
                np.asarray(rnode.bias) != 0
            ):
                raise ValueError(
                    f"NIR import: recurrent Affine {rec[lif_name]!r} has a bias; "
                    "put the bias on the layer's input synapse"
                )
            w_rec = jnp.asarray(np.asarray(rnode.weight, np.float32))
        cuba = type(node).__name__ == "CubaLIF"
        t_ref = (node.metadata or {}).get("t_ref_s", 0.0)
        template = LIF(
            c_mem_f=1.0,
            tau_s=_scalar_or_array(node.tau_mem if cuba else node.tau),
            v_th=_scalar_or_array(node.v_threshold),
            v_reset=_scalar_or_array(0.0 if node.v_reset is None else node.v_reset),
            v_rest=_scalar_or_array(node.v_leak),
            t_ref_s=_scalar_or_array(t_ref),
        )
        lay = SpikingLayer.from_weights(
            jnp.asarray(w),
            device,
            key=k,
            dt_s=dt_s,
            neuron=template,
            dac=dac,
            tile_rows=tile_rows,
            tile_cols=tile_cols,
            recurrent=w_rec,
        )
        # R I must equal NIR's r W s: R = r / (v_read k), C = tau / R.
        r_hw = jnp.asarray(_scalar_or_array(node.r)) / (dac.v_read * lay.g_per_w)
        lif = eqx.tree_at(lambda m: m.c_mem_f, template, template.tau_s / r_hw)
        neuron = (
            CubaLIF(
                lif,
                tau_syn_s=_scalar_or_array(node.tau_syn),
                w_in=_scalar_or_array(node.w_in),
            )
            if cuba
            else lif
        )
        lay = eqx.tree_at(lambda m: m.neuron, lay, neuron)
        if type(syn).__name__ == "Affine" and np.any(np.asarray(syn.bias) != 0):
            # The bias enters where W s does: a current v_read k b per neuron.
            bias = dac.v_read * lay.g_per_w * jnp.asarray(syn.bias, jnp.float32)
            lay = eqx.tree_at(
                lambda m: m.bias_a, lay, bias, is_leaf=lambda x: x is None
            )
        layers.append(lay)
    return SpikingNetwork(tuple(layers), dt_s)
