"""NeuroBench metrics of a spiking run (Yik et al., "The neurobench framework
for benchmarking neuromorphic computing algorithms and systems", Nat. Commun.
16, 1545 (2025)), so results compare with the neuromorphic literature:

- synaptic operations, split into MACs (a real-valued, non-spike input times
  each of its non-zero synapses) and ACs (an input spike, value 1, added
  along each of its non-zero synapses): "effective" operations, counting only
  non-zero inputs and non-zero weights;
- activation sparsity: the fraction of neuron outputs (neurons x steps) that
  are zero;
- connection sparsity: the fraction of synapses whose weight is zero;
- memory footprint: the bytes of every array the network holds (device
  states of both cells of each pair, neuron parameters, ...).

A weight counts as zero where `|w| <= zero_tol max|w|` of its layer (the
effective weight read noise-free, so a cell pair programmed to the same
conductance is an absent synapse even on a noisy device).
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from xbar.spiking.network import SpikingNetwork


def _nonzero(net: SpikingNetwork, t_s, zero_tol: float) -> list[np.ndarray]:
    out = []
    for lay in net.layers:
        w = np.abs(np.asarray(lay.effective_weight(t_s)))  # (out, in)
        out.append(w > zero_tol * max(float(w.max()), 1e-30))
    return out


def neurobench_metrics(
    net: SpikingNetwork,
    x,
    spikes: tuple,
    *,
    t_s: float = 1.0,
    zero_tol: float = 1e-3,
) -> dict:
    """Per-example NeuroBench metrics of one run.

    Args:
        net: the network that ran.
        x: its input, `(time, *batch, in_features)`.
        spikes: per layer the spikes of every step (`run(..., record=
            EveryStep())["s"]`), or their totals over time (`SpikeCounts()
            ["counts"]`); `(time, *batch, n)` or `(*batch, n)`.
        t_s: time after programming at which weights are read.
        zero_tol: relative magnitude below which a weight is zero.

    Returns:
        dict with `synaptic_ops` (= `macs` + `acs`, mean per example),
        `activation_sparsity`, `connection_sparsity`, `footprint_bytes`,
        and per layer `acs`/`macs`.
    """
    x = np.asarray(x)
    n_steps = x.shape[0]
    batch = int(np.prod(x.shape[1:-1])) if x.ndim > 2 else 1
    nz = _nonzero(net, t_s, zero_tol)
    inputs = [x] + [np.asarray(s) for s in spikes[:-1]]
    macs, acs = [], []
    for inp, mask in zip(inputs, nz):
        fan_out = mask.sum(0).astype(np.float64)  # non-zero synapses per input
        binary = bool(np.all((inp == 0) | (inp == 1)))
        # Input events per input line, summed over time and batch.
        events = (inp != 0).reshape(-1, inp.shape[-1]).sum(0)
        ops = float(events @ fan_out) / batch
        acs.append(ops if binary else 0.0)
        macs.append(0.0 if binary else ops)
    total_spikes = sum(float(np.asarray(s).sum()) for s in spikes)
    n_neurons = sum(lay.out_features for lay in net.layers)
    n_syn = sum(m.size for m in nz)
    leaves = jax.tree.leaves(eqx.filter(net, eqx.is_array))
    return {
        "synaptic_ops": sum(macs) + sum(acs),
        "macs": sum(macs),
        "acs": sum(acs),
        "layer_macs": macs,
        "layer_acs": acs,
        "dense_ops": float(n_steps * sum(m.size for m in nz)),
        "activation_sparsity": 1.0 - total_spikes / (batch * n_steps * n_neurons),
        "connection_sparsity": 1.0 - sum(int(m.sum()) for m in nz) / n_syn,
        "footprint_bytes": int(sum(leaf.nbytes for leaf in leaves)),
    }
